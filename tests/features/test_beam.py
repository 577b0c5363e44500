"""`extract --runner beam` on Beam's DirectRunner, in-process and with two worker processes: the entry it writes
equals the local runner's (same key, files, manifest, storage order; features within float32 round-off),
a later `run` hits it, an interrupted pipeline resumes, damage is caught, and bad input is one `error:` line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import needs_embedded_assets
from helpers import REPO_ROOT, child_environment, run_cli, write_csv, write_tiny_csv

beam = pytest.importorskip("apache_beam", reason="Apache Beam is not installed: run `make beam` (make test does)")

from pipeline.base.config import RunConfig  # noqa: E402
from pipeline.features import beam_storage, cache  # noqa: E402  (both import Apache Beam, which may be missing)
from pipeline.runs.beam_extract import extract_with_beam  # noqa: E402

MULTI_PROCESSING = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]
SHARD_ROWS = 7  # the tiny table's 40 distinct texts make 6 shards, the last one short
# Largest difference allowed between the two runners' features. Both call extraction.encode_sorted_texts on the
# same rows in the same batches, so on one machine they agree bit for bit (the tests print the largest
# difference); 1e-5 leaves room for float32 round-off should a runner ever batch differently.
ROUND_OFF = 1e-5
TIMING_FIELDS = {"created", "extraction_seconds"}


@pytest.fixture
def small_shards(monkeypatch):
    """Several shards from a small table, in this process (the Beam launcher hands the size to its workers)."""
    monkeypatch.setattr(cache, "SHARD_ROWS", SHARD_ROWS)


@pytest.fixture(scope="module")
def tiny_table(tmp_path_factory) -> Path:
    return write_tiny_csv(tmp_path_factory.mktemp("beam-table") / "reviews.csv")


def tiny_config(table: Path, encoder_dir: Path, cache_dir: Path) -> RunConfig:
    return RunConfig(data=str(table), encoder=str(encoder_dir), max_seq_length=16, cache_dir=str(cache_dir))


def extract_locally(config: RunConfig):
    """The local runner's FeatureResult for `config` (what `run` calls before it trains)."""
    from pipeline.runs.prepare import extract, prepare

    return extract(prepare(config), show_progress=False)


def entry_of(cache_dir: Path) -> Path:
    entries = [path for path in cache_dir.iterdir() if path.is_dir()]
    assert len(entries) == 1, entries
    return entries[0]


def assert_same_entry(local_entry: Path, beam_entry: Path) -> float:
    """The Beam entry is the local one: same key (folder), files, digests, manifest (timings aside); returns the
    largest difference between their features."""
    assert beam_entry.name == local_entry.name
    assert sorted(path.name for path in beam_entry.iterdir()) == sorted(path.name for path in local_entry.iterdir())
    assert (beam_entry / cache.DIGESTS_FILE).read_bytes() == (local_entry / cache.DIGESTS_FILE).read_bytes()
    local_manifest, beam_manifest = (json.loads((entry / cache.MANIFEST_FILE).read_text()) for entry in (local_entry, beam_entry))
    untimed = TIMING_FIELDS | {"shards"}
    assert {name: value for name, value in beam_manifest.items() if name not in untimed} == \
        {name: value for name, value in local_manifest.items() if name not in untimed}
    assert [(shard["file"], shard["rows"]) for shard in beam_manifest["shards"]] == \
        [(shard["file"], shard["rows"]) for shard in local_manifest["shards"]]
    largest = 0.0
    for shard in local_manifest["shards"]:
        local_features = np.load(local_entry / shard["file"], allow_pickle=False)
        beam_features = np.load(beam_entry / shard["file"], allow_pickle=False)
        assert beam_features.dtype == np.float32 and beam_features.shape == local_features.shape
        largest = max(largest, float(np.max(np.abs(beam_features - local_features), initial=0.0)))
    assert largest <= ROUND_OFF
    print(f"largest difference, Beam against local: {largest:.3g}")
    return largest


# ----------------------------------------------------------------------------- the same entry


