"""The sweep command: trials on cached features, one HParams view, only the best scored on the test split."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import write_csv, write_tiny_csv

from pipeline.base.config import RunConfig
from pipeline.base.errors import UserError
from pipeline.runs.sweep import PROBE_STRENGTHS, Trial, default_trials, probe_as_keras, summary_lines, sweep


@pytest.mark.parametrize("classes", [2, 3])
def test_a_probe_becomes_a_keras_model_with_the_same_probabilities(classes):
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from pipeline.training.head import predict_probabilities

    generator = np.random.default_rng(0)
    labels = np.arange(300) % classes
    features = (generator.normal(size=(300, 12)) + labels[:, None] * 0.7) * 30 + 5
    features[:, 3] = 2.0  # a constant column: StandardScaler keeps its scale at 1
    scaler = StandardScaler().fit(features)
    probe = LogisticRegression(max_iter=2000).fit(scaler.transform(features), labels)
    model = probe_as_keras(scaler.mean_, scaler.var_, probe.coef_, probe.intercept_)
    expected = probe.predict_proba(scaler.transform(features))
    np.testing.assert_allclose(predict_probabilities(model, features.astype(np.float32)), expected, atol=1e-5)


def test_the_grid_pins_the_options_the_user_set():
    trials = default_trials()
    assert len(trials) == 20 and sum(trial.model == "probe" for trial in trials) == len(PROBE_STRENGTHS)
    pinned = default_trials(RunConfig(hidden_units=(32,), learning_rate=1e-3))
    mlp = [trial for trial in pinned if trial.model == "mlp"]
    assert len(mlp) == 4 and all(trial.options["hidden_units"] == (32,) for trial in mlp)
    assert all(trial.options["learning_rate"] == 1e-3 for trial in mlp)


def test_a_sweep_with_no_trials_is_refused(tmp_path):
    with pytest.raises(UserError, match="no trials left"):
        sweep(RunConfig(data=str(tmp_path / "missing.csv")), trials=[])


def test_a_sweep_of_the_paperspace_head_is_one_error_line_and_writes_nothing(tmp_path, capsys):
    from pipeline.commands.cli import main

    data = write_tiny_csv(tmp_path / "reviews.csv", 60)
    status = main(["sweep", "--data", str(data), "--head", "paperspace", "--output-dir", str(tmp_path / "run"),
                   "--cache-dir", str(tmp_path / "cache"), "--quiet"])
    stderr = capsys.readouterr().err
    assert status == 2 and stderr.count("\n") == 1 and stderr.startswith("error: the sweep has no trials left")
    assert "drop --head" in stderr
    assert not (tmp_path / "run").exists() and not (tmp_path / "cache").exists()


def test_a_sweep_of_ensembles_is_one_error_line_and_writes_nothing(tmp_path, capsys):
    from pipeline.commands.cli import main

    data = write_tiny_csv(tmp_path / "reviews.csv", 60)
    status = main(["sweep", "--data", str(data), "--ensemble", "3", "--output-dir", str(tmp_path / "run"),
                   "--cache-dir", str(tmp_path / "cache"), "--quiet"])
    stderr = capsys.readouterr().err
    assert status == 2 and stderr.count("\n") == 1
    assert stderr.startswith("error: --ensemble 3 cannot be swept") and "run --ensemble N" in stderr
    assert not (tmp_path / "run").exists() and not (tmp_path / "cache").exists()


@pytest.mark.parametrize("classes", [2, 3])
def test_sweep_keeps_the_best_trial_and_scores_only_it_on_the_test_split(tmp_path, tiny_encoder_dir, classes, capsys):
    from pipeline.runs.run_folder import read_run_folder

    if classes == 2:
        data = write_tiny_csv(tmp_path / "reviews.csv", 120)
    else:
        words = ["good", "bad", "not"]
        rows = [(f"the movie is {words[index % 3]} {'and the film' if index % 4 else ''}".strip(), f"class{index % 3}")
                for index in range(150)]
        data = write_csv(tmp_path / "three.csv", ["text", "label"], rows)
    trials = [Trial("mlp-a", "mlp", {"hidden_units": (8,), "dropout_rate": 0.3, "weight_decay": 1e-3, "learning_rate": 3e-3}),
              Trial("probe-C1", "probe", {"C": 1.0}), Trial("probe-C0.01", "probe", {"C": 0.01})]
    config = RunConfig(data=str(data), encoder=str(tiny_encoder_dir), max_seq_length=16, pooling="mean", layers="all",
                       output_dir=str(tmp_path / "run"), cache_dir=str(tmp_path / "cache"), seed=3,
                       class_weights="balanced" if classes == 3 else None)
    result = sweep(config, trials=trials, show_progress=True)
    stderr = capsys.readouterr().err  # not a terminal: no bar redrawn into a CI log, nor TensorFlow's retracing warning
    assert "trial/s" not in stderr and "retracing" not in stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    record = metrics["sweep"]
    assert [row["trial"] for row in record["trials"]] == ["mlp-a", "probe-C1", "probe-C0.01"]
    best = max(record["trials"], key=lambda row: row["val_auroc"])
    assert record["best"] == best["trial"] and "only the best trial" in record["test_split"]
    assert all("test" not in row for row in record["trials"])  # no other trial has a test score anywhere
    mlp_row = record["trials"][0]
    assert 1 <= mlp_row["epochs_run"] <= 10 and record["trials"][1]["epochs_run"] is None
    summary = summary_lines(result).splitlines()  # an mlp trial shows its epochs, a probe its seconds
    assert any(line.split()[0] == "mlp-a" and line.endswith(f"({mlp_row['epochs_run']} epochs)") for line in summary)
    assert any(line.split()[0] == "probe-C1" and line.endswith(" s)") for line in summary)
    assert f"The mlp trials, trained in step: {mlp_row['seconds']:.1f} s." in summary
    assert metrics["config"]["layers"] == "-2,-1" and metrics["test"]["rows"] == result.metrics["test"]["rows"]
    for trial in ("mlp-a", "probe-C1", "probe-C0.01"):  # one HParams view: a session per trial
        assert list((tmp_path / "run" / "logs" / "sweep" / trial).glob("events.out.tfevents.*"))
    finished = read_run_folder(tmp_path / "run")  # an ordinary run folder: export and predict take it
    labels, probabilities = finished.test_predictions()
    assert probabilities.shape == (len(labels), classes)


def test_mlp_trials_trained_in_step_groups_score_as_trained_one_at_a_time(tmp_path, tiny_encoder_dir, monkeypatch):
    """One group per trial is each trial trained alone; two groups train in step side by side: the same scores.
    The groups build their heads and graphs in turn, one group's after the other's, never interleaved."""
    import threading

    from pipeline.runs import sweep as sweep_module
    from pipeline.training.in_step import HeadsInStep

    data = write_tiny_csv(tmp_path / "reviews.csv", 120)
    trials = [Trial(f"mlp-{units}-{rate}", "mlp", {"hidden_units": (units,), "dropout_rate": 0.3, "weight_decay": 1e-3,
                                                   "learning_rate": rate})
              for units, rate in [(8, 3e-3), (16, 1e-3), (4, 1e-2)]] + [Trial("probe-C1", "probe", {"C": 1.0})]
    original, running, most_running, sizes, lock = sweep_module._train_mlp_group, [0], [0], [], threading.Lock()
    original_build, original_graph, building = sweep_module._built_mlp, HeadsInStep.build_graph, []

    def counted(group_trials, *arguments, **options):
        with lock:
            running[0] += 1
            most_running[0] = max(most_running[0], running[0])
            sizes.append(len(group_trials))
        try:
            trained = original(group_trials, *arguments, **options)
            parts, labels, prepared = arguments[:3]
            for model, _, _, val_auroc in trained:  # the score its training gave is the kept model's, recounted
                assert val_auroc == sweep_module._val_auroc(model, parts["validation"], labels["validation"],
                                                            len(prepared.label_names))
            return trained
        finally:
            with lock:
                running[0] -= 1

    def built(*arguments, **options):
        building.append(("head", threading.current_thread().name))
        return original_build(*arguments, **options)

    def graph_built(self):
        original_graph(self)
        building.append(("graph", threading.current_thread().name))

    monkeypatch.setattr(sweep_module, "_train_mlp_group", counted)
    monkeypatch.setattr(sweep_module, "_built_mlp", built)
    monkeypatch.setattr(HeadsInStep, "build_graph", graph_built)
    scores = {}
    for groups, group_sizes in ((3, [1, 1, 1]), (2, [2, 1])):
        monkeypatch.setattr(sweep_module, "MLP_GROUPS", groups)
        most_running[0], sizes[:], building[:] = 0, [], []
        config = RunConfig(data=str(data), encoder=str(tiny_encoder_dir), max_seq_length=16, pooling="mean",
                           output_dir=str(tmp_path / f"run-{groups}"), cache_dir=str(tmp_path / "cache"), seed=3)
        record = sweep(config, trials=trials, show_progress=False).metrics["sweep"]
        assert most_running[0] == groups and sorted(sizes) == sorted(group_sizes)
        threads = [thread for kind, thread in building if kind == "graph"]
        assert len(set(threads)) == groups  # each group's heads, then its graph, then the next group's
        assert building == [(kind, thread) for thread, size in zip(threads, group_sizes)
                            for kind in ["head"] * size + ["graph"]]
        scores[groups] = [(row["trial"], row["val_auroc"]) for row in record["trials"]]
        assert all(row["seconds"] > 0 for row in record["trials"] if row["model"] == "mlp")
    assert [name for name, _ in scores[2]] == [trial.name for trial in trials]  # reported in the grid's order
    assert scores[2] == scores[3]


def test_a_group_that_fails_to_build_still_lets_the_next_one_go():
    import threading

    from pipeline.runs.sweep import _turn

    mine, following = threading.Event(), threading.Event()
    mine.set()
    with pytest.raises(RuntimeError, match="no heads"), _turn(mine, following):
        raise RuntimeError("no heads")
    assert following.is_set()
