"""Which frozen features and which head: AUROC on the demo over split seeds 0-4 (docs/quality.md).

Every layer of the embedded encoder is extracted once per pooling into the feature cache (`--layers all`);
each layer choice is then cut from those arrays (concat: a slice; mean: the average of the slices, exactly
what `--combine mean` computes). Stage 1 ranks the feature choices by the logistic-regression probe's
validation AUROC; stage 2 fits the heads on the best of them and on the Paperspace recipe's own features;
stage 3 averages 1 to 5 heads of the default kind (`--ensemble`), at two batch sizes; stage `defaults` trains
the default head exactly as `run` does (`--ensemble 3`; `--batch-size` and `--learning-rate` override it) and
prints the mean validation and test AUROC over the seeds. Defaults are chosen on validation AUROC; test numbers
are printed for the record, never used to choose.

    .venv/bin/python benchmarks/quality.py [--seeds 0,1,2,3,4] [--stage 1|2|both|3|defaults] [--output results.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from pipeline.base.config import RunConfig
from pipeline.evaluation.metrics import classification_metrics
from pipeline.runs.run import Prepared, extract, prepare

FEATURE_CHOICES: dict[str, tuple[str, list[int], str]] = {  # name: (pooling, layers of the 6, combine)
    "pooled, last (Paperspace)": ("pooled", [5], "concat"),
    "mean, last": ("mean", [5], "concat"),
    "mean, last4 concat": ("mean", [2, 3, 4, 5], "concat"),
    "mean, last4 mean": ("mean", [2, 3, 4, 5], "mean"),
    "mean, all concat": ("mean", [0, 1, 2, 3, 4, 5], "concat"),
    "mean, all mean": ("mean", [0, 1, 2, 3, 4, 5], "mean"),
    "cls, last": ("cls", [5], "concat"),
    "cls, all concat": ("cls", [0, 1, 2, 3, 4, 5], "concat"),
}


def split_features(prepared: Prepared, features: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    splits = prepared.splits
    n_train, n_val = len(splits.train.texts), len(splits.validation.texts)
    return {"train": (features[:n_train], splits.train.labels),
            "val": (features[n_train:n_train + n_val], splits.validation.labels),
            "test": (features[n_train + n_val:], splits.test.labels)}


def choose(all_layers: np.ndarray, layers: list[int], combine: str, hidden: int) -> np.ndarray:
    slices = [all_layers[:, index * hidden:(index + 1) * hidden] for index in layers]
    return np.concatenate(slices, axis=1) if combine == "concat" else np.mean(slices, axis=0)


def scores(model_probabilities: dict[str, np.ndarray], parts: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, Any]:
    return {split: classification_metrics(parts[split][1], model_probabilities[split], 2) for split in ("val", "test")}


def fit_probe(parts: dict[str, tuple[np.ndarray, np.ndarray]], seed: int, c: float = 1.0) -> dict[str, Any]:
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, C=c, random_state=seed))
    probe.fit(*parts["train"])
    return scores({split: probe.predict_proba(parts[split][0]) for split in ("val", "test")}, parts)


def fit_head(parts: dict[str, tuple[np.ndarray, np.ndarray]], seed: int, head: str, **options: Any) -> dict[str, Any]:
    from pipeline.training.head import build_head, build_mlp_head, compile_head, predict_probabilities
    from pipeline.training.train import make_deterministic, train_head

    make_deterministic(seed)
    train_features, train_labels = parts["train"]
    if head == "paperspace":
        model = build_head(train_features.shape[1], 2, seed=seed)
        compile_head(model, 2, learning_rate=1e-3)
        epochs, batch_size = 10, 300
    else:
        model = build_mlp_head(train_features, 2, hidden_units=options["hidden_units"], dropout_rate=options["dropout_rate"],
                               input_dropout_rate=options["input_dropout_rate"], seed=seed)
        compile_head(model, 2, learning_rate=options["learning_rate"], weight_decay=options["weight_decay"])
        epochs, batch_size = options["epochs"], options["batch_size"]
    with tempfile.TemporaryDirectory() as folder:
        train_head(model, train_features=train_features, train_labels=train_labels, val_features=parts["val"][0],
                   val_labels=parts["val"][1], num_classes=2, best_weights_path=Path(folder) / "best.weights.h5",
                   tensorboard_dir=Path(folder) / "logs", csv_log_path=Path(folder) / "log.csv", epochs=epochs,
                   batch_size=batch_size, verbose=0)
    return scores({split: predict_probabilities(model, parts[split][0]) for split in ("val", "test")}, parts)


MLP_CHOICES = {
    "mlp 256, dropout 0.5, wd 1e-2": dict(hidden_units=(256,), dropout_rate=0.5, input_dropout_rate=0.1,
                                           learning_rate=1e-3, weight_decay=1e-2, epochs=40, batch_size=64),
    "mlp 256, dropout 0.5, wd 1e-1 (the default)": dict(hidden_units=(256,), dropout_rate=0.5, input_dropout_rate=0.2,
                                                         learning_rate=1e-3, weight_decay=1e-1, epochs=40, batch_size=64),
    "mlp 64, dropout 0.5, wd 1e-2, lr 3e-4": dict(hidden_units=(64,), dropout_rate=0.5, input_dropout_rate=0.2,
                                                  learning_rate=3e-4, weight_decay=1e-2, epochs=60, batch_size=64),
}


ENSEMBLE_BATCH_SIZES = (64, 256)
MOST_MEMBERS = 5


def fit_ensembles(parts: dict[str, tuple[np.ndarray, np.ndarray]], seed: int, batch_size: int) -> list[dict[str, Any]]:
    """Trains MOST_MEMBERS default heads as `run --ensemble` does; the first k of them are the ensemble of k
    (member N's training does not depend on how many follow), so one fit scores every size."""
    from pipeline.training.head import build_mlp_head, compile_head, predict_probabilities
    from pipeline.training.train import train_ensemble

    options: dict[str, Any] = dict(MLP_CHOICES["mlp 256, dropout 0.5, wd 1e-1 (the default)"], batch_size=batch_size)

    def build_member(member_seed: int, name: str) -> Any:
        model = build_mlp_head(parts["train"][0], 2, hidden_units=options["hidden_units"], dropout_rate=options["dropout_rate"],
                               input_dropout_rate=options["input_dropout_rate"], seed=member_seed, name=name)
        return compile_head(model, 2, learning_rate=options["learning_rate"], weight_decay=options["weight_decay"])

    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        model, _ = train_ensemble(build_member, members=MOST_MEMBERS, seed=seed, train_features=parts["train"][0],
                                  train_labels=parts["train"][1], val_features=parts["val"][0], val_labels=parts["val"][1],
                                  num_classes=2, best_weights_path=Path(folder) / "best.weights.h5",
                                  tensorboard_dir=Path(folder) / "logs", csv_log_path=Path(folder) / "log.csv",
                                  epochs=options["epochs"], batch_size=batch_size, verbose=0)
        seconds = time.perf_counter() - started
    each = [{split: predict_probabilities(model.get_layer(f"member_{number}"), parts[split][0]) for split in ("val", "test")}
            for number in range(1, MOST_MEMBERS + 1)]
    return [{"model": f"mlp default, batch {batch_size}, ensemble {size}", "seconds_for_all": seconds,
             **scores({split: np.mean([member[split] for member in each[:size]], axis=0) for split in ("val", "test")},
                      parts)}
            for size in range(1, MOST_MEMBERS + 1)]


def fit_defaults(parts: dict[str, tuple[np.ndarray, np.ndarray]], seed: int, settings: Any) -> dict[str, Any]:
    """The default head as `run` trains it (its HeadSettings), scored on validation and test."""
    from pipeline.training.head import build_mlp_head, compile_head, predict_probabilities
    from pipeline.training.train import train_ensemble

    def build_member(member_seed: int, name: str) -> Any:
        model = build_mlp_head(parts["train"][0], 2, hidden_units=settings.hidden_units, dropout_rate=settings.dropout_rate,
                               seed=member_seed, name=name)
        return compile_head(model, 2, learning_rate=settings.learning_rate, weight_decay=settings.weight_decay)

    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        model, histories = train_ensemble(
            build_member, members=settings.ensemble, seed=seed, train_features=parts["train"][0],
            train_labels=parts["train"][1], val_features=parts["val"][0], val_labels=parts["val"][1], num_classes=2,
            best_weights_path=Path(folder) / "best.weights.h5", tensorboard_dir=Path(folder) / "logs",
            csv_log_path=Path(folder) / "log.csv", epochs=settings.epochs, batch_size=settings.batch_size)
        seconds = time.perf_counter() - started
    return {"model": f"mlp default, batch {settings.batch_size}, learning rate {settings.learning_rate:g}, "
                     f"ensemble {settings.ensemble}",
            "seconds": seconds, "epochs": [len(history.epoch) for history in histories],
            **scores({split: predict_probabilities(model, parts[split][0]) for split in ("val", "test")}, parts)}


def summary(results: list[dict[str, Any]]) -> str:
    lines = ["| features | model | val AUROC | test AUROC | test accuracy | test F1 |", "|---|---|---:|---:|---:|---:|"]
    keys = sorted({(row["features"], row["model"]) for row in results}, key=lambda key: (key[0], key[1]))
    for features, model in keys:
        rows = [row for row in results if row["features"] == features and row["model"] == model]

        def stat(split: str, metric: str, rows: list[dict[str, Any]] = rows) -> str:
            values = np.array([row[split][metric] for row in rows])
            return f"{values.mean():.4f} ± {values.std(ddof=1) if len(values) > 1 else 0:.4f}"

        lines.append(f"| {features} | {model} | {stat('val', 'auroc')} | {stat('test', 'auroc')} | "
                     f"{stat('test', 'accuracy')} | {stat('test', 'f1')} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--stage", choices=["1", "2", "both", "3", "defaults"], default="both")
    parser.add_argument("--batch-size", type=int, help="stage defaults: in place of the default head's")
    parser.add_argument("--learning-rate", type=float, help="stage defaults: in place of the default head's")
    parser.add_argument("--features", default="mean, all concat", help="stage 2: the feature choice the heads get")
    parser.add_argument("--output", default="quality-results.json")
    arguments = parser.parse_args()
    seeds = [int(seed) for seed in arguments.seeds.split(",")]
    print(f"machine: {platform.processor() or platform.machine()}, seeds {seeds}")
    results: list[dict[str, Any]] = []
    started = time.perf_counter()
    for seed in seeds:
        arrays = {}
        if arguments.stage == "defaults":
            config = RunConfig(seed=seed, batch_size=arguments.batch_size, learning_rate=arguments.learning_rate)
            prepared = prepare(config)
            outcome = fit_defaults(split_features(prepared, extract(prepared, show_progress=False).features), seed,
                                   config.head_settings())
            results.append({"seed": seed, "features": "the default", **outcome})
            print(f"seed {seed} {outcome['model']} val {outcome['val']['auroc']:.4f} test {outcome['test']['auroc']:.4f} "
                  f"epochs {outcome['epochs']} in {outcome['seconds']:.1f} s", flush=True)
            Path(arguments.output).write_text(json.dumps(results, indent=1))
            continue
        for pooling in ("mean",) if arguments.stage == "3" else ("mean", "cls", "pooled"):
            layer_choice = "last" if pooling == "pooled" else "all"
            prepared = prepare(RunConfig(seed=seed, pooling=pooling, layers=layer_choice, combine="concat"))
            arrays[pooling] = (prepared, extract(prepared, show_progress=False).features)
        hidden = prepared.encoder.hidden_size
        names = list(FEATURE_CHOICES) if arguments.stage in ("1", "both") else []
        for name in names:
            pooling, layers, combine = FEATURE_CHOICES[name]
            prepared, features = arrays[pooling]
            chosen = features if pooling == "pooled" else choose(features, layers, combine, hidden)
            parts = split_features(prepared, chosen)
            results.append({"seed": seed, "features": name, "model": "probe (C=1)", **fit_probe(parts, seed)})
            print(f"seed {seed} {name:28s} probe val {results[-1]['val']['auroc']:.4f} ({time.perf_counter() - started:.0f} s)")
        if arguments.stage in ("2", "both"):
            head_features = {"pooled, last (Paperspace)": ["paperspace"],
                             "mean, last": ["paperspace"],
                             arguments.features: ["paperspace", "probe", *MLP_CHOICES]}
            for name, models in head_features.items():
                pooling, layers, combine = FEATURE_CHOICES[name]
                prepared, features = arrays[pooling]
                chosen = features if pooling == "pooled" else choose(features, layers, combine, hidden)
                parts = split_features(prepared, chosen)
                for model in models:
                    if model == "probe":
                        if arguments.stage == "2":
                            results.append({"seed": seed, "features": name, "model": "probe (C=1)", **fit_probe(parts, seed)})
                        continue
                    outcome = fit_head(parts, seed, model, **MLP_CHOICES.get(model, {}))
                    results.append({"seed": seed, "features": name, "model": model, **outcome})
                    print(f"seed {seed} {name:28s} {model:40s} val {outcome['val']['auroc']:.4f} "
                          f"({time.perf_counter() - started:.0f} s)")
        if arguments.stage == "3":
            pooling, layers, combine = FEATURE_CHOICES[arguments.features]
            prepared, features = arrays[pooling]
            parts = split_features(prepared, choose(features, layers, combine, hidden))
            for batch_size in ENSEMBLE_BATCH_SIZES:
                for outcome in fit_ensembles(parts, seed, batch_size):
                    results.append({"seed": seed, "features": arguments.features, **outcome})
                    print(f"seed {seed} {outcome['model']:40s} val {outcome['val']['auroc']:.4f} "
                          f"({time.perf_counter() - started:.0f} s)")
        Path(arguments.output).write_text(json.dumps(results, indent=1))
    print(summary(results))


if __name__ == "__main__":
    main()
