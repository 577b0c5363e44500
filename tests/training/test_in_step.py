"""Heads trained in step (a sweep's trials): each ends exactly where it ends trained alone."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from pipeline.training.head import build_mlp_head, compile_head, standardisation_statistics
from pipeline.training.in_step import EpochRunnerInStep, HeadsInStep, shared_leading_dropout
from pipeline.training.train import TrainingRows, make_deterministic, train_head, training_chain

# (hidden units, dropout after them, weight decay, learning rate): shapes and options that differ, as a sweep's do
TRIALS = [((8,), 0.3, 1e-3, 3e-3), ((16,), 0.5, 1e-2, 1e-3), ((4,), 0.3, 0.0, 1e-2)]


def _data(num_classes: int, rows: int = 300, width: int = 12, seed: int = 0):
    generator = np.random.default_rng(seed)
    labels = np.arange(rows) % num_classes
    centres = generator.normal(size=(num_classes, width))
    features = (centres[labels] + generator.normal(size=(rows, width)) * 1.5) * 3.0 + 5.0
    return features.astype(np.float32), labels.astype(np.int64)


def _built(features: np.ndarray, num_classes: int, trial: tuple, statistics: tuple, seed: int = 5):
    units, rate, weight_decay, learning_rate = trial
    make_deterministic(seed)
    model = build_mlp_head(features, num_classes, hidden_units=units, dropout_rate=rate, seed=seed, statistics=statistics)
    return compile_head(model, num_classes, learning_rate=learning_rate, weight_decay=weight_decay)


# data on which the three heads stop early after different numbers of epochs
@pytest.mark.parametrize("num_classes, data_seed", [(2, 1), (3, 0)])
def test_heads_trained_in_step_end_where_each_ends_trained_alone(tmp_path, num_classes, data_seed):
    features, labels = _data(num_classes, seed=data_seed)
    val_features, val_labels = _data(num_classes, rows=90, seed=data_seed + 10)
    statistics = standardisation_statistics(features)
    class_weight = {label: 1.0 + label for label in range(num_classes)}
    common = dict(train_features=features, train_labels=labels, val_features=val_features, val_labels=val_labels,
                  num_classes=num_classes, epochs=6, batch_size=32, class_weight=class_weight,
                  early_stopping_patience=1, seed=5)

    alone = []
    for index, trial in enumerate(TRIALS):
        model = _built(features, num_classes, trial, statistics)
        history = train_head(model, best_weights_path=None, tensorboard_dir=tmp_path / f"alone-{index}",
                             csv_log_path=tmp_path / f"alone-{index}.csv", histograms=False, **common)
        alone.append((model.get_weights(), history.history))

    models = [_built(features, num_classes, trial, statistics) for trial in TRIALS]
    heads = HeadsInStep(models, tensorboard_dirs=[tmp_path / f"step-{index}" for index in range(3)],
                        csv_log_paths=[tmp_path / f"step-{index}.csv" for index in range(3)], rows=TrainingRows(features),
                        **common)
    if num_classes == 2:
        heads.build_graph()  # built beforehand or in the first epoch: the same graph
    results = heads.train()
    epochs_run = []
    for index, (model, (history, seconds), (weights, logs)) in enumerate(zip(models, results, alone)):
        assert history.history == logs  # every epoch's loss, accuracy, AUROC, PR-AUC and learning rate, exactly
        assert all(np.array_equal(ours, theirs) for ours, theirs in zip(model.get_weights(), weights))
        assert seconds > 0
        with open(tmp_path / f"step-{index}.csv") as rows, open(tmp_path / f"alone-{index}.csv") as alone_rows:
            assert list(csv.DictReader(rows)) == list(csv.DictReader(alone_rows))
        assert list((tmp_path / f"step-{index}" / "validation").glob("events.out.tfevents.*"))
        epochs_run.append(len(history.epoch))
    assert min(epochs_run) < 6 and len(set(epochs_run)) > 1  # one stopped early while the others went on


def test_only_the_leading_dropout_every_head_has_alike_is_shared():
    features, _ = _data(2)
    statistics = standardisation_statistics(features)
    chains = [training_chain(_built(features, 2, trial, statistics))[1] for trial in TRIALS]
    assert shared_leading_dropout(chains) == [pytest.approx(0.2)]  # the input dropout; the hidden ones differ
    assert shared_leading_dropout(chains[:1] * 2) == [pytest.approx(0.2)]  # a Dense layer ends what is shared
    assert shared_leading_dropout([chains[0], None]) == []


def test_heads_that_cannot_train_in_step_are_refused():
    features, labels = _data(2)
    weights = np.ones(len(labels), np.float32)
    own = [_built(features, 2, TRIALS[0], standardisation_statistics(features)),
           _built(features, 2, TRIALS[0], standardisation_statistics(features[:100]))]
    with pytest.raises(ValueError, match="the same rows"):
        EpochRunnerInStep(own, features, labels, weights, 32)
    statistics = standardisation_statistics(features)
    models = [_built(features, 2, trial, statistics) for trial in TRIALS[:2]]
    runner = EpochRunnerInStep(models, features, labels, weights, 32)
    runner.run(np.arange(len(labels)), [True, False])  # the second stopped: it takes no step
    assert [int(model.optimizer.iterations.numpy()) for model in models] == [10, 0]
    with pytest.raises(ValueError, match="as many steps"):
        runner.run(np.arange(len(labels)), [True, True])
