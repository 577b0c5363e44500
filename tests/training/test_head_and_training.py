"""The Keras head, its training callbacks, and the evaluation numbers, on small synthetic features."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from pipeline.evaluation.metrics import classification_metrics, macro_auroc, macro_pr_auc, ranking_metrics
from pipeline.evaluation.probe import logistic_regression_baseline
from pipeline.runs.run_folder import BEST_WEIGHTS_FILE
from pipeline.training.head import build_head, compile_head, predict_probabilities
from pipeline.training.train import make_deterministic, train_head


def _separable(num_classes: int, rows: int = 600, dim: int = 16, seed: int = 0):
    generator = np.random.default_rng(seed)
    labels = np.arange(rows) % num_classes
    centres = generator.normal(size=(num_classes, dim)) * 2.0
    features = centres[labels] + generator.normal(size=(rows, dim))
    return features.astype(np.float32), labels.astype(np.int64)


def test_default_head_is_the_paperspace_stack():
    model = build_head(384, 2)
    kinds = [(type(layer).__name__, getattr(layer, "units", None)) for layer in model.layers[1:]]
    assert kinds == [("Dense", 50), ("BatchNormalization", None), ("Dense", 30), ("Dense", 30), ("Dense", 1)]
    assert model.layers[-1].activation.__name__ == "sigmoid"


def test_more_classes_get_a_softmax_and_options_change_the_head():
    model = build_head(8, 3, hidden_units=(16, 8), dropout_rate=0.2)
    assert model.layers[-1].units == 3 and model.layers[-1].activation.__name__ == "softmax"
    assert [layer.units for layer in model.layers if type(layer).__name__ == "Dense"] == [16, 8, 3]
    assert sum(type(layer).__name__ == "Dropout" for layer in model.layers) == 2


def _fit(num_classes, run_dir, seed=7, epochs=4):
    features, labels = _separable(num_classes)
    make_deterministic(seed)
    model = compile_head(build_head(features.shape[1], num_classes, seed=seed), num_classes)
    history = train_head(
        model, train_features=features[:400], train_labels=labels[:400], val_features=features[400:],
        val_labels=labels[400:], num_classes=num_classes, best_weights_path=run_dir / BEST_WEIGHTS_FILE,
        tensorboard_dir=run_dir / "logs", csv_log_path=run_dir / "training_log.csv", epochs=epochs, batch_size=64, verbose=0,
    )
    return model, history, features, labels


@pytest.mark.parametrize("num_classes", [2, 3])
def test_training_learns_and_writes_checkpoint_csv_and_tensorboard_logs(tmp_path, num_classes):
    model, history, features, labels = _fit(num_classes, tmp_path)
    assert "val_auroc" in history.history and "lr" in history.history
    assert max(history.history["val_auroc"]) > 0.9
    assert (tmp_path / BEST_WEIGHTS_FILE).is_file()
    assert list((tmp_path / "logs" / "train").glob("events.out.tfevents.*"))
    assert list((tmp_path / "logs" / "validation").glob("events.out.tfevents.*"))
    with open(tmp_path / "training_log.csv") as handle:
        columns = next(csv.reader(handle))
    assert {"auroc", "val_auroc", "val_loss", "lr"} <= set(columns)
    probabilities = predict_probabilities(model, features[400:])
    assert probabilities.shape == (200, num_classes)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_the_kept_weights_are_those_of_the_best_validation_epoch(tmp_path):
    model, history, features, labels = _fit(2, tmp_path, epochs=5)
    best = max(history.history["val_auroc"])
    final = classification_metrics(labels[400:], predict_probabilities(model, features[400:]), 2)["auroc"]
    # Keras's AUROC uses 1000 thresholds; scikit-learn's is exact, hence the tolerance.
    assert final == pytest.approx(best, abs=2e-3)


def test_same_seed_gives_identical_weights(tmp_path):
    first, *_ = _fit(2, tmp_path / "a")
    second, *_ = _fit(2, tmp_path / "b")
    for left, right in zip(first.get_weights(), second.get_weights()):
        np.testing.assert_array_equal(left, right)


def test_classification_metrics_on_known_values():
    labels = np.array([0, 0, 1, 1])
    probabilities = np.array([[0.9, 0.1], [0.4, 0.6], [0.35, 0.65], [0.2, 0.8]])
    metrics = classification_metrics(labels, probabilities, 2)
    assert metrics["accuracy"] == 0.75
    assert metrics["auroc"] == 1.0  # every positive scores above every negative
    assert metrics["f1"] == pytest.approx(0.8)  # precision 2/3, recall 1
    assert metrics["confusion_matrix"] == [[1, 1], [0, 2]]


def test_three_class_metrics_use_macro_averages():
    labels = np.array([0, 1, 2, 2])
    probabilities = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.6, 0.3, 0.1]])
    metrics = classification_metrics(labels, probabilities, 3)
    assert metrics["accuracy"] == 0.75
    assert metrics["f1"] == pytest.approx((2 / 3 + 1 + 2 / 3) / 3)
    assert 0 < metrics["auroc"] <= 1


@pytest.mark.parametrize("num_classes", [2, 3])
def test_ranking_metrics_are_scikit_learns_to_the_last_bit(num_classes):
    """The epochs' one-sort AUROC and PR-AUC against scikit-learn's, with ties (a score rounded to a few
    values), without, a column of one sigmoid unit, and a class absent from the labels."""
    generator = np.random.default_rng(7)
    compared = 0
    for case in range(150):
        rows = int(generator.integers(3, 2000))
        labels = generator.integers(0, num_classes, rows)
        if case % 5 == 0:
            labels[labels == num_classes - 1] = 0  # a class absent (for two classes: one class only)
        outputs = generator.random((rows, 1 if num_classes == 2 else num_classes)).astype(np.float32)
        if case % 3 == 0:
            outputs = (np.round(outputs * generator.integers(2, 30)) / 30).astype(np.float32)
        expected = (macro_auroc(labels, outputs, num_classes), macro_pr_auc(labels, outputs, num_classes))
        got = ranking_metrics(labels, outputs, num_classes)
        assert np.array_equal(got, expected, equal_nan=True), (case, got, expected)
        compared += np.isfinite(expected[0])
    assert compared > 100  # most cases have two classes or more, and so a number to compare


def test_ranking_metrics_refuse_a_diverged_heads_outputs_as_scikit_learn_does():
    labels = np.array([0, 1, 0, 1])
    outputs = np.array([[0.1], [np.nan], [0.3], [0.8]], dtype=np.float32)
    with pytest.raises(ValueError, match="NaN"):
        macro_auroc(labels, outputs, 2)
    with pytest.raises(ValueError, match="NaN"):
        ranking_metrics(labels, outputs, 2)


def test_logistic_regression_baseline_scores_the_same_test_set():
    features, labels = _separable(2)
    metrics, probabilities = logistic_regression_baseline(
        features[:400], labels[:400], features[400:], labels[400:], num_classes=2, seed=0
    )
    assert probabilities.shape == (200, 2)
    assert metrics["rows"] == 200 and metrics["auroc"] > 0.95


def test_the_probes_result_is_kept_in_the_cache_entry_and_read_back_only_for_the_same_arrays(tmp_path, caplog):
    from pipeline.evaluation import probe

    features, labels = _separable(2)
    arguments = (features[:400], labels[:400], features[400:], labels[400:])
    fitted, cached = probe.cached_baseline(tmp_path, *arguments, num_classes=2, seed=0)
    assert not cached
    expected, _ = logistic_regression_baseline(*arguments, num_classes=2, seed=0)
    assert fitted == expected
    records = list((tmp_path / probe.PROBES_DIR).glob("*.json"))
    assert len(records) == 1

    again, cached = probe.cached_baseline(tmp_path, *arguments, num_classes=2, seed=0)
    assert cached and again == fitted

    # Any change to what the fit depends on is another record: a label, the seed, class weights.
    flipped = labels[:400].copy()
    flipped[0] = 1 - flipped[0]
    for changed, options in (((features[:400], flipped, *arguments[2:]), {"seed": 0}),
                             (arguments, {"seed": 1}),
                             (arguments, {"seed": 0, "class_weight": {0: 1.0, 1: 2.0}})):
        _, cached = probe.cached_baseline(tmp_path, *changed, num_classes=2, **options)
        assert not cached
    assert len(list((tmp_path / probe.PROBES_DIR).glob("*.json"))) == 4

    records[0].write_text("{not json", encoding="utf-8")  # a damaged record: fitted again and replaced
    with caplog.at_level("WARNING"):
        repaired, cached = probe.cached_baseline(tmp_path, *arguments, num_classes=2, seed=0)
    assert not cached and repaired == fitted and "fitting the probe again" in caplog.text
    assert probe.cached_baseline(tmp_path, *arguments, num_classes=2, seed=0) == (fitted, True)

    assert probe.cached_baseline(None, *arguments, num_classes=2, seed=0) == (fitted, False)


def test_the_sweeps_probe_fits_are_kept_as_plain_arrays_per_strength(tmp_path):
    from pipeline.evaluation import probe

    features, labels = _separable(2)
    fitted, cached = probe.fitted_probe(tmp_path, features, labels, C=0.01, seed=0)
    assert not cached and [array.shape for array in fitted] == [(16,), (16,), (1, 16), (1,)]
    again, cached = probe.fitted_probe(tmp_path, features, labels, C=0.01, seed=0)
    assert cached
    for stored, computed in zip(again, fitted):
        np.testing.assert_array_equal(stored, computed)
    stronger, cached = probe.fitted_probe(tmp_path, features, labels, C=1.0, seed=0)
    assert not cached and not np.allclose(stronger[2], fitted[2])
    records = sorted((tmp_path / probe.PROBES_DIR).glob("*.npz"))
    assert len(records) == 2
    with np.load(records[0], allow_pickle=False) as stored:  # plain arrays: readable without pickle
        assert sorted(stored.files) == ["coefficients", "intercepts", "mean", "variance"]


# ----------------------------------------------------------------------------- the mlp head


def test_mlp_head_standardises_with_the_training_splits_statistics_inside_the_model():
    from pipeline.training.head import build_mlp_head

    features, _ = _separable(2)
    features = features * 50.0 + 7.0  # far from standardised, as raw encoder features are
    model = build_mlp_head(features[:400], 2, hidden_units=(32,), dropout_rate=0.5, seed=1)
    standardise = model.get_layer("standardise")
    np.testing.assert_allclose(standardise.mean.numpy().ravel(), features[:400].mean(axis=0), rtol=1e-4)
    np.testing.assert_allclose(standardise.variance.numpy().ravel(), features[:400].var(axis=0), rtol=1e-3)
    kinds = [type(layer).__name__ for layer in model.layers[1:]]
    assert kinds == ["Normalization", "Dropout", "Dense", "Dropout", "Dense"]
    assert model.layers[-1].units == 1 and model.layers[-1].activation.__name__ == "sigmoid"


@pytest.mark.parametrize("rows", [1, 511, 512, 1300])
def test_standardisation_statistics_are_numpys_float64_counts_to_the_last_bit(rows):
    from pipeline.training.head import standardisation_statistics

    features = (np.random.default_rng(rows).standard_normal((rows, 40)) * 30.0 + 5.0).astype(np.float32)
    mean, variance = standardisation_statistics(features)
    assert mean.dtype == variance.dtype == np.float32
    # Chunks of 512 rows, a partial one included: the very bits np.mean / np.var give, so every pinned result stands.
    np.testing.assert_array_equal(mean, np.mean(features, axis=0, dtype=np.float64).astype(np.float32))
    np.testing.assert_array_equal(variance, np.var(features, axis=0, dtype=np.float64).astype(np.float32))


def test_mlp_head_takes_statistics_counted_once():
    from pipeline.training.head import build_mlp_head, standardisation_statistics

    features, _ = _separable(2)
    mean, variance = np.full(features.shape[1], 3.0, np.float32), np.full(features.shape[1], 4.0, np.float32)
    given = build_mlp_head(features[:400], 2, hidden_units=(8,), seed=1, statistics=(mean, variance))
    np.testing.assert_array_equal(given.get_layer("standardise").mean.numpy().ravel(), mean)
    np.testing.assert_array_equal(given.get_layer("standardise").variance.numpy().ravel(), variance)
    counted = build_mlp_head(features[:400], 2, hidden_units=(8,), seed=1)
    np.testing.assert_array_equal(counted.get_layer("standardise").variance.numpy().ravel(),
                                  standardisation_statistics(features[:400])[1])


@pytest.mark.parametrize("num_classes", [2, 3])
def test_mlp_head_with_weight_decay_learns_and_reloads_with_its_standardisation(tmp_path, num_classes):
    import tf_keras as keras

    from pipeline.training.head import build_mlp_head

    features, labels = _separable(num_classes)
    features = features * 50.0 + 7.0
    make_deterministic(3)
    model = compile_head(build_mlp_head(features[:400], num_classes, hidden_units=(32,), seed=3), num_classes,
                         learning_rate=1e-3, weight_decay=1e-2)
    assert type(model.optimizer).__name__ == "AdamW"
    history = train_head(
        model, train_features=features[:400], train_labels=labels[:400], val_features=features[400:],
        val_labels=labels[400:], num_classes=num_classes, best_weights_path=tmp_path / BEST_WEIGHTS_FILE,
        tensorboard_dir=tmp_path / "logs", csv_log_path=tmp_path / "training_log.csv", epochs=6, batch_size=32,
        class_weight={k: 1.0 + k for k in range(num_classes)}, verbose=0,
    )
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert max(history.history["val_auroc"]) > 0.9
    model.save(str(tmp_path / "head.keras"))
    reloaded = keras.models.load_model(str(tmp_path / "head.keras"), compile=False)
    np.testing.assert_allclose(predict_probabilities(reloaded, features[400:]), predict_probabilities(model, features[400:]),
                               rtol=1e-5, atol=1e-6)


def test_paperspace_keeps_plain_adam():
    model = compile_head(build_head(8, 2), 2, learning_rate=1e-3)
    assert type(model.optimizer).__name__ == "Adam"


def test_each_head_fills_the_options_left_unset():
    from pipeline.base.config import HEAD_DEFAULTS, RunConfig

    paperspace = RunConfig(head="paperspace").head_settings()
    assert (paperspace.epochs, paperspace.batch_size, paperspace.hidden_units, paperspace.weight_decay) == (10, 300, (50, 30, 30), 0.0)
    mlp = RunConfig(head="mlp", epochs=7).head_settings()
    assert mlp.epochs == 7 and mlp.hidden_units == tuple(HEAD_DEFAULTS["mlp"]["hidden_units"])
    assert mlp.weight_decay == HEAD_DEFAULTS["mlp"]["weight_decay"]


def _fit_ensemble(members, num_classes, run_dir, seed=5):
    from pipeline.training.head import build_mlp_head
    from pipeline.training.train import train_ensemble

    features, labels = _separable(num_classes)

    def build_member(member_seed, name):
        return compile_head(build_mlp_head(features[:400], num_classes, hidden_units=(16,), seed=member_seed, name=name),
                            num_classes, learning_rate=1e-3, weight_decay=1e-2)

    model, histories = train_ensemble(
        build_member, members=members, seed=seed, train_features=features[:400], train_labels=labels[:400],
        val_features=features[400:], val_labels=labels[400:], num_classes=num_classes,
        best_weights_path=run_dir / BEST_WEIGHTS_FILE, tensorboard_dir=run_dir / "logs",
        csv_log_path=run_dir / "training_log.csv", epochs=3, batch_size=64, verbose=0)
    return model, histories, features


@pytest.mark.parametrize("num_classes", [2, 3])
def test_an_ensemble_averages_heads_of_their_own_seeds_and_reloads_as_one_model(tmp_path, num_classes):
    import tf_keras as keras

    single, _, features = _fit_ensemble(1, num_classes, tmp_path / "one")
    model, histories, _ = _fit_ensemble(3, num_classes, tmp_path / "three")
    assert len(histories) == 3 and model.get_layer("ensemble_average")
    members = [model.get_layer(f"member_{number}") for number in (1, 2, 3)]
    rows = features[400:]
    each = [predict_probabilities(member, rows) for member in members]
    np.testing.assert_allclose(predict_probabilities(model, rows), np.mean(each, axis=0), rtol=1e-5, atol=1e-6)
    # Member 1 is the single head of the same seed; the others start elsewhere and end elsewhere. The members
    # train side by side, in threads, and each ends exactly where it ends trained alone (member 3: seed 2005).
    np.testing.assert_array_equal(each[0], predict_probabilities(single, rows))
    third_alone, _, _ = _fit_ensemble(1, num_classes, tmp_path / "third", seed=5 + 2000)
    np.testing.assert_array_equal(each[2], predict_probabilities(third_alone, rows))
    assert not np.allclose(each[0], each[1], atol=1e-3) and not np.allclose(each[1], each[2], atol=1e-3)
    # Each member wrote its own logs, weights and CSV; member 1 where a single head writes them.
    for folder in ("logs/train", "logs/member-2/train", "logs/member-3/validation"):
        assert list((tmp_path / "three" / folder).glob("events.out.tfevents.*")), folder
    names = sorted(path.name for path in (tmp_path / "three").rglob("*") if path.suffix in (".csv", ".h5"))
    assert names == ["best-member-2.weights.h5", "best-member-3.weights.h5", "best.weights.h5",
                     "training_log-member-2.csv", "training_log-member-3.csv", "training_log.csv"]
    model.save(str(tmp_path / "head.keras"))
    reloaded = keras.models.load_model(str(tmp_path / "head.keras"), compile=False)
    np.testing.assert_allclose(predict_probabilities(reloaded, rows), predict_probabilities(model, rows), rtol=1e-5, atol=1e-6)


def test_a_head_that_fails_stops_the_heads_beside_it_after_their_epoch(tmp_path, monkeypatch):
    import threading

    from pipeline.training import train as train_module
    from pipeline.training.head import build_mlp_head
    from pipeline.training.train import train_ensemble

    features, labels = _separable(2)
    (tmp_path / "training_log-member-2.csv").mkdir(parents=True)  # head 2 cannot write its CSV log: it fails at once
    original, told_to_stop = train_module.train_head, threading.Event()

    def head_1_starts_once_told_to_stop(model, **options):
        # Head 1 starts only after head 2's failure has stopped it, however the threads are scheduled: the stop must
        # hold although it came before head 1's first epoch.
        if "member" not in options["csv_log_path"].name:
            for _ in range(1000):
                if model.stop_training:
                    told_to_stop.set()
                    break
                threading.Event().wait(0.01)
        return original(model, **options)

    monkeypatch.setattr(train_module, "train_head", head_1_starts_once_told_to_stop)

    def build_member(member_seed, name):
        return compile_head(build_mlp_head(features[:400], 2, hidden_units=(16,), seed=member_seed, name=name), 2)

    with pytest.raises(Exception, match="training_log-member-2.csv; Is a directory"):  # TensorFlow's file error
        train_ensemble(build_member, members=2, seed=5, train_features=features[:400], train_labels=labels[:400],
                       val_features=features[400:], val_labels=labels[400:], num_classes=2,
                       best_weights_path=tmp_path / BEST_WEIGHTS_FILE, tensorboard_dir=tmp_path / "logs",
                       csv_log_path=tmp_path / "training_log.csv", epochs=200, batch_size=64)
    with open(tmp_path / "training_log.csv", newline="") as handle:
        epochs_logged = len(list(csv.DictReader(handle)))
    assert told_to_stop.is_set() and epochs_logged == 1  # stopped after the epoch it was in (early stopping needs 5)


def test_ensemble_defaults_and_bounds():
    from pipeline.base.config import MAX_ENSEMBLE, RunConfig, validate
    from pipeline.base.errors import UserError

    assert RunConfig().head_settings().ensemble == 3
    assert RunConfig(head="paperspace").head_settings().ensemble == 1
    assert RunConfig(fine_tune=True).head_settings().ensemble == 1
    assert RunConfig(head="paperspace", ensemble=4).head_settings().ensemble == 4
    for wrong in (0, -1, MAX_ENSEMBLE + 1):
        with pytest.raises(UserError, match="--ensemble must be a whole number of heads from 1 to 20"):
            validate(RunConfig(ensemble=wrong))
    with pytest.raises(UserError, match="--ensemble 2 averages heads .* drop --ensemble"):
        validate(RunConfig(fine_tune=True, ensemble=2))
    validate(RunConfig(fine_tune=True, ensemble=1))


# ----------------------------------------------------------------------------- what a user sees while heads train


class _Terminal:
    """A text stream that says it is a terminal, as sys.stderr does in an interactive shell."""

    def __init__(self):
        import io

        self.buffer = io.StringIO()

    def write(self, text):
        return self.buffer.write(text)

    def flush(self):
        pass

    def isatty(self):
        return True


def _fit_with_progress(tmp_path, stream, members=2, epochs=3):
    from pipeline.training.head import build_mlp_head
    from pipeline.training.train import train_ensemble

    features, labels = _separable(2)

    def build_member(member_seed, name):
        return compile_head(build_mlp_head(features[:400], 2, hidden_units=(16,), seed=member_seed, name=name), 2)

    train_ensemble(build_member, members=members, seed=1, train_features=features[:400], train_labels=labels[:400],
                   val_features=features[400:], val_labels=labels[400:], num_classes=2,
                   best_weights_path=tmp_path / BEST_WEIGHTS_FILE, tensorboard_dir=tmp_path / "logs",
                   csv_log_path=tmp_path / "training_log.csv", epochs=epochs, batch_size=64, show_progress=True,
                   progress_stream=stream)


def test_progress_off_a_terminal_is_one_line_per_head_when_it_is_done(tmp_path):
    import io
    import re

    stream = io.StringIO()
    _fit_with_progress(tmp_path, stream)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and "\r" not in stream.getvalue()  # nothing redrawn: a CI log keeps every byte
    for number, line in enumerate(lines, start=1):
        assert re.fullmatch(rf"head {number}/2: 3/3 epochs, best val AUROC 0\.\d{{4}} \(epoch [123]\), \d+\.\d s", line), line


def test_progress_on_a_terminal_is_a_bar_per_head_with_the_validation_auroc(tmp_path):
    terminal = _Terminal()
    _fit_with_progress(tmp_path, terminal)
    shown = terminal.buffer.getvalue()
    for head in ("head 1/2", "head 2/2"):
        assert f"{head}: 0/3 epochs" in shown and f"{head}: 3/3 epochs" in shown  # drawn at the start, redrawn
    assert "val AUROC 0." in shown and "best 0." in shown and "\r" in shown


def test_histogram_buckets_count_every_value_between_the_extremes():
    from pipeline.training.train import histogram_buckets

    values = np.random.default_rng(0).normal(size=(64, 32)).astype(np.float32)
    buckets = histogram_buckets(values)
    assert buckets.shape == (30, 3) and buckets.dtype == np.float64
    assert buckets[:, 2].sum() == values.size
    assert buckets[0, 0] == pytest.approx(values.min()) and buckets[-1, 1] == pytest.approx(values.max())
    np.testing.assert_array_equal(buckets[1:, 0], buckets[:-1, 1])  # contiguous
    assert histogram_buckets(np.zeros(5)).tolist() == [[-0.5, 0.5, 5.0]]
    assert histogram_buckets(np.zeros(0)).shape == (0, 3)


def test_training_logs_the_weight_histograms_and_per_epoch_scalars(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _fit(2, tmp_path, epochs=3)
    train = EventAccumulator(str(tmp_path / "logs" / "train"), size_guidance={"tensors": 0}).Reload()
    validation = EventAccumulator(str(tmp_path / "logs" / "validation"), size_guidance={"tensors": 0}).Reload()
    tags = set(train.Tags()["tensors"])
    assert {"epoch_loss", "epoch_accuracy", "epoch_auroc", "epoch_pr_auc", "epoch_lr"} <= tags
    assert {"epoch_loss", "epoch_accuracy", "epoch_auroc", "epoch_pr_auc"} <= set(validation.Tags()["tensors"])
    kernel = train.Tensors("dense_0/kernel_0/histogram")
    assert [event.step for event in kernel] == [0, 1, 2]
    import tensorflow as tf

    buckets = tf.make_ndarray(kernel[0].tensor_proto)
    assert buckets.shape == (30, 3) and buckets[:, 2].sum() == 16 * 50  # every weight of the 16 x 50 kernel


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_the_fused_adam_step_is_keras_adam_and_adamw(weight_decay):
    import tensorflow as tf

    from pipeline.training.head import build_mlp_head
    from pipeline.training.train import FusedAdam

    features, labels = _separable(2)
    weights = []
    for fused in (False, True):
        make_deterministic(4)
        model = compile_head(build_mlp_head(features, 2, hidden_units=(16,), dropout_rate=0.0, input_dropout_rate=0.0,
                                            seed=4), 2, learning_rate=1e-2, weight_decay=weight_decay)
        assert FusedAdam.supports(model.optimizer)
        update = FusedAdam(model.optimizer, model.trainable_variables) if fused else None
        for step in range(5):
            rows = slice(64 * step, 64 * (step + 1))
            with tf.GradientTape() as tape:
                loss = model.compute_loss(None, tf.constant(labels[rows], tf.float32), model(features[rows], training=True))
            if update is None:
                model.optimizer.minimize(loss, model.trainable_variables, tape=tape)
            else:
                update.apply(tape.gradient(loss, model.trainable_variables))
        assert int(model.optimizer.iterations.numpy()) == 5
        weights.append(model.get_weights())
    for keras_update, fused_update in zip(*weights):
        np.testing.assert_allclose(fused_update, keras_update, rtol=1e-4, atol=1e-6)
    assert not FusedAdam.supports(__import__("tf_keras").optimizers.Adam(amsgrad=True))


def test_the_epoch_runner_walks_a_heads_chain_with_its_standardisation_done_once():
    import tf_keras as keras

    from pipeline.training.head import build_mlp_head
    from pipeline.training.train import training_chain

    features, _ = _separable(2)
    standardise, chain = training_chain(build_mlp_head(features, 2, hidden_units=(8,)))
    assert standardise.name == "standardise"
    assert [layer.name for layer in chain] == ["input_dropout", "dense_0", "dropout_0", "probabilities"]
    standardise, chain = training_chain(build_head(16, 2))
    assert standardise is None and [layer.name for layer in chain][:2] == ["dense_0", "batch_norm"]

    inputs = keras.Input(shape=(16,))  # two branches joined: not a chain, so the model is called whole
    joined = keras.layers.Concatenate()([keras.layers.Dense(4)(inputs), keras.layers.Dense(4)(inputs)])
    assert training_chain(keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(joined))) == (None, None)


@pytest.mark.parametrize("head", ["mlp", "paperspace", "branches"])
def test_an_epoch_is_keras_steps_over_the_rows_in_the_order_given(head):
    """Without dropout (whose masks come from another generator) an epoch of the runner is the plain Keras
    loop: the model called in training mode on each batch of the ordered rows, then the update (the fused one
    in both, so that only the loop differs; test_the_fused_adam_step_is_keras_adam_and_adamw holds it to Keras's)."""
    import tensorflow as tf
    import tf_keras as keras

    from pipeline.training.head import build_mlp_head
    from pipeline.training.train import EpochRunner, FusedAdam

    features, labels = _separable(2, rows=300)
    features = features * 3.0 + 5.0
    order = np.random.default_rng(1).permutation(300)

    def build() -> keras.Model:
        make_deterministic(3)
        if head == "mlp":
            model = build_mlp_head(features, 2, hidden_units=(16,), dropout_rate=0.0, input_dropout_rate=0.0, seed=3)
        elif head == "paperspace":
            model = build_head(16, 2, seed=3)
        else:
            inputs = keras.Input(shape=(16,))
            joined = keras.layers.Concatenate()([keras.layers.Dense(4)(inputs), keras.layers.Dense(4)(inputs)])
            model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(joined))
        if head == "paperspace":  # Keras's own update (the runner's other path); SGD, as Adam would divide a
            # near-zero gradient's last-bit rounding by its own size and move a dead unit's weight by a whole step
            return compile_head(model, 2, optimizer=keras.optimizers.SGD(learning_rate=1e-2))
        return compile_head(model, 2, learning_rate=1e-2, weight_decay=0.01 if head == "mlp" else 0.0)

    runner_model = build()
    loss, outputs = EpochRunner(runner_model, features, labels, np.ones(300, np.float32), batch_size=64).run(order)
    keras_model = build()
    update = FusedAdam(keras_model.optimizer, keras_model.trainable_variables) if head != "paperspace" else None
    keras_outputs, keras_losses = [], []
    for start in range(0, 300, 64):
        rows = order[start:start + 64]
        with tf.GradientTape() as tape:
            predicted = keras_model(features[rows], training=True)
            step_loss = keras_model.compute_loss(None, tf.constant(labels[rows], tf.float32), predicted)
        if update is None:
            keras_model.optimizer.minimize(step_loss, keras_model.trainable_variables, tape=tape)
        else:
            update.apply(tape.gradient(step_loss, update.variables))
        keras_outputs.append(predicted.numpy())
        keras_losses.append(float(step_loss) * len(rows))
    np.testing.assert_allclose(outputs, np.concatenate(keras_outputs), rtol=1e-4, atol=1e-5)
    assert loss == pytest.approx(sum(keras_losses) / 300, rel=1e-4)
    for ours, theirs in zip(runner_model.get_weights(), keras_model.get_weights()):
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)