@pytest.fixture(scope="module")
def local_tiny_entry(tiny_table, tiny_encoder_dir, tmp_path_factory) -> Path:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cache, "SHARD_ROWS", SHARD_ROWS)
        return extract_locally(tiny_config(tiny_table, tiny_encoder_dir, tmp_path_factory.mktemp("local-cache"))).entry_dir


def test_in_process_beam_writes_the_local_entry_and_run_hits_it(local_tiny_entry, tiny_table, tiny_encoder_dir, tmp_path,
                                                                  small_shards):
    from pipeline.runs.run import run

    config = tiny_config(tiny_table, tiny_encoder_dir, tmp_path / "cache")
    result = extract_with_beam(config, [])
    assert result.cache_hit is False and result.texts == 40 and result.reused_shards == 0
    assert_same_entry(local_tiny_entry, entry_of(tmp_path / "cache"))
    metrics = run(config.replace(epochs=1, output_dir=str(tmp_path / "run")), show_progress=False).metrics
    assert metrics["features"]["cache_hit"] is True
    again = extract_with_beam(config, [])
    assert again.cache_hit is True


def test_the_command_line_writes_the_local_entry(local_tiny_entry, tiny_table, tiny_encoder_dir, tmp_path, small_shards):
    """The real command, Beam's options after `--`, writes the local entry; a second Beam extraction finds it.
    (In-process runner: two worker processes cost each a TensorFlow start, so only the embedded test pays that.)"""
    options = ["--data", tiny_table, "--encoder", tiny_encoder_dir, "--max-seq-length", 16, "--cache-dir", tmp_path / "cache",
               "--quiet"]
    environment = {"PIPELINE_SHARD_ROWS": str(SHARD_ROWS)}
    extracted = run_cli("extract", *options, "--runner", "beam", "--", "--direct_running_mode=in_memory",
                        artifacts=tmp_path / "artifacts", env=environment)
    assert extracted.returncode == 0, extracted.stderr
    assert "40 texts" in extracted.stdout and "cache miss (Beam)" in extracted.stdout
    assert "Traceback" not in extracted.stderr
    assert_same_entry(local_tiny_entry, entry_of(tmp_path / "cache"))
    hit = extract_with_beam(tiny_config(tiny_table, tiny_encoder_dir, tmp_path / "cache"), [])
    assert hit.cache_hit is True  # found and verified by streaming, before any worker starts


@pytest.mark.parametrize("reading", [{"long_texts": "windows", "window_overlap": 2, "max_windows": 3},
                                     {"long_texts": "head-tail", "head_tokens": 3}])
def test_long_texts_read_in_windows_or_head_and_tail_give_the_local_entry(reading, tiny_encoder_dir, tmp_path,
                                                                          small_shards):
    rows = [(" ".join(["the movie is good and the story"] * (index % 8)) + f" {word}", label)
            for index, (word, label) in enumerate([("good", "pos"), ("bad", "neg")] * 12)]
    table = write_csv(tmp_path / "long.csv", ["text", "label"], rows)
    config = tiny_config(table, tiny_encoder_dir, tmp_path / "local").replace(**reading)
    local = extract_locally(config)
    assert local.long_texts["texts_cut"] > 0 and local.long_texts["strategy"] == reading["long_texts"]
    assert extract_with_beam(config.replace(cache_dir=str(tmp_path / "beam")), []).cache_hit is False
    assert_same_entry(local.entry_dir, entry_of(tmp_path / "beam"))


