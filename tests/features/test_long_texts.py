"""Texts longer than max_seq_length: what each strategy reads, that the cut is counted and said, that windows
pool into one vector per text, and that the cache, the run folder and predict agree on it."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from helpers import write_csv

from pipeline.base.errors import UserError
from pipeline.encoders.encoder import load_encoder
from pipeline.features import long_texts
from pipeline.features.extraction import encode_sorted_rows, encode_texts, extract_features
from pipeline.features.long_texts import LongTexts, length_report, segments, settle, tokens_read

IDS = list(range(100, 130))  # 30 ids; max_seq_length 12 leaves room for 10


def test_truncate_reads_the_start_and_a_short_text_is_read_whole():
    assert segments(IDS, 12, long_texts.TRUNCATE) == [IDS[:10]]
    assert segments(IDS[:10], 12, settle("windows", max_seq_length=12, head_tokens=None, window_overlap=2,
                                         max_windows=None)) == [IDS[:10]]


def test_head_tail_keeps_the_first_and_the_last_ids():
    head_tail = settle("head-tail", max_seq_length=12, head_tokens=3, window_overlap=None, max_windows=None)
    assert segments(IDS, 12, head_tail) == [IDS[:3] + IDS[-7:]]
    assert segments(IDS, 12, LongTexts("head-tail", head_tokens=0)) == [IDS[-10:]]
    assert settle("head-tail", max_seq_length=130, head_tokens=None, window_overlap=None,
                  max_windows=None).head_tokens == 32  # a quarter of 128


def test_windows_cover_the_text_with_overlap_up_to_the_cap():
    windows = LongTexts("windows", window_overlap=2, max_windows=8)
    assert segments(IDS, 12, windows) == [IDS[0:10], IDS[8:18], IDS[16:26], IDS[24:30]]
    assert tokens_read(30, 12, windows) == 30
    capped = LongTexts("windows", window_overlap=2, max_windows=2)
    assert segments(IDS, 12, capped) == [IDS[0:10], IDS[8:18]]
    assert tokens_read(30, 12, capped) == 18


def test_the_length_report_counts_the_texts_cut_and_their_length_percentiles():
    lengths = [5] * 17 + [11, 40, 200]  # 20 texts, 3 longer than the 10 ids read
    report = length_report(lengths, 12, long_texts.TRUNCATE)
    assert report["texts"] == 20 and report["texts_cut"] == 3 and report["cut_share"] == 0.15
    assert report["token_length"] == {"median": 5, "p95": 40, "max": 200}
    assert report["tokens_read_at_most"] == 10 and report["strategy"] == "truncate"
    assert "3 of 20 texts (15.0%) longer than 10 tokens were cut (truncate)" in long_texts.summary_line(report)
    assert "--long-texts windows" in long_texts.cut_warning(report)
    windows = length_report(lengths, 12, LongTexts("windows", window_overlap=2, max_windows=8))
    assert windows["texts_cut"] == 1 and windows["tokens_read_at_most"] == 66
    assert long_texts.cut_warning(windows) is None


@pytest.mark.parametrize(("strategy", "options", "fragment"), [
    ("head-tail", {"head_tokens": 11}, "--head-tokens 11"),
    ("windows", {"window_overlap": 10}, "--window-overlap 10"),
    ("windows", {"max_windows": 0}, "--max-windows"),
])
def test_settings_that_do_not_fit_name_the_option(strategy, options, fragment):
    arguments = {"head_tokens": None, "window_overlap": None, "max_windows": None, **options}
    with pytest.raises(UserError, match=fragment):
        settle(strategy, max_seq_length=12, **arguments)


@pytest.fixture
def encoder(tiny_encoder_dir):
    return load_encoder(str(tiny_encoder_dir))


LONG = " ".join(["the movie is good and the story is great"] * 6 + ["but the ending is bad"])  # about 60 ids


def test_a_windowed_text_is_the_id_weighted_mean_of_its_windows(encoder):
    windows = LongTexts("windows", window_overlap=4, max_windows=8)
    ids = encoder.tokenizer.encode(LONG)
    parts = segments(ids, 16, windows)
    assert len(parts) > 3
    one_by_one = np.concatenate([encode_sorted_rows([part], encoder, pooling="mean", layers=(-1,), combine="concat",
                                                    max_seq_length=16, batch_size=8) for part in parts])
    weights = np.array([len(part) for part in parts], np.float32)
    expected = (one_by_one * weights[:, None]).sum(axis=0) / weights.sum()
    pooled = encode_texts([LONG, "short and good"], encoder, pooling="mean", max_seq_length=16, long_texts=windows)
    np.testing.assert_allclose(pooled[0], expected, atol=1e-5)
    np.testing.assert_allclose(pooled[1], encode_texts(["short and good"], encoder, pooling="mean",
                                                       max_seq_length=16)[0], atol=1e-6)


def test_head_tail_features_are_those_of_the_head_and_tail_ids(encoder):
    head_tail = LongTexts("head-tail", head_tokens=4)
    ids = encoder.tokenizer.encode(LONG)
    expected = encode_sorted_rows([ids[:4] + ids[-10:]], encoder, pooling="cls", layers=(-1,), combine="concat",
                                  max_seq_length=16, batch_size=8)
    got = encode_texts([LONG], encoder, pooling="cls", max_seq_length=16, long_texts=head_tail)
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_each_strategy_has_its_own_cache_entry_and_the_manifest_records_the_report(encoder, tmp_path, caplog):
    texts = [LONG, "good", "the film is bad", LONG + " and dull"]
    options = {"pooling": "mean", "max_seq_length": 16, "cache_dir": tmp_path, "show_progress": False}
    entries = {}
    with caplog.at_level(logging.WARNING):
        for settings in (long_texts.TRUNCATE, LongTexts("head-tail", head_tokens=4),
                         LongTexts("windows", window_overlap=4, max_windows=8),
                         LongTexts("windows", window_overlap=2, max_windows=8),
                         LongTexts("windows", window_overlap=4, max_windows=2)):
            result = extract_features(texts, encoder, long_texts=settings, **options)
            assert result.cache_hit is False
            entries[settings] = result
    assert len({result.entry_dir for result in entries.values()}) == 5
    assert "50% of the texts are longer than the 14 tokens read and were cut (truncate)" in caplog.text
    manifest = json.loads((entries[long_texts.TRUNCATE].entry_dir / "manifest.json").read_text())
    assert manifest["long_texts"]["texts_cut"] == 2 and manifest["long_texts"]["strategy"] == "truncate"
    windows = LongTexts("windows", window_overlap=4, max_windows=8)
    again = extract_features(texts, encoder, long_texts=windows, **options)
    assert again.cache_hit is True and again.long_texts == entries[windows].long_texts
    assert again.long_texts["texts_cut"] == 0
    np.testing.assert_array_equal(again.features, entries[windows].features)
    np.testing.assert_allclose(again.features, encode_texts(texts, encoder, pooling="mean", max_seq_length=16,
                                                            long_texts=windows), atol=1e-5)


def test_an_entry_written_before_the_report_existed_reports_from_its_texts(encoder, tmp_path):
    texts = [LONG, "good"]
    options = {"pooling": "mean", "max_seq_length": 16, "cache_dir": tmp_path, "show_progress": False}
    first = extract_features(texts, encoder, **options)
    manifest_path = first.entry_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    del manifest["long_texts"]
    manifest_path.write_text(json.dumps(manifest))
    again = extract_features(texts, encoder, **options)
    assert again.cache_hit is True and again.long_texts == first.long_texts


STRATEGIES = (long_texts.TRUNCATE, LongTexts("head-tail", head_tokens=4), LongTexts("windows", window_overlap=4,
                                                                                  max_windows=8))


@pytest.mark.parametrize("writer", STRATEGIES, ids=lambda reading: reading.strategy)
def test_texts_that_all_fit_share_truncations_entry_whatever_the_strategy(writer, encoder, tmp_path):
    texts = ["good", "the film is bad", "a great story and a good ending"]  # all within the room of 14 ids
    options = {"pooling": "mean", "max_seq_length": 16, "cache_dir": tmp_path, "show_progress": False}
    first = extract_features(texts, encoder, long_texts=writer, **options)
    assert first.cache_hit is False
    manifest = json.loads((first.entry_dir / "manifest.json").read_text())
    assert manifest["long_texts"]["strategy"] == "truncate"  # the entry is truncation's, so older caches serve it
    for reader in STRATEGIES:
        again = extract_features(texts, encoder, long_texts=reader, **options)
        assert again.cache_hit is True and again.entry_dir == first.entry_dir
        np.testing.assert_array_equal(again.features, first.features)
        assert again.long_texts == length_report([len(encoder.tokenizer.encode(text)) for text in texts], 16, reader)
    assert len([path for path in tmp_path.iterdir() if path.is_dir()]) == 1


def test_a_truncation_entry_with_a_long_text_serves_truncation_only(encoder, tmp_path):
    texts = [LONG, "good"]
    options = {"pooling": "mean", "max_seq_length": 16, "cache_dir": tmp_path, "show_progress": False}
    truncated = extract_features(texts, encoder, **options)
    windows = LongTexts("windows", window_overlap=4, max_windows=8)
    windowed = extract_features(texts, encoder, long_texts=windows, **options)
    assert windowed.cache_hit is False and windowed.entry_dir != truncated.entry_dir
    assert not np.allclose(windowed.features[0], truncated.features[0])
    np.testing.assert_array_equal(windowed.features[1], truncated.features[1])


def test_an_old_truncation_entry_serves_windows_when_its_texts_all_fit(encoder, tmp_path):
    texts = ["good", "the film is bad"]
    options = {"pooling": "mean", "max_seq_length": 16, "cache_dir": tmp_path, "show_progress": False}
    first = extract_features(texts, encoder, **options)
    manifest_path = first.entry_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    del manifest["long_texts"]  # as entries written before the report existed
    manifest_path.write_text(json.dumps(manifest))
    windows = LongTexts("windows", window_overlap=4, max_windows=8)
    again = extract_features(texts, encoder, long_texts=windows, **options)
    assert again.cache_hit is True and again.entry_dir == first.entry_dir
    assert again.long_texts["strategy"] == "windows" and again.long_texts["texts_cut"] == 0


@pytest.fixture(scope="module")
def long_table(tmp_path_factory):
    rows = []
    for index in range(40):
        word = ("good", "great", "bad", "dull")[index % 4]
        filler = " ".join(["the movie is a film and it was a story"] * (index % 5))
        rows.append((f"{filler} {word} {filler}".strip(), "pos" if index % 4 < 2 else "neg"))
    return write_csv(tmp_path_factory.mktemp("long") / "long.csv", ["text", "label"], rows)


def test_a_windows_run_records_the_settings_and_predicts_its_test_texts_as_it_scored_them(
        long_table, tiny_encoder_dir, tmp_path, capsys):
    from pipeline.commands.cli import main
    from pipeline.runs.explore import load_run_splits
    from pipeline.runs.predict import load_model, predict_texts
    from pipeline.runs.run_folder import read_run_folder

    run_dir = tmp_path / "run"
    code = main(["run", "--data", str(long_table), "--encoder", str(tiny_encoder_dir), "--max-seq-length", "16",
                 "--long-texts", "windows", "--window-overlap", "3", "--epochs", "2", "--ensemble", "1",
                 "--cache-dir", str(tmp_path / "cache"), "--output-dir", str(run_dir), "--quiet"])
    assert code == 0
    out = capsys.readouterr().out
    assert "Long texts: 0 of 20 texts (0.0%) longer than 91 tokens were cut (windows)" in out
    config = json.loads((run_dir / "config.json").read_text())
    assert (config["long_texts"], config["window_overlap"], config["max_windows"], config["head_tokens"]) == (
        "windows", 3, 8, None)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["features"]["long_texts"]["window_overlap"] == 3
    assert metrics["features"]["long_texts"]["token_length"]["max"] > 14
    finished = read_run_folder(run_dir)
    assert finished.long_texts == LongTexts("windows", window_overlap=3, max_windows=8)
    _, probabilities = finished.test_predictions()
    predicted = predict_texts(load_model(run_dir), load_run_splits(finished.config).test.texts, show_progress=False)
    np.testing.assert_allclose(predicted.probabilities, probabilities, atol=1e-5)


@pytest.mark.parametrize(("arguments", "fragment"), [
    (["--head-tokens", "4"], "--head-tokens is a setting of --long-texts head-tail"),
    (["--long-texts", "windows", "--fine-tune"], "--long-texts windows"),
    (["--long-texts", "head-tail", "--head-tokens", "20"], "--head-tokens 20 does not fit --max-seq-length 16"),
    (["--long-texts", "windows", "--window-overlap", "14"], "--window-overlap 14 does not fit"),
])
def test_bad_long_text_options_are_one_error_line_and_nothing_is_written(arguments, fragment, long_table,
                                                                        tiny_encoder_dir, tmp_path, capsys):
    from pipeline.commands.cli import main

    code = main(["run", "--data", str(long_table), "--encoder", str(tiny_encoder_dir), "--max-seq-length", "16",
                 "--cache-dir", str(tmp_path / "cache"), "--output-dir", str(tmp_path / "run"), "--quiet", *arguments])
    error = capsys.readouterr().err
    assert code == 2 and error.startswith("error: ") and error.count("\n") == 1 and fragment in error
    assert not (tmp_path / "run").exists() and not any((tmp_path / "cache").glob("*/manifest.json"))


@pytest.mark.parametrize("reading", [["--long-texts", "windows", "--window-overlap", "2", "--max-windows", "3"],
                                     ["--long-texts", "head-tail", "--head-tokens", "5"]])
def test_the_export_reads_a_long_text_as_the_run_did_in_a_fresh_process(reading, long_table, tiny_encoder_dir,
                                                                          tmp_path):
    import os
    import subprocess
    import sys

    from test_export import FRESH_PROCESS_SCRIPT

    from pipeline.commands.cli import main
    from pipeline.runs.run_folder import read_run_folder
    from pipeline.runs.run_model import load_run_model

    run_dir, exported = tmp_path / "run", tmp_path / "exported"
    assert main(["run", "--data", str(long_table), "--encoder", str(tiny_encoder_dir), "--max-seq-length", "16",
                 "--epochs", "2", "--ensemble", "1", "--cache-dir", str(tmp_path / "cache"), "--output-dir",
                 str(run_dir), "--quiet", "--precision", "float32", *reading]) == 0  # exact: an int8 run's export is float32
    assert main(["export", "--run", str(run_dir), "--output", str(exported), "--quiet"]) == 0
    assert json.loads((exported / "export_info.json").read_text())["long_texts"]["strategy"] == reading[1]
    words = ["the", "movie", "is", "good", "but", "the", "ending", "was", "dull", "and", "slow"]
    texts = [" ".join(words[index % len(words)] for index in range(3000)), "good", "", LONG]  # 3,000 words: capped
    expected = load_run_model(read_run_folder(run_dir)).predict(texts)
    result = subprocess.run([sys.executable, "-I", "-c", FRESH_PROCESS_SCRIPT, str(exported), json.dumps(texts)],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120,
                            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0, result.stderr
    np.testing.assert_allclose(np.array(json.loads(result.stdout.strip().splitlines()[-1])["probabilities"]),
                               expected, rtol=0, atol=1e-5)


def test_fine_tuning_reads_head_and_tail_and_its_run_predicts_as_it_scored(long_table, tiny_encoder_dir, tmp_path):
    from pipeline.commands.cli import main
    from pipeline.runs.explore import load_run_splits
    from pipeline.runs.predict import load_model, predict_texts
    from pipeline.runs.run_folder import read_run_folder

    run_dir = tmp_path / "run"
    assert main(["run", "--fine-tune", "--data", str(long_table), "--encoder", str(tiny_encoder_dir),
                 "--max-seq-length", "16", "--long-texts", "head-tail", "--head-tokens", "3", "--epochs", "1",
                 "--batch-size", "8", "--cache-dir", str(tmp_path / "cache"), "--output-dir", str(run_dir),
                 "--quiet"]) == 0
    finished = read_run_folder(run_dir)
    assert finished.long_texts == LongTexts("head-tail", head_tokens=3) and finished.fine_tuned
    _, probabilities = finished.test_predictions()
    predicted = predict_texts(load_model(run_dir), load_run_splits(finished.config).test.texts, show_progress=False)
    np.testing.assert_allclose(predicted.probabilities, probabilities, atol=1e-5)


def test_auto_chooses_the_smallest_length_that_holds_most_texts_whole():
    assert long_texts.auto_max_seq_length([10] * 96 + [200] * 4, 512)[0] == 64
    assert long_texts.auto_max_seq_length([10] * 90 + [200] * 10, 512)[0] == 256
    length, why = long_texts.auto_max_seq_length([1000] * 10, 512)
    assert length == 512 and "the encoder's limit; 0.0%" in why
    assert long_texts.auto_max_seq_length([300] * 10, 128)[0] == 128  # never past the encoder


def test_auto_on_the_command_line_records_and_prints_the_chosen_length(long_table, tiny_encoder_dir, tmp_path, capsys):
    from pipeline.commands.cli import main

    run_dir = tmp_path / "run"
    assert main(["run", "--data", str(long_table), "--encoder", str(tiny_encoder_dir), "--max-seq-length", "auto",
                 "--epochs", "1", "--ensemble", "1", "--cache-dir", str(tmp_path / "cache"), "--output-dir", str(run_dir),
                 "--quiet"]) == 0
    config = json.loads((run_dir / "config.json").read_text())
    assert config["max_seq_length"] == 64 and config["max_seq_length_chosen"].startswith("auto: ")
    assert "(max_seq_length 64, auto: " in capsys.readouterr().out
    with pytest.raises(SystemExit) as stopped:
        main(["run", "--max-seq-length", "often"])
    error = capsys.readouterr().err
    assert stopped.value.code == 2 and error.count("\n") == 1 and "--max-seq-length: expected a whole number or auto" in error


def test_the_python_api_reads_long_texts_as_the_command_line_and_reports_the_cut(encoder, tiny_encoder_dir, tmp_path):
    from pipeline import FeatureExtractor

    windows = LongTexts("windows", window_overlap=4, max_windows=8)
    extractor = FeatureExtractor(str(tiny_encoder_dir), pooling="mean", layers="last", max_seq_length=16,
                                 long_texts="windows", window_overlap=4, cache_dir=tmp_path, progress=False,
                                 precision="float32")  # compared with the float32 `encoder`'s features
    features = extractor.transform([LONG, "good"])
    np.testing.assert_allclose(features, encode_texts([LONG, "good"], encoder, pooling="mean", max_seq_length=16,
                                                      long_texts=windows), atol=1e-5)
    assert extractor.long_texts_["texts_cut"] == 0 and extractor.long_texts_["strategy"] == "windows"
    truncating = FeatureExtractor(str(tiny_encoder_dir), pooling="mean", layers="last", max_seq_length=16,
                                  long_texts="truncate", cache_dir=tmp_path, progress=False, precision="float32")
    truncated = truncating.transform([LONG, "good"])  # a windows entry never serves truncated features
    assert truncating.long_texts_["texts_cut"] == 1 and not np.allclose(truncated[0], features[0], atol=1e-4)
    by_default = FeatureExtractor(str(tiny_encoder_dir), pooling="mean", layers="last", max_seq_length=16,
                                  cache_dir=tmp_path, progress=False, precision="float32")
    default_windows = LongTexts("windows", window_overlap=3, max_windows=8)  # a quarter of the room of 14
    np.testing.assert_allclose(by_default.transform([LONG, "good"]), encode_texts(
        [LONG, "good"], encoder, pooling="mean", max_seq_length=16, long_texts=default_windows), atol=1e-5)
    assert by_default.long_texts_["strategy"] == "windows" and by_default.long_texts_["window_overlap"] == 3


def test_the_text_classifier_takes_the_long_text_options_and_the_command_lines_checks():
    from pipeline import TextClassifier
    from pipeline.api.inputs import InvalidInput

    config = TextClassifier(long_texts="head-tail", head_tokens=3, max_seq_length="auto")._config()
    assert (config.long_texts, config.head_tokens, config.max_seq_length) == ("head-tail", 3, "auto")
    assert TextClassifier(window_overlap=2, max_windows=3)._config().window_overlap == 2  # windows by default
    with pytest.raises(InvalidInput, match="--head-tokens is a setting of --long-texts head-tail, and --long-texts "
                                           "is windows"):
        TextClassifier(head_tokens=3)._config()
    with pytest.raises(InvalidInput, match="--window-overlap is a setting of --long-texts windows, and --long-texts "
                                           "is truncate"):
        TextClassifier(window_overlap=2, fine_tune=True)._config()