def test_dropout_zeroes_the_rate_asked_scales_the_rest_and_follows_its_seed():
    import tensorflow as tf

    from pipeline.training.train import dropout

    ones = tf.ones((400, 1001))  # an odd width: the 16-bit halves of the last random word are cut to it
    for rate in (0.2, 0.5):
        dropped = dropout(ones, rate, tf.constant([7, 1], tf.int64)).numpy()
        assert abs((dropped == 0).mean() - rate) < 0.005
        np.testing.assert_allclose(np.unique(dropped), [0.0, 1 / (1 - rate)], rtol=1e-6)
    first = dropout(ones, 0.2, tf.constant([7, 1], tf.int64)).numpy()
    np.testing.assert_array_equal(first, dropout(ones, 0.2, tf.constant([7, 1], tf.int64)).numpy())
    other_step = dropout(ones, 0.2, tf.constant([7, 2], tf.int64)).numpy()
    # Two independent masks at rate 0.2 agree on 0.8^2 + 0.2^2 = 68% of the values.
    assert abs((first == other_step).mean() - 0.68) < 0.01
    # The columns are not alike: each keeps about 80% of its values.
    assert np.all(np.abs((first != 0).mean(axis=0) - 0.8) < 0.1)


def test_trainings_side_by_side_come_back_in_order_and_the_first_error_stops_the_rest_at_once():
    import threading
    import time
    from types import SimpleNamespace

    from pipeline.training.train import trained_side_by_side

    models = [SimpleNamespace(stop_training=False) for _ in range(4)]
    assert list(trained_side_by_side([lambda index=index: index * 10 for index in range(4)], models, workers=2)) == \
        [0, 10, 20, 30]

    released, started, began = threading.Event(), [], time.perf_counter()

    def slow_first() -> int:  # trains until told to stop (as train_head does between epochs), or for 3 s
        started.append(0)
        while not models[0].stop_training and time.perf_counter() - began < 3:
            time.sleep(0.01)
        released.set()
        return 0

    def failing_second() -> int:
        started.append(1)
        raise RuntimeError("head 2 failed")

    def never(index: int) -> int:
        started.append(index)
        return index

    with pytest.raises(RuntimeError, match="head 2 failed"):
        list(trained_side_by_side([slow_first, failing_second, lambda: never(2), lambda: never(3)], models, workers=2))
    assert released.is_set() and models[0].stop_training  # told to stop: raised while the first was still training
    assert time.perf_counter() - began < 2.5 and sorted(started)[:2] == [0, 1]