def test_a_truncation_entry_of_short_texts_serves_beam_under_every_strategy(local_tiny_entry, tiny_table,
                                                                           tiny_encoder_dir, tmp_path):
    """The tiny table's texts all fit 16 tokens, so the local default (windows) wrote truncation's entry; Beam
    finds it under windows and head-tail too, and writes truncation's entry when it fills one itself."""
    manifest = json.loads((local_tiny_entry / "manifest.json").read_text())
    assert manifest["long_texts"]["strategy"] == "truncate" and manifest["long_texts"]["texts_cut"] == 0
    cache_dir = local_tiny_entry.parent
    for reading in ({}, {"long_texts": "windows", "window_overlap": 2}, {"long_texts": "head-tail"}):
        hit = extract_with_beam(tiny_config(tiny_table, tiny_encoder_dir, cache_dir).replace(**reading), [])
        assert hit.cache_hit is True and Path(hit.entry_path) == local_tiny_entry
        assert hit.long_texts["strategy"] == reading.get("long_texts", "windows") and hit.long_texts["texts_cut"] == 0
    filled = extract_with_beam(tiny_config(tiny_table, tiny_encoder_dir, tmp_path / "beam").replace(
        long_texts="head-tail"), [])
    assert filled.cache_hit is False and Path(filled.entry_path).name == local_tiny_entry.name


@needs_embedded_assets
def test_embedded_encoder_on_demo_rows_with_two_worker_processes(tmp_path, monkeypatch):
    """All-MiniLM-L6-v2 on 240 demo snippets, tokenized and encoded in two worker processes (each loads the encoder
    once): the Beam entry equals the local one, and the local runner (what `run` calls) reads it as a cache hit."""
    from pipeline.data.tables import load_labeled_texts

    demo = load_labeled_texts(None, preset="rotten-tomatoes")
    rows = [(demo.texts[index], demo.label_names[demo.labels[index]]) for index in range(0, len(demo.texts), 53)][:240]
    table = write_csv(tmp_path / "demo.csv", ["text", "label"], rows)
    monkeypatch.setattr(cache, "SHARD_ROWS", 64)  # 240 texts in 4 shards
    local_entry = extract_locally(RunConfig(data=str(table), cache_dir=str(tmp_path / "local"))).entry_dir
    beam_config = RunConfig(data=str(table), cache_dir=str(tmp_path / "beam"))
    result = extract_with_beam(beam_config, MULTI_PROCESSING)
    assert result.cache_hit is False and result.texts == len({text for text, _ in rows})
    assert_same_entry(local_entry, entry_of(tmp_path / "beam"))
    assert extract_locally(beam_config).cache_hit is True


# ----------------------------------------------------------------------------- resumable and safe


def test_a_failed_pipeline_resumes_from_its_verified_shards(local_tiny_entry, tiny_table, tiny_encoder_dir, tmp_path,
                                                            small_shards, monkeypatch):
    """A pipeline that dies after two shards leaves them and no manifest; the next run keeps them (a damaged one is
    recomputed) and ends with the local entry."""
    from pipeline.features import extraction as features

    original, calls = features.encode_sorted_rows, []

    def dies_at_the_third_shard(*arguments, **options):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("worker killed")
        return original(*arguments, **options)

    config = tiny_config(tiny_table, tiny_encoder_dir, tmp_path / "cache")
    monkeypatch.setattr(features, "encode_sorted_rows", dies_at_the_third_shard)  # in-process: the DoFn sees it
    with pytest.raises(Exception, match="worker killed"):
        extract_with_beam(config, [])
    monkeypatch.setattr(features, "encode_sorted_rows", original)
    entry = entry_of(tmp_path / "cache")
    assert not (entry / cache.MANIFEST_FILE).exists() and not (entry / cache.DIGESTS_FILE).exists()
    finished = sorted(entry.glob("parts/shard-*.json"))
    assert len(finished) == 2
    damaged = entry / json.loads(finished[0].read_text())["file"]
    damaged.write_bytes(damaged.read_bytes()[:-4] + b"\0\0\0\0")

    resumed = extract_with_beam(config, [])
    assert resumed.cache_hit is False and resumed.reused_shards == 1
    assert_same_entry(local_tiny_entry, entry)


