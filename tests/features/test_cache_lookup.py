"""The cache answers which of its entries hold some texts under given settings (features.cache.entries_holding), reads
what it found against the manifest it read once, and a cache hit reads each manifest.json once. Entries are written
here by hand through the cache's own writer, with a stand-in encoder description: no encoder, no TensorFlow."""

from __future__ import annotations

import numpy as np

from pipeline.features import cache

ENCODER = {"fingerprint": "f" * 64, "vocab_sha256": "v" * 64, "do_lower_case": True}
SETTINGS = {"pooling": "mean", "layers": (-1,), "combine": "concat", "max_seq_length": 16}
WINDOWS = {"strategy": "windows", "window_overlap": 3, "max_windows": 8}
WIDTH = 4


def write_entry(cache_dir, texts, *, encoder=ENCODER, long_texts=WINDOWS, texts_cut=0, settings=SETTINGS, offset=0.0,
                precision_recorded=True):
    """An entry of `texts` (feature row i of text i is offset + i), as the local runner writes one."""
    digests = [cache.text_digest(text) for text in texts]
    features = (offset + np.arange(len(texts), dtype=np.float32))[:, None].repeat(WIDTH, axis=1)
    key = cache.cache_key(encoder, sorted_digests=sorted(digests), long_texts=long_texts, **settings)
    description = cache.manifest_description(
        {**encoder, **({"precision": encoder.get("precision", "float32")} if precision_recorded else {})},
        texts=len(texts), feature_size=WIDTH, extraction_seconds=0.0,
        long_texts={**long_texts, "texts_cut": texts_cut, "token_length": {"median": 3}}, **settings)
    with cache.locked_entry(cache_dir, key) as entry:
        entry.begin_writing()
        entry.write_shard(0, features)
        entry.finish(cache.digests_to_array(digests), description)
    return cache_dir / cache.entry_dir_name(key)


def lookup(cache_dir, texts, encoder=ENCODER, long_texts=WINDOWS):
    wanted = {cache.text_digest(text) for text in texts}
    return cache.entries_holding(cache_dir, wanted, encoder, feature_size=WIDTH, long_texts=long_texts, **SETTINGS)


def test_entries_of_these_settings_that_hold_some_of_the_texts_are_found_and_read_verified(tmp_path):
    holding = write_entry(tmp_path, ["a", "b", "c"])
    write_entry(tmp_path, ["x", "y"], offset=10)  # the same settings, none of the texts
    write_entry(tmp_path, ["a", "b"], encoder={**ENCODER, "fingerprint": "g" * 64})  # another encoder
    write_entry(tmp_path, ["a", "b"], encoder={**ENCODER, "precision": "int8"})  # another precision
    write_entry(tmp_path, ["a", "b"], long_texts={"strategy": "head-tail", "head_tokens": 2}, texts_cut=1)
    found = lookup(tmp_path, ["b", "c", "d"])
    assert [(entry.directory, entry.digests) for entry in found] == [
        (holding, {cache.text_digest("b"), cache.text_digest("c")})]
    digests, features = cache.read_held_entry(found[0], ENCODER, feature_size=WIDTH, long_texts=WINDOWS, **SETTINGS)
    assert cache.digests_from_array(digests) == [cache.text_digest(text) for text in "abc"]
    assert features[:, 0].tolist() == [0.0, 1.0, 2.0]


def test_older_entries_serve_as_what_they_meant_by_saying_nothing(tmp_path):
    """No precision recorded: float32. Truncation with no text cut: the same features as any reading."""
    older = write_entry(tmp_path, ["a"], precision_recorded=False)
    truncated = write_entry(tmp_path, ["b"], long_texts={"strategy": "truncate"}, texts_cut=0)
    write_entry(tmp_path, ["c"], long_texts={"strategy": "truncate"}, texts_cut=2)  # cut texts: not the same features
    assert sorted(entry.directory for entry in lookup(tmp_path, ["a", "b", "c"])) == sorted([older, truncated])
    assert lookup(tmp_path, ["a"], encoder={**ENCODER, "precision": "int8"}) == []


def test_a_damaged_entry_is_found_but_serves_nothing(tmp_path):
    entry_dir = write_entry(tmp_path, ["a", "b"])
    shard = entry_dir / cache.shard_file_name(0)
    payload = bytearray(shard.read_bytes())
    payload[-1] ^= 0xFF
    shard.write_bytes(bytes(payload))
    (found,) = lookup(tmp_path, ["a"])
    assert cache.read_held_entry(found, ENCODER, feature_size=WIDTH, long_texts=WINDOWS, **SETTINGS) is None


def test_a_cache_hit_reads_its_manifest_once(tmp_path, monkeypatch):
    entry_dir = write_entry(tmp_path, ["a", "b"])
    reads = []
    real_read = cache.read_manifest
    monkeypatch.setattr(cache, "read_manifest", lambda directory: reads.append(directory) or real_read(directory))
    key = cache.cache_key(ENCODER, sorted_digests=sorted(cache.text_digest(text) for text in "ab"), long_texts=WINDOWS,
                          **SETTINGS)
    expected = cache.expected_manifest_fields(ENCODER, texts=2, feature_size=WIDTH, long_texts=WINDOWS, **SETTINGS)
    with cache.locked_entry(tmp_path, key) as entry:
        assert entry.read(expected=expected) is not None
        assert entry.recorded_long_texts()["texts_cut"] == 0
    assert reads == [entry_dir]
