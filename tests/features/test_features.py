"""Feature extraction and the on-disk cache: alignment, per-batch padding, keys, reuse, resume, damage."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from pipeline.base.files import bytes_sha256, npy_bytes
from pipeline.encoders.encoder import load_encoder
from pipeline.features import cache as cache_module
from pipeline.features import extraction as features_module
from pipeline.features.cache import cache_key, digests_from_array, digests_to_array, text_digest
from pipeline.features.extraction import encode_texts, extract_features

TEXTS = [
    "the movie is good",
    "the film is bad",
    "a great story and a good film",
    "not good",
    "the movie is good",  # a duplicate: same row, computed once
    "",
    "the story is not great and the film is bad and the movie is not good at all",
]


@pytest.fixture
def encoder(tiny_encoder_dir):
    return load_encoder(str(tiny_encoder_dir))


def _extract(encoder, cache_dir, texts=TEXTS, **overrides):
    options = {"pooling": "mean", "max_seq_length": 32, "cache_dir": cache_dir, "batch_size": 3, "show_progress": False}
    options.update(overrides)
    return extract_features(texts, encoder, **options)


def test_features_are_aligned_with_the_texts_and_cached(encoder, tmp_path):
    first = _extract(encoder, tmp_path)
    assert first.features.shape == (len(TEXTS), 32) and first.features.dtype == np.float32
    assert first.cache_hit is False and first.texts == len(set(TEXTS))
    np.testing.assert_array_equal(first.features[0], first.features[4])
    second = _extract(encoder, tmp_path)
    assert second.cache_hit is True
    np.testing.assert_array_equal(first.features, second.features)
    # Another order or subset of the same texts (another split) is served from the same entry.
    reordered = _extract(encoder, tmp_path, texts=list(reversed(TEXTS)))
    assert reordered.cache_hit is True
    np.testing.assert_array_equal(reordered.features, first.features[::-1])


def test_batched_length_sorted_features_equal_one_text_at_a_time(encoder, tmp_path):
    batched = _extract(encoder, tmp_path).features
    alone = np.concatenate([encode_texts([text], encoder, pooling="mean", max_seq_length=32) for text in TEXTS])
    np.testing.assert_allclose(batched, alone, atol=1e-5)


def test_each_batch_is_padded_only_to_its_own_longest_row(encoder, tmp_path, monkeypatch):
    seen_lengths = []
    original = features_module.pack_inputs

    def recording_pack(*args, **kwargs):
        packed = original(*args, **kwargs)
        seen_lengths.append((packed["input_mask"].sum(axis=1).max(), packed["input_word_ids"].shape[1]))
        return packed

    monkeypatch.setattr(features_module, "pack_inputs", recording_pack)
    _extract(encoder, tmp_path)
    assert seen_lengths, "no batch was packed"
    assert all(longest == width for longest, width in seen_lengths)
    assert max(width for _, width in seen_lengths) < 32


@pytest.mark.parametrize("change", ["fingerprint", "vocab_sha256", "do_lower_case", "pooling", "layers", "combine",
                                    "max_seq_length", "texts"])
def test_cache_key_changes_with_everything_that_shapes_the_features(change):
    description = {"fingerprint": "f" * 64, "vocab_sha256": "v" * 64, "do_lower_case": True}
    settings = {"pooling": "mean", "layers": (-2, -1), "combine": "concat", "max_seq_length": 128}
    changed = {"pooling": "cls", "layers": (-1,), "combine": "mean", "max_seq_length": 129}
    digests = sorted(text_digest(text) for text in ["a", "b"])
    base = cache_key(description, sorted_digests=digests, **settings)
    if change in description:
        description = {**description, change: (not description[change]) if change == "do_lower_case" else "0" * 64}
    elif change == "texts":
        digests = sorted(text_digest(text) for text in ["a", "b "])
    else:
        settings = {**settings, change: changed[change]}
    assert cache_key(description, sorted_digests=digests, **settings) != base


def test_pooling_and_length_are_part_of_the_entry(encoder, tmp_path):
    mean = _extract(encoder, tmp_path)
    cls = _extract(encoder, tmp_path, pooling="cls")
    shorter = _extract(encoder, tmp_path, max_seq_length=4)
    assert not cls.cache_hit and not shorter.cache_hit
    assert len({mean.entry_dir, cls.entry_dir, shorter.entry_dir}) == 3
    assert not np.allclose(mean.features, cls.features)


def test_chosen_layers_are_pooled_and_combined_as_asked(encoder, tmp_path):
    """The tiny encoder has 2 layers; every layer is mean-pooled, then side by side or averaged."""
    import tensorflow as tf

    from pipeline.features.encoder_io import pool
    from tokenization.packing import pack_inputs

    texts = ["the movie is good", "not good"]
    ids = [encoder.tokenizer.encode(text) for text in texts]
    batch = pack_inputs(ids, max_seq_length=32, cls_id=encoder.tokenizer.vocab["[CLS]"],
                        sep_id=encoder.tokenizer.vocab["[SEP]"])
    tensors = [tf.constant(batch[name]) for name in ("input_word_ids", "input_mask", "input_type_ids")]
    outputs = encoder(*tensors)
    assert encoder.available_layers == len(outputs["encoder_outputs"]) == 2
    mask = batch["input_mask"][:, :, None]
    per_layer = [(layer.numpy() * mask).sum(1) / mask.sum(1) for layer in outputs["encoder_outputs"]]
    np.testing.assert_allclose(per_layer[-1], pool(outputs, tensors[1], "mean").numpy(), rtol=1e-5, atol=1e-6)

    both = _extract(encoder, tmp_path, layers=(-2, -1), combine="concat")
    averaged = _extract(encoder, tmp_path, layers=(-2, -1), combine="mean")
    last = _extract(encoder, tmp_path)
    assert not both.cache_hit and not averaged.cache_hit  # layers and combine are part of the key
    assert len({both.entry_dir, averaged.entry_dir, last.entry_dir}) == 3
    assert both.features.shape == (len(TEXTS), 64) and averaged.features.shape == (len(TEXTS), 32)
    np.testing.assert_allclose(both.features[:, 32:], last.features, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(averaged.features, (both.features[:, :32] + both.features[:, 32:]) / 2, rtol=1e-5, atol=1e-6)
    direct = encode_texts(texts, encoder, pooling="mean", layers=(-2, -1), combine="concat", max_seq_length=32)
    np.testing.assert_allclose(direct, np.concatenate(per_layer, axis=1), rtol=1e-5, atol=1e-6)
    manifest = json.loads((both.entry_dir / "manifest.json").read_text())
    assert (manifest["layers"], manifest["combine"], manifest["feature_size"]) == ([-2, -1], "concat", 64)


def test_manifest_records_what_produced_the_arrays(encoder, tmp_path):
    result = _extract(encoder, tmp_path)
    manifest = json.loads((result.entry_dir / "manifest.json").read_text())
    assert manifest["pooling"] == "mean" and manifest["max_seq_length"] == 32
    assert manifest["encoder"]["fingerprint"] == encoder.fingerprint
    assert manifest["texts"] == len(set(TEXTS))
    assert sum(shard["rows"] for shard in manifest["shards"]) == len(set(TEXTS))
    assert not (result.entry_dir / "progress.json").exists()


def _shard_files(entry_dir):
    return sorted(entry_dir.glob("shard-*.npy"))


def test_interrupted_extraction_resumes_and_gives_identical_features(encoder, tmp_path, monkeypatch):
    monkeypatch.setattr(cache_module, "SHARD_ROWS", 2)
    reference = _extract(encoder, tmp_path / "reference")

    calls = {"count": 0}
    original = features_module._encode_rows

    def dying_after_two_shards(*args, **kwargs):
        if calls["count"] == 2:
            raise KeyboardInterrupt  # what a kill looks like from inside: the process stops mid-way
        calls["count"] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(features_module, "_encode_rows", dying_after_two_shards)
    with pytest.raises(KeyboardInterrupt):
        _extract(encoder, tmp_path / "resumed")
    monkeypatch.setattr(features_module, "_encode_rows", original)
    resumed = _extract(encoder, tmp_path / "resumed")
    assert resumed.cache_hit is False and resumed.reused_shards == 2
    np.testing.assert_array_equal(resumed.features, reference.features)


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete", "manifest"])
def test_damaged_cache_is_detected_and_recomputed(encoder, tmp_path, monkeypatch, caplog, damage):
    monkeypatch.setattr(cache_module, "SHARD_ROWS", 2)
    first = _extract(encoder, tmp_path)
    shard = _shard_files(first.entry_dir)[1]
    if damage == "flip":
        payload = bytearray(shard.read_bytes())
        payload[-3] ^= 0xFF
        shard.write_bytes(bytes(payload))
    elif damage == "truncate":
        shard.write_bytes(shard.read_bytes()[:100])
    elif damage == "delete":
        shard.unlink()
    else:
        manifest = json.loads((first.entry_dir / "manifest.json").read_text())
        manifest["key"] = "0" * 64
        (first.entry_dir / "manifest.json").write_text(json.dumps(manifest))
    with caplog.at_level(logging.WARNING):
        again = _extract(encoder, tmp_path)
    assert again.cache_hit is False
    assert any("damaged" in record.getMessage() for record in caplog.records)
    np.testing.assert_array_equal(again.features, first.features)
    assert _extract(encoder, tmp_path).cache_hit is True


def test_a_cache_file_holding_python_objects_is_refused(encoder, tmp_path, monkeypatch):
    monkeypatch.setattr(cache_module, "SHARD_ROWS", 2)
    first = _extract(encoder, tmp_path)
    shard = _shard_files(first.entry_dir)[0]
    np.save(shard, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    manifest_path = first.entry_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["shards"][0]["sha256"] = bytes_sha256(shard.read_bytes())  # a forged, matching hash
    manifest_path.write_text(json.dumps(manifest))
    again = _extract(encoder, tmp_path)
    assert again.cache_hit is False
    np.testing.assert_array_equal(again.features, first.features)


def test_digests_survive_the_round_trip_through_npy_even_with_trailing_zero_bytes():
    digests = [b"\x01" * 31 + b"\x00", b"\x00" * 32, text_digest("a")]
    array = np.load(__import__("io").BytesIO(npy_bytes(digests_to_array(digests))), allow_pickle=False)
    assert digests_from_array(array) == digests


def test_progress_bars_show_tokenization_and_extraction_in_texts_per_second(encoder, tmp_path, capsys):
    _extract(encoder, tmp_path, show_progress=True)
    shown = capsys.readouterr().err
    assert "tokenizing" in shown and "features" in shown and "text/s" in shown
    _extract(encoder, tmp_path / "quiet", show_progress=False)
    assert capsys.readouterr().err == ""


def test_token_ids_are_stored_compactly_and_cut_to_leave_room_for_cls_and_sep(encoder):
    texts = ["the movie is good", "", " ".join(["good"] * 40)]
    from pipeline.features.encoder_io import tokenize_all

    stored = tokenize_all(texts, encoder.tokenizer, 8, show_progress=False)
    assert [list(ids) for ids in stored] == [encoder.tokenizer.encode(text)[:6] for text in texts]
    assert all(ids.itemsize == 4 for ids in stored)
    assert [len(ids) for ids in stored] == [4, 0, 6]


def test_the_feature_graph_is_built_once_per_encoder_model_and_pooling(encoder):
    import dataclasses

    mean = features_module.make_feature_function(encoder, "mean")
    assert features_module.make_feature_function(encoder, "mean") is mean
    # Another Encoder object around the same loaded model (the benchmark's fresh tokenizer) shares it.
    assert features_module.make_feature_function(dataclasses.replace(encoder), "mean") is mean
    assert features_module.make_feature_function(encoder, "cls") is not mean


def test_a_batch_holds_many_short_texts_and_few_long_ones():
    lengths = [3] * 100 + [100] * 25 + [300]  # token counts without [CLS] and [SEP], sorted
    bounds = features_module._batch_bounds(lengths, 64, 1024)
    assert [start for start, _ in bounds] == [0] + [end for _, end in bounds[:-1]] and bounds[-1][1] == len(lengths)
    sizes = [end - start for start, end in bounds]
    assert sizes == [64, 36, 10, 10, 5, 1]  # 64 short rows (the row cap); 10 x 102 tokens fit in 1024; 302 alone
    for start, end in bounds:
        assert end - start == 1 or (end - start) * (lengths[end - 1] + 2) <= 1024


def test_a_kill_while_reusing_shards_does_not_forget_the_ones_not_reached(encoder, tmp_path, monkeypatch):
    monkeypatch.setattr(cache_module, "SHARD_ROWS", 2)
    original_encode = features_module._encode_rows
    calls = {"count": 0}

    def dying_after_two_shards(*args, **kwargs):
        if calls["count"] == 2:
            raise KeyboardInterrupt
        calls["count"] += 1
        return original_encode(*args, **kwargs)

    monkeypatch.setattr(features_module, "_encode_rows", dying_after_two_shards)
    with pytest.raises(KeyboardInterrupt):
        _extract(encoder, tmp_path)
    monkeypatch.setattr(features_module, "_encode_rows", original_encode)

    original_reuse = cache_module._reuse_shard

    def dying_on_the_second_shard(path, record, rows):
        if path.name == "shard-00001.npy":
            raise KeyboardInterrupt
        return original_reuse(path, record, rows)

    monkeypatch.setattr(cache_module, "_reuse_shard", dying_on_the_second_shard)
    with pytest.raises(KeyboardInterrupt):
        _extract(encoder, tmp_path)
    entry_dir = next(path for path in tmp_path.iterdir() if path.is_dir())
    listed = [shard["file"] for shard in json.loads((entry_dir / "progress.json").read_text())["shards"]]
    assert listed == ["shard-00000.npy", "shard-00001.npy"]


@pytest.mark.parametrize("in_flight", [1, 2, 3])
def test_batches_computed_side_by_side_come_back_in_order_and_a_failure_stops_the_rest(in_flight):
    import threading
    import time

    bounds = [(start, start + 1) for start in range(12)]
    running, most_running, lock = [0], [0], threading.Lock()

    def encode(start: int, end: int) -> np.ndarray:
        with lock:
            running[0] += 1
            most_running[0] = max(most_running[0], running[0])
        time.sleep(0.01 * (start % 3))  # later batches can finish first
        with lock:
            running[0] -= 1
        return np.full((end - start, 2), start, np.float32)

    results = list(features_module._in_order(encode, bounds, in_flight))
    assert [int(array[0, 0]) for array in results] == list(range(12))
    assert most_running[0] == in_flight

    started = []

    def failing(start: int, end: int) -> np.ndarray:
        started.append(start)
        if start == 2:
            raise RuntimeError("batch 2 failed")
        time.sleep(0.01)
        return np.zeros((1, 2), np.float32)

    with pytest.raises(RuntimeError, match="batch 2 failed"):
        list(features_module._in_order(failing, bounds, in_flight))
    assert len(started) <= 3 + in_flight  # the batches after the failure were never started


def test_a_bar_redraws_often_on_a_terminal_and_seldom_in_a_log():
    import io

    from pipeline.base.progress_bars import LOG_INTERVAL, TERMINAL_INTERVAL, redraw_interval

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    closed = io.StringIO()
    closed.close()
    assert redraw_interval(Terminal()) == TERMINAL_INTERVAL < 1
    assert redraw_interval(io.StringIO()) == redraw_interval(closed) == LOG_INTERVAL >= 30