def test_the_launcher_refuses_shards_that_do_not_match_their_records(tmp_path):
    """Merging checks every shard against its worker's record and writes nothing when one does not match."""
    entry = str(tmp_path / "entry")
    key = "k" * 64
    rows = [(3, cache.text_digest(f"text {index}")) for index in range(5)]
    rows.sort()
    for shard_index, shard_rows in enumerate((rows[:3], rows[3:])):
        beam_storage.write_shard(entry, key, shard_index, np.ones((len(shard_rows), 4), np.float32),
                                 [length for length, _ in shard_rows], [digest for _, digest in shard_rows], "test")
    (tmp_path / "entry" / "shard-00001.npy").write_bytes((tmp_path / "entry" / "shard-00000.npy").read_bytes())
    with pytest.raises(beam_storage.MergeProblems) as problems:
        beam_storage.merge_entry(entry, key, sorted_digests=sorted(digest for _, digest in rows), shard_rows=3, width=4,
                                 description={}, writer_tag="test")
    assert list(problems.value.bad_shards) == [1]
    assert "SHA-256" in str(problems.value) or "expected" in str(problems.value)
    assert not (tmp_path / "entry" / cache.MANIFEST_FILE).exists() and not (tmp_path / "entry" / cache.DIGESTS_FILE).exists()


def test_merged_entry_is_read_by_the_local_reader(tmp_path):
    """Workers' shards, merged, are an entry the local runner's reader verifies and loads, rows in storage order."""
    entry = str(tmp_path / "entry")
    key = "k" * 64
    rows = sorted((index % 3, cache.text_digest(f"text {index}")) for index in range(5))
    features = np.arange(20, dtype=np.float32).reshape(5, 4)
    for shard_index, start in enumerate((0, 3)):
        part = rows[start : start + 3]
        beam_storage.write_shard(entry, key, shard_index, features[start : start + 3], [length for length, _ in part],
                                 [digest for _, digest in part], "test")
    beam_storage.merge_entry(entry, key, sorted_digests=sorted(digest for _, digest in rows), shard_rows=3, width=4,
                             description={"feature_size": 4}, writer_tag="test")
    assert sorted(path.name for path in (tmp_path / "entry").iterdir()) == [
        cache.DIGESTS_FILE, cache.MANIFEST_FILE, "shard-00000.npy", "shard-00001.npy"]
    stored = cache.read_cache_entry(tmp_path / "entry", key)
    assert stored is not None
    digests, read_features = stored
    assert cache.digests_from_array(digests) == [digest for _, digest in rows]
    np.testing.assert_array_equal(read_features, features)


# ----------------------------------------------------------------------------- bad input


def run_in_process(arguments: list[str], capsys) -> tuple[int, list[str]]:
    from pipeline.commands.cli import main

    capsys.readouterr()
    status = main(arguments)
    return status, capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize(("beam_options", "fragments"), [
    (["--direct_num_workers=two"], ["Beam rejects", "--direct_num_workers", "'two'"]),
    (["--direct_running_mode=threads_of_steel"], ["Beam rejects", "--direct_running_mode"]),
    (["--no_such_option=1"], ["does not know", "--no_such_option=1"]),
    (["--runner=NoSuchRunner"], ["cannot start runner 'NoSuchRunner'", "DirectRunner"]),
])
def test_options_beam_rejects_are_one_error_line(beam_options, fragments, tiny_table, tmp_path, capsys):
    status, lines = run_in_process(["extract", "--data", str(tiny_table), "--cache-dir", str(tmp_path / "cache"),
                                    "--runner", "beam", "--", *beam_options], capsys)
    assert status == 2 and len(lines) == 1 and lines[0].startswith("error: ")
    assert all(fragment in lines[0] for fragment in fragments), lines[0]
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("cache_dir", ["nosuchfs://bucket/cache", "gs://bucket/cache"])
def test_a_cache_on_a_filesystem_beam_cannot_open_is_one_error_line(cache_dir, tiny_table, tmp_path, capsys):
    """gs:// needs the apache-beam[gcp] extra, which requirements-beam.txt leaves out."""
    status, lines = run_in_process(["extract", "--data", str(tiny_table), "--cache-dir", cache_dir, "--runner", "beam"],
                                   capsys)
    assert status == 2 and len(lines) == 1 and lines[0].startswith("error: --cache-dir " + cache_dir)
    assert "Beam cannot open this filesystem" in lines[0]


