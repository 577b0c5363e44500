"""The cache and the command line under abuse: kill -9, damaged files, two writers, full disks, repeat runs.

Every test here drives the real entry point, `python -m pipeline`, in a subprocess, except where a
fault cannot be produced from outside (a full disk, simulated in-process). PIPELINE_SHARD_ROWS makes
shards small, so a kill lands between and inside shards of a 6,000-text table that the tiny encoder
extracts in a few seconds.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import random
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import run_cli, start_cli, write_csv

SHARD_ROWS = 500
SHARD_ENV = {"PIPELINE_SHARD_ROWS": str(SHARD_ROWS)}  # every command line run here writes shards this small
TABLE_ROWS = 6000  # 12 shards
MAX_SEQ_LENGTH = 64
POSITIVE = ["good", "great", "love", "best", "fun"]
NEGATIVE = ["bad", "dull", "hate", "worst", "boring"]
NEUTRAL = ["the", "a", "movie", "film", "is", "was", "story", "acting", "plot", "and", "but", "very", "it"]


# ----------------------------------------------------------------------------- helpers


def generated_rows(count: int, seed: int = 0) -> list[tuple[str, str]]:
    """Distinct (text, label) rows of 2 to 40 words; the label follows the sentiment words, with some noise."""
    rng = random.Random(seed)
    rows = []
    for index in range(count):
        words = [rng.choice(NEUTRAL) for _ in range(rng.randint(1, 39))]
        positive = rng.random() < 0.5
        words.insert(rng.randrange(len(words) + 1), rng.choice(POSITIVE if positive else NEGATIVE))
        label = "pos" if positive != (rng.random() < 0.1) else "neg"
        rows.append((" ".join(words) + f" {index}", label))  # the number keeps every text distinct
    return rows


def extract_arguments(table: Path, encoder_dir: Path, cache_dir: Path) -> list:
    return ["extract", "--data", table, "--encoder", encoder_dir, "--max-seq-length", MAX_SEQ_LENGTH,
            "--cache-dir", cache_dir, "--quiet"]


def wait_for(condition, process: subprocess.Popen, *, timeout: float = 240, interval: float = 0.005) -> None:
    """Polls `condition` while `process` runs; fails with its stderr if it ends first."""
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            pytest.fail(f"the command ended (status {process.returncode}) before the moment to kill it: "
                        f"{process.stderr.read()}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("timed out waiting for the moment to kill the command")
        time.sleep(interval)


def kill_9(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL


def recorded_shards(entry_dir: Path) -> list[dict]:
    """Shards an unfinished extraction has recorded as complete (progress.json is replaced atomically)."""
    try:
        return json.loads((entry_dir / "progress.json").read_text())["shards"]
    except FileNotFoundError:
        return []


def temporaries(folder: Path) -> list[Path]:
    return list(folder.glob(".*.tmp")) if folder.exists() else []


def warning_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


def assert_entry_equals_reference(entry_dir: Path, reference_dir: Path) -> None:
    """Bit-identical: every shard's and the digests' SHA-256 match, and the arrays read back equal."""
    from pipeline.features.cache import read_cache_entry

    manifest = json.loads((entry_dir / "manifest.json").read_text())
    reference = json.loads((reference_dir / "manifest.json").read_text())
    assert manifest["key"] == reference["key"]
    assert manifest["shards"] == reference["shards"]
    assert manifest["digests_sha256"] == reference["digests_sha256"]
    digests, features = read_cache_entry(entry_dir, manifest["key"])
    reference_digests, reference_features = read_cache_entry(reference_dir, reference["key"])
    np.testing.assert_array_equal(digests, reference_digests)
    np.testing.assert_array_equal(features, reference_features)
    assert not temporaries(entry_dir), "a killed writer's temporary file was left behind"
    assert not (entry_dir / "progress.json").exists()


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def big_table(tmp_path_factory) -> Path:
    return write_csv(tmp_path_factory.mktemp("table") / "reviews.csv", ["text", "label"], generated_rows(TABLE_ROWS))


@pytest.fixture(scope="module")
def reference_entry(big_table, tiny_encoder_dir, tmp_path_factory) -> Path:
    """An uninterrupted extraction of the big table, in this process, with the same shard size."""
    from pipeline.base.config import RunConfig
    from pipeline.features import cache as cache_module
    from pipeline.runs.prepare import extract, prepare

    cache_dir = tmp_path_factory.mktemp("reference-cache")
    patch = pytest.MonkeyPatch()
    patch.setattr(cache_module, "SHARD_ROWS", SHARD_ROWS)
    try:
        config = RunConfig(data=str(big_table), encoder=str(tiny_encoder_dir), max_seq_length=MAX_SEQ_LENGTH,
                           cache_dir=str(cache_dir))
        result = extract(prepare(config), show_progress=False)
    finally:
        patch.undo()
    assert len(json.loads((result.entry_dir / "manifest.json").read_text())["shards"]) == TABLE_ROWS // SHARD_ROWS
    return result.entry_dir


# ----------------------------------------------------------------------------- 1. kill -9 and resume


def _progress_stamp(entry_dir: Path):
    """Changes whenever progress.json is replaced (every replacement is a new file)."""
    try:
        status = (entry_dir / "progress.json").stat()
    except FileNotFoundError:
        return None
    return status.st_ino, status.st_mtime_ns


def kill_9_at_a_random_moment(process: subprocess.Popen, entry_dir: Path, rng: random.Random, total: int) -> None:
    """SIGKILL once this process has recorded a random number of shards, a random part of a shard later
    (usually mid-shard), or as soon as its temporary shard file is seen; always with shards still to do."""
    initial_stamp, previous_count = _progress_stamp(entry_dir), len(recorded_shards(entry_dir))
    target = rng.randint(previous_count + 1, previous_count + 4)
    delay = rng.uniform(0, 0.15)
    state = {"seen": None}

    def moment() -> bool:
        if _progress_stamp(entry_dir) in (initial_stamp, None):
            return False  # still starting, or still the previous attempt's record
        count = len(recorded_shards(entry_dir))
        if count >= total - 3:
            return True  # never let it finish: that would prove nothing
        if state["seen"] is None and (count >= target or (count > previous_count and temporaries(entry_dir))):
            state["seen"] = time.monotonic()
        return state["seen"] is not None and time.monotonic() - state["seen"] >= delay

    wait_for(moment, process)
    kill_9(process)
    assert not (entry_dir / "manifest.json").exists(), "the test killed too late: the extraction had finished"


def test_kill_9_during_extraction_then_the_same_command_resumes_to_identical_features(
    big_table, tiny_encoder_dir, reference_entry, tmp_path
):
    cache_dir = tmp_path / "cache"
    arguments = extract_arguments(big_table, tiny_encoder_dir, cache_dir)
    entry_dir = cache_dir / reference_entry.name
    rng = random.Random(9)
    total = TABLE_ROWS // SHARD_ROWS
    for _ in range(2):
        kill_9_at_a_random_moment(start_cli(*arguments, artifacts=tmp_path / "artifacts", env=SHARD_ENV), entry_dir, rng, total)
    kept = recorded_shards(entry_dir)
    assert 1 <= len(kept) < total
    # What a kill inside a shard write leaves (the kills above may or may not have hit one): a temporary file.
    half_written = entry_dir / f".shard-{len(kept):05d}.npy.killed.tmp"
    half_written.write_bytes(b"\x93NUMPY half a shard")

    finished_run = run_cli(*arguments, artifacts=tmp_path / "artifacts", env=SHARD_ENV)
    assert finished_run.returncode == 0, finished_run.stderr
    assert f"cache miss, reused {len(kept)} verified shard(s)" in finished_run.stdout
    assert warning_lines(finished_run.stderr) == []  # a resume is not damage: nothing to warn about
    assert_entry_equals_reference(entry_dir, reference_entry)


# ----------------------------------------------------------------------------- 2. damage is caught


def _flip_a_byte(path: Path) -> None:
    payload = bytearray(path.read_bytes())
    payload[len(payload) // 2] ^= 0x01
    path.write_bytes(bytes(payload))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])


def _edit_manifest(entry_dir: Path, change) -> None:
    path = entry_dir / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


DAMAGE = {
    # name: (what to do to the entry, what the warning must name, shards that can be reused)
    "flipped byte": (lambda entry: _flip_a_byte(entry / "shard-00003.npy"), ["shard-00003.npy", "SHA-256"], 11),
    "truncated shard": (lambda entry: _truncate(entry / "shard-00007.npy"), ["shard-00007.npy", "SHA-256"], 11),
    "missing shard": (lambda entry: (entry / "shard-00000.npy").unlink(), ["shard-00000.npy", "missing"], 11),
    "all four kinds at once": (
        lambda entry: (_flip_a_byte(entry / "shard-00001.npy"), _truncate(entry / "shard-00002.npy"),
                       (entry / "shard-00011.npy").unlink(),
                       _edit_manifest(entry, lambda manifest: manifest["shards"][4].update(rows=499))),
        ["shard-00001.npy does not match", "shard-00002.npy does not match", "shard-00011.npy is missing",
         "shard-00004.npy has 500 rows, the manifest says 499"], 8,
    ),
    "flipped digests": (lambda entry: _flip_a_byte(entry / "digests.npy"), ["digests.npy"], 12),
    "manifest of another key": (
        lambda entry: _edit_manifest(entry, lambda manifest: manifest.update(key="0" * 64)),
        ["does not match this cache key"], 0,
    ),
    "manifest with another pooling": (
        lambda entry: _edit_manifest(entry, lambda manifest: manifest.update(pooling="cls")),
        ["pooling"], 12,
    ),
    "manifest with a wrong row count": (
        lambda entry: _edit_manifest(entry, lambda manifest: manifest["shards"][4].update(rows=499)),
        ["shard-00004.npy", "499"], 11,
    ),
    "manifest cut short": (
        lambda entry: (entry / "manifest.json").write_text((entry / "manifest.json").read_text()[:200]),
        ["damaged"], 0,
    ),
}


DAMAGE["python objects behind a forged hash"] = (
    lambda entry: _store_python_objects(entry, 6), ["shard-00006.npy is not a plain numeric array"], 11,
)


def _store_python_objects(entry_dir: Path, shard_index: int) -> None:
    """An object array (loading it would need pickle), with the manifest's hash forged to match."""
    from pipeline.base.files import bytes_sha256

    shard = entry_dir / f"shard-{shard_index:05d}.npy"
    np.save(shard, np.array([{"python": "object"}] * SHARD_ROWS, dtype=object), allow_pickle=True)
    _edit_manifest(entry_dir, lambda manifest: manifest["shards"][shard_index].update(
        sha256=bytes_sha256(shard.read_bytes())))


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_each_kind_of_damage_is_one_warning_and_is_recomputed(
    damage, big_table, tiny_encoder_dir, reference_entry, tmp_path, monkeypatch, capsys, caplog
):
    """Through pipeline.commands.cli.main in this process (the subprocess tests below cover the real entry point)."""
    from pipeline.commands.cli import main
    from pipeline.features import cache as cache_module

    monkeypatch.setattr(cache_module, "SHARD_ROWS", SHARD_ROWS)
    cache_dir = tmp_path / "cache"
    entry_dir = cache_dir / reference_entry.name
    shutil.copytree(reference_entry, entry_dir)
    do_damage, named, reusable = DAMAGE[damage]
    do_damage(entry_dir)
    with caplog.at_level(logging.INFO):
        assert main([str(argument) for argument in extract_arguments(big_table, tiny_encoder_dir, cache_dir)]) == 0
    warnings = [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "damaged" in warnings[0], warnings
    for fragment in named:
        assert fragment in warnings[0]
    stdout = capsys.readouterr().out
    assert "cache miss" in stdout
    if reusable:
        assert f"reused {reusable} verified shard(s)" in stdout
    else:
        assert "reused" not in stdout
    assert_entry_equals_reference(entry_dir, reference_entry)


def test_a_run_on_a_damaged_cache_warns_once_and_trains_on_recomputed_features(
    big_table, tiny_encoder_dir, reference_entry, tmp_path
):
    """The real command on a flipped, a truncated and a missing shard and a manifest that does not match
    the files: one warning line naming all four, a complete run, and features equal to the clean ones."""
    cache_dir = tmp_path / "cache"
    entry_dir = cache_dir / reference_entry.name
    shutil.copytree(reference_entry, entry_dir)
    do_damage, named, reusable = DAMAGE["all four kinds at once"]
    do_damage(entry_dir)
    result = run_cli("run", "--data", big_table, "--encoder", tiny_encoder_dir, "--max-seq-length", MAX_SEQ_LENGTH,
                     "--cache-dir", cache_dir, "--epochs", 1, "--ensemble", 1, "--output-dir", tmp_path / "run", "--quiet",
                     artifacts=tmp_path / "artifacts", env=SHARD_ENV)
    assert result.returncode == 0, result.stderr
    lines = warning_lines(result.stderr)
    assert len(lines) == 1 and lines[0].startswith("WARNING") and "damaged" in lines[0], result.stderr
    for fragment in named:
        assert fragment in lines[0]
    assert f"cache miss, reused {reusable} verified shard(s)" in result.stdout
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["features"]["cache_hit"] is False and metrics["features"]["reused_shards"] == reusable
    assert_entry_equals_reference(entry_dir, reference_entry)


# ----------------------------------------------------------------------------- 3. two writers


def test_two_extractions_of_the_same_key_at_once_leave_one_valid_cache(
    big_table, tiny_encoder_dir, reference_entry, tmp_path
):
    cache_dir = tmp_path / "cache"
    arguments = extract_arguments(big_table, tiny_encoder_dir, cache_dir)
    processes = [start_cli(*arguments, artifacts=tmp_path / f"artifacts-{index}", env=SHARD_ENV) for index in range(2)]
    outputs = [process.communicate(timeout=300) for process in processes]
    for process, (_stdout, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stderr
        assert warning_lines(stderr) == [], stderr
    states = sorted("hit" if "cache hit" in stdout else "miss" for stdout, _ in outputs)
    assert states == ["hit", "miss"], outputs  # one computed, the other waited for the lock, then read
    assert [path.name for path in cache_dir.iterdir() if not path.name.startswith(".")] == [reference_entry.name]
    assert_entry_equals_reference(cache_dir / reference_entry.name, reference_entry)


def test_an_extraction_waits_while_another_process_holds_the_key(tiny_encoder_dir, tmp_path, caplog):
    """The lock is per key and file-based; while it is held, nothing of the entry is written."""
    from filelock import FileLock

    from pipeline.encoders.encoder import load_encoder
    from pipeline.features import extraction as features_module

    encoder = load_encoder(str(tiny_encoder_dir))
    texts = [text for text, _ in generated_rows(50, seed=4)]
    cache_dir = tmp_path / "cache"
    probe = features_module.extract_features(texts, encoder, pooling="mean", max_seq_length=32,
                                             cache_dir=tmp_path / "probe", show_progress=False)
    lock = FileLock(str(cache_dir / f".{probe.entry_dir.name}.lock"))
    cache_dir.mkdir()
    lock.acquire()
    outcome = {}
    worker = threading.Thread(target=lambda: outcome.update(result=features_module.extract_features(
        texts, encoder, pooling="mean", max_seq_length=32, cache_dir=cache_dir, show_progress=False)))
    try:
        with caplog.at_level(logging.INFO, logger="pipeline.features.cache"):
            worker.start()
            time.sleep(2)
            assert worker.is_alive() and not (cache_dir / probe.entry_dir.name).exists()
            assert any("waiting" in record.getMessage() for record in caplog.records)
    finally:
        lock.release()
    worker.join(timeout=120)
    assert outcome["result"].cache_hit is False
    np.testing.assert_array_equal(outcome["result"].features, probe.features)


# ----------------------------------------------------------------------------- 4. the key is complete


def _entry_for(table: Path, encoder_dir: Path, cache_dir: Path, **overrides) -> tuple[Path, bool]:
    from pipeline.base.config import RunConfig
    from pipeline.runs.prepare import extract, prepare

    settings = {"pooling": "mean", "max_seq_length": 32, **overrides}
    config = RunConfig(data=str(table), encoder=str(encoder_dir), cache_dir=str(cache_dir), **settings)
    result = extract(prepare(config), show_progress=False)
    return result.entry_dir, result.cache_hit


def test_every_input_of_the_features_gives_its_own_cache_entry(tiny_encoder_dir, tmp_path):
    """End to end through prepare + extract: an encoder file, the vocabulary, lower-casing, length, pooling, a text."""
    from tiny_bert import write_tiny_checkpoint

    from pipeline.encoders.convert import convert_checkpoint

    rows = generated_rows(120, seed=3)
    table = write_csv(tmp_path / "reviews.csv", ["text", "label"], rows)
    one_text_changed = write_csv(tmp_path / "changed.csv", ["text", "label"], [(rows[0][0] + "!", rows[0][1]), *rows[1:]])

    other_vocabulary = tmp_path / "other-vocabulary"
    shutil.copytree(tiny_encoder_dir, other_vocabulary)
    vocab_files = list((other_vocabulary / "assets").glob("*vocab*"))
    assert len(vocab_files) == 1
    tokens = vocab_files[0].read_text().splitlines()
    good, bad = tokens.index("good"), tokens.index("bad")
    tokens[good], tokens[bad] = tokens[bad], tokens[good]  # same size, same weights, other ids
    vocab_files[0].write_text("\n".join(tokens) + "\n")

    checkpoint = write_tiny_checkpoint(tmp_path / "cased-checkpoint")
    (checkpoint / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": False}))
    cased = convert_checkpoint(checkpoint, tmp_path / "cased-encoder")
    other_weights = convert_checkpoint(write_tiny_checkpoint(tmp_path / "seed-1-checkpoint", seed=1),
                                       tmp_path / "seed-1-encoder")

    cache_dir = tmp_path / "cache"
    base, hit = _entry_for(table, tiny_encoder_dir, cache_dir)
    assert hit is False
    variants = {
        "other weights": _entry_for(table, other_weights, cache_dir),
        "other vocabulary": _entry_for(table, other_vocabulary, cache_dir),
        "no lower-casing": _entry_for(table, cased, cache_dir),
        "max_seq_length": _entry_for(table, tiny_encoder_dir, cache_dir, max_seq_length=33),
        "cls pooling": _entry_for(table, tiny_encoder_dir, cache_dir, pooling="cls"),
        "pooled pooling": _entry_for(table, tiny_encoder_dir, cache_dir, pooling="pooled"),
        "one text": _entry_for(one_text_changed, tiny_encoder_dir, cache_dir),
    }
    for name, (_entry_dir, cache_hit) in variants.items():
        assert cache_hit is False, name
    entries = [base] + [entry_dir for entry_dir, _ in variants.values()]
    assert len(set(entries)) == len(entries)
    # ...while another seed (another split of the same texts) is served from the base entry.
    assert _entry_for(table, tiny_encoder_dir, cache_dir, seed=7) == (base, True)


# ----------------------------------------------------------------------------- 5. nothing unsafe


def test_the_converted_model_records_the_hash_of_the_weights_it_came_from(tiny_encoder_dir):
    from pipeline.base.files import file_sha256

    info = json.loads((tiny_encoder_dir / "pipeline_model.json").read_text())
    assert info["source"]["sha256"] == file_sha256(tiny_encoder_dir.parent / "checkpoint" / "model.safetensors")


# ----------------------------------------------------------------------------- 6 and 7. reproducible, even after a kill


def test_a_run_killed_in_training_reruns_to_the_metrics_of_an_uninterrupted_run(tiny_encoder_dir, tmp_path):
    """Two real processes with the same data, config and seed, separate caches. One is first killed with
    -9 during training: its folder must not look complete, and the same command then reuses the cached
    features and finishes. Both must agree to 1e-6, with bit-identical features."""
    table = write_csv(tmp_path / "reviews.csv", ["text", "label"], generated_rows(600, seed=6))
    config = ["run", "--data", table, "--encoder", tiny_encoder_dir, "--max-seq-length", 48, "--batch-size", 16,
              "--seed", 11, "--dropout-rate", 0.2, "--quiet"]
    folders = {name: (tmp_path / f"run-{name}", tmp_path / f"cache-{name}") for name in ("plain", "killed")}

    def arguments(name):
        run_dir, cache_dir = folders[name]
        return [*config, "--output-dir", run_dir, "--cache-dir", cache_dir]

    plain = start_cli(*arguments("plain"), "--epochs", 3, artifacts=tmp_path / "artifacts-plain", env=SHARD_ENV)
    run_dir = folders["killed"][0]
    doomed = start_cli(*arguments("killed"), "--epochs", 400, artifacts=tmp_path / "artifacts-killed", env=SHARD_ENV)
    wait_for(lambda: (run_dir / "training_log.csv").exists() or (run_dir / "logs").exists(), doomed)
    time.sleep(0.3)
    kill_9(doomed)
    assert (run_dir / "INCOMPLETE").is_file()
    assert not (run_dir / "metrics.json").exists()

    rerun = run_cli(*arguments("killed"), "--epochs", 3, artifacts=tmp_path / "artifacts-killed", env=SHARD_ENV)
    assert rerun.returncode == 0, rerun.stderr
    assert "cache hit" in rerun.stdout
    _, plain_stderr = plain.communicate(timeout=300)
    assert plain.returncode == 0, plain_stderr

    first, second = (json.loads((folders[name][0] / "metrics.json").read_text()) for name in ("plain", "killed"))
    assert not (run_dir / "INCOMPLETE").exists()
    assert second["features"]["cache_hit"] is True and first["features"]["cache_hit"] is False
    # The default head is three heads averaged, each trained the full 3 epochs.
    assert first["training"]["epochs_run"] == second["training"]["epochs_run"] == 3 * 3
    assert [member["epochs_run"] for member in second["training"]["members"]] == [3, 3, 3]
    assert first["config"]["split_sizes"] == second["config"]["split_sizes"]
    for part in ("test", "val"):
        for name in ("accuracy", "auroc", "pr_auc", "f1"):
            assert first[part][name] == pytest.approx(second[part][name], abs=1e-6), (part, name)
    for name in ("accuracy", "auroc", "pr_auc", "f1"):
        assert first["baseline"]["test"][name] == pytest.approx(second["baseline"]["test"][name], abs=1e-6)
    predictions = [np.load(folders[name][0] / "test_predictions.npz", allow_pickle=False)
                   for name in ("plain", "killed")]
    np.testing.assert_array_equal(predictions[0]["labels"], predictions[1]["labels"])  # the same test split
    np.testing.assert_allclose(predictions[0]["probabilities"], predictions[1]["probabilities"], atol=1e-6)
    entries = [next(path for path in folders[name][1].iterdir() if not path.name.startswith("."))
               for name in ("plain", "killed")]
    assert_entry_equals_reference(entries[1], entries[0])


# ----------------------------------------------------------------------------- 8. a full disk (simulated)


def _disk_fills_after(monkeypatch, successful_writes: int) -> None:
    """Every atomic write ends in fsync; after `successful_writes` of them the disk is 'full'."""
    from pipeline.base import files

    calls = {"count": 0}
    real_fsync = os.fsync

    def fsync(descriptor):
        calls["count"] += 1
        if calls["count"] > successful_writes:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(descriptor)

    monkeypatch.setattr(files.os, "fsync", fsync)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def test_a_full_disk_during_extraction_is_one_error_line_and_leaves_the_cache_resumable(
    tiny_encoder_dir, tmp_path, monkeypatch, capsys
):
    from pipeline.commands.cli import main
    from pipeline.features import cache as cache_module

    monkeypatch.setattr(cache_module, "SHARD_ROWS", 20)
    table = write_csv(tmp_path / "reviews.csv", ["text", "label"], generated_rows(200, seed=8))  # 10 shards
    other_table = write_csv(tmp_path / "other.csv", ["text", "label"], generated_rows(100, seed=9))
    cache_dir = tmp_path / "cache"
    arguments = ["--encoder", str(tiny_encoder_dir), "--max-seq-length", "32", "--cache-dir", str(cache_dir), "--quiet"]
    assert main(["extract", "--data", str(other_table), *arguments]) == 0
    before = _snapshot(cache_dir)
    capsys.readouterr()

    with monkeypatch.context() as patch:
        _disk_fills_after(patch, successful_writes=8)  # shards 0-3, each followed by progress.json; shard 4 fails
        status = main(["extract", "--data", str(table), *arguments])
    stderr = capsys.readouterr().err
    assert status == 2
    assert stderr.count("\n") == 1 and stderr.startswith("error: no space left on the device"), stderr
    assert "free some space" in stderr
    after = _snapshot(cache_dir)
    assert {name: after[name] for name in before} == before  # the complete entry is untouched
    new_files = sorted(set(after) - set(before))
    assert not [name for name in new_files if name.endswith(".tmp") or name.endswith("manifest.json")]
    new_entry = cache_dir / Path(next(name for name in new_files if name.endswith("progress.json"))).parent
    kept = recorded_shards(new_entry)
    assert len(kept) == 4
    assert main(["extract", "--data", str(table), *arguments]) == 0
    assert "reused 4 verified shard(s)" in capsys.readouterr().out


def test_a_full_disk_while_writing_the_run_folder_is_one_error_and_leaves_no_run_folder(
    tiny_encoder_dir, tmp_path, monkeypatch, capsys
):
    from pipeline.commands.cli import main
    from pipeline.runs import run as run_module

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(run_module.np, "savez", full_disk)
    table = write_csv(tmp_path / "reviews.csv", ["text", "label"], generated_rows(200, seed=10))
    status = main(["run", "--data", str(table), "--encoder", str(tiny_encoder_dir), "--max-seq-length", "32",
                   "--epochs", "1", "--ensemble", "1", "--cache-dir", str(tmp_path / "cache"), "--output-dir", str(tmp_path / "run"),
                   "--quiet"])
    stderr = capsys.readouterr().err
    assert status == 2
    assert stderr.count("\n") == 1 and stderr.startswith("error: no space left on the device"), stderr
    assert not (tmp_path / "run").exists()