def test_beam_missing_names_the_install_command(tiny_table, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "apache_beam", None)  # what `import apache_beam` meets when it is not installed
    status, lines = run_in_process(["extract", "--data", str(tiny_table), "--cache-dir", str(tmp_path / "cache"),
                                    "--runner", "beam"], capsys)
    assert status == 2 and len(lines) == 1
    assert "not installed" in lines[0] and "make beam" in lines[0] and "requirements-beam.txt" in lines[0]
    assert not (tmp_path / "cache").exists()


def test_a_worker_without_the_launchers_encoder_is_one_error_line(tiny_table, tiny_encoder_dir, tmp_path, capsys,
                                                                 monkeypatch):
    """A worker that finds another vocabulary at the encoder's path stops the pipeline with one `error:` line
    (in-process runner: the worker's check is patched to fail as on a worker without the shared folder)."""
    from pipeline.features import beam_pipeline

    monkeypatch.setattr(beam_pipeline, "_file_matches", lambda path, sha256: False)
    status, lines = run_in_process(["extract", "--data", str(tiny_table), "--encoder", str(tiny_encoder_dir),
                                    "--max-seq-length", "16", "--cache-dir", str(tmp_path / "cache"), "--runner", "beam"],
                                   capsys)
    assert status == 2 and len(lines) == 1, lines
    assert lines[0].startswith("error: the encoder's vocabulary") and "same path on every worker" in lines[0]
    assert [path for path in (tmp_path / "cache").iterdir() if not path.name.endswith(".lock")] == []  # the lock file stays, as the local runner's does


def test_unknown_runner_and_stray_beam_options_through_the_real_command(tiny_table, tmp_path):
    common = ["extract", "--data", tiny_table, "--cache-dir", tmp_path / "cache"]
    for arguments, fragment in (([*common, "--runner", "spark"], "--runner"),
                                ([*common, "--", "--direct_num_workers=2"], "add --runner beam")):
        result = run_cli(*arguments, artifacts=tmp_path / "artifacts")
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.stderr
        assert fragment in lines[0]
    assert not (tmp_path / "cache").exists()


def test_beam_is_not_needed_by_the_rest_of_the_pipeline():
    """`make demo` does not install Beam: nothing but the Beam modules may import it."""
    command = ("import sys; sys.modules['apache_beam'] = None; import pipeline.commands.cli, pipeline.runs.run, pipeline.features.cache, "
               "pipeline.runs.sweep; print('ok')")
    loaded = subprocess.run([sys.executable, "-c", command], capture_output=True, text=True, timeout=120, cwd=REPO_ROOT,
                            env=child_environment())
    assert loaded.stdout.strip() == "ok", loaded.stderr


def test_an_entry_beam_fills_from_a_multi_label_table_serves_its_run(tiny_encoder_dir, tmp_path, small_shards):
    """Several labels per text change nothing of extraction: Beam fills the entry from a table with label columns
    (its texts are the tiny table's), and the multi-label run on it reads every feature from there."""
    from helpers import POSITIVE_WORDS, tiny_review_rows

    from pipeline.runs.run import run

    rows = [(text, int(any(word in text for word in POSITIVE_WORDS)), int("movie" in text))
            for text, _ in tiny_review_rows(60)]
    table = write_csv(tmp_path / "tags.csv", ["text", "praise", "movie"], rows)
    config = tiny_config(table, tiny_encoder_dir, tmp_path / "cache").replace(label_columns="praise,movie")
    assert extract_with_beam(config, []).cache_hit is False
    metrics = run(config.replace(epochs=1, ensemble=1, output_dir=str(tmp_path / "run")), show_progress=False).metrics
    assert metrics["features"]["cache_hit"] is True
    assert metrics["target"]["names"] == ["praise", "movie"] and len(metrics["target"]["thresholds"]) == 2
