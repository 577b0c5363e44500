"""Numbers as targets on real data: the default regression head against the ridge probe and against five-class
classification's expected value, over split seeds (docs/quality.md).

For each split seed the table (by default the Amazon Fine Food sample, `Score` 1-5) is split once here, seeded and
stratified on the score, into a training table and a test table (10%), written to OUTPUT/splits/seed-S/. Two runs
then read the same two tables (`--data train.csv --test-data test.csv --seed S`; the pipeline splits the training
table into train and validation itself, with the same seed):

- `run --regression --label-column Score`: the defaults (the embedded encoder, three mlp heads averaged, every other
  option left alone). Its metrics.json gives the head's test metrics (`test`) and the ridge probe's (`baseline.test`,
  its strength chosen on validation).
- `run --label-column Score` (no --regression): the scores as five classes, defaults otherwise. Its
  test_predictions.npz holds the class probabilities [rows, 5] in the order of metrics.json `labels`; their expected
  value, sum_k p_k * score_k, is scored here against the true score with the same metrics.

Both runs see the same test rows (checked: the true values in each run's test_predictions.npz equal the test table's
scores, in order). Each run is a subprocess with a clean environment, started in the code folder, and all of them
share one feature cache, so the first run extracts and the other nine read the same entry (its key covers the set of
texts, which is the same for every seed).

Prints Markdown tables, ready to paste: mean, sample sd and min-max over the seeds of RMSE, MAE, R², Spearman,
Pearson and rounded accuracy for head, probe and the classification's expected value (and the classification's own
argmax accuracy); per seed the three comparisons (head RMSE < probe RMSE, head Spearman > probe Spearman, head RMSE <
expected-value RMSE) with their differences; and the runs' costs. Writes every figure to OUTPUT/results.json.
`--commit C` runs the pipeline of commit C (exported with git archive) rather than the checkout, so that code edited
while the runs go on does not reach them.

    .venv/bin/python benchmarks/regression_quality.py [--data ../shared/data/amazon-fine-food-sample.csv]
        [--seeds 0,1,2,3,4] [--output /tmp/regression-quality] [--commit HEAD] [--report]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from measured_runs import REPO, clean_environment, code_folder, cpu_description, cpu_line, run_or_exit, spread
from scipy.stats import pearsonr, spearmanr
from sklearn.model_selection import train_test_split

DEFAULT_DATA = REPO.parent / "shared" / "data" / "amazon-fine-food-sample.csv"
METRICS = ("rmse", "mae", "r2", "spearman", "pearson", "rounded_accuracy")
LOWER_IS_BETTER = ("rmse", "mae")
CHECK_TOLERANCE = 1e-4  # our metrics recomputed from the head's test_predictions.npz against its metrics.json


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="CSV table with a text column and a score column")
    parser.add_argument("--text-column", default="Text")
    parser.add_argument("--label-column", default="Score", help="the score: whole numbers, read as a number and as classes")
    parser.add_argument("--seeds", default="0,1,2,3,4", help="split seeds, with commas")
    parser.add_argument("--test-fraction", type=float, default=0.1, help="share of the table in each seed's test table")
    parser.add_argument("--output", type=Path, default=Path("/tmp/regression-quality"),
                        help="scratch folder: the split tables, artifacts, the shared feature cache, run folders, "
                             "results.json")
    parser.add_argument("--commit", help="run the pipeline of this commit, exported to OUTPUT/code with git archive, "
                                         "so that edits to the checkout during the runs do not reach them "
                                         "(default: the checkout as it is)")
    parser.add_argument("--python", type=Path, default=REPO / ".venv" / "bin" / "python")
    parser.add_argument("--report", action="store_true",
                        help="run nothing: print the tables of the results.json an earlier call wrote to OUTPUT")
    return parser.parse_args()


def read_table(arguments: argparse.Namespace) -> pd.DataFrame:
    """The table, with its scores checked to be whole numbers; rows without a text or a score are left out, as the
    pipeline would leave them out."""
    frame = pd.read_csv(arguments.data)
    frame = frame.dropna(subset=[arguments.text_column, arguments.label_column]).reset_index(drop=True)
    scores = frame[arguments.label_column].to_numpy(dtype=np.float64)
    if not np.all(scores == np.round(scores)):
        sys.exit(f"{arguments.data}: {arguments.label_column} must hold whole numbers for the five-class runs")
    frame[arguments.label_column] = scores.astype(np.int64)
    return frame


def write_split(frame: pd.DataFrame, arguments: argparse.Namespace, seed: int, folder: Path) -> dict[str, Any]:
    """train.csv and test.csv in `folder`: the seeded split, stratified on the score; their sizes, the test
    scores in the test table's order, and how many test texts also occur in the training table (duplicate reviews)."""
    folder.mkdir(parents=True, exist_ok=True)
    train, test = train_test_split(frame, test_size=arguments.test_fraction, random_state=seed, shuffle=True,
                                   stratify=frame[arguments.label_column])
    train.to_csv(folder / "train.csv", index=False)
    test.to_csv(folder / "test.csv", index=False)
    training_texts = set(train[arguments.text_column])
    return {"train_csv": folder / "train.csv", "test_csv": folder / "test.csv", "train_rows": len(train),
            "test_rows": len(test), "test_scores": test[arguments.label_column].to_numpy(dtype=np.float64),
            "test_texts_also_in_train": int(sum(text in training_texts for text in test[arguments.text_column]))}


def run_pipeline(arguments: argparse.Namespace, split: dict[str, Any], extra_options: list[str], seed: int,
                 run_dir: Path, cache_dir: Path, environment: dict[str, str], code: Path) -> dict[str, Any]:
    """One `pipeline run` in a subprocess started in `code` (so `-m pipeline` imports that folder's package); its
    metrics.json, test predictions and wall time. Exits with the stderr tail if it fails."""
    command = [str(arguments.python), "-m", "pipeline", "run", "--data", str(split["train_csv"]),
               "--test-data", str(split["test_csv"]), "--text-column", arguments.text_column,
               "--label-column", arguments.label_column, *extra_options, "--seed", str(seed),
               "--output-dir", str(run_dir), "--cache-dir", str(cache_dir), "--quiet"]
    wall = run_or_exit(command, code=code, environment=environment)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    with np.load(run_dir / "test_predictions.npz", allow_pickle=False) as predictions:
        labels, probabilities = predictions["labels"], predictions["probabilities"]
    return {"seed": seed, "command": command, "wall_seconds": wall, "metrics": metrics, "labels": labels,
            "probabilities": probabilities}


def nearest_levels(values: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Each value moved to the nearest of `levels` (the lower one on an exact tie)."""
    levels = np.sort(np.asarray(levels, dtype=np.float64))
    return levels[np.abs(values[:, None] - levels[None, :]).argmin(axis=1)]


def number_metrics(targets: np.ndarray, predictions: np.ndarray, levels: np.ndarray) -> dict[str, float]:
    """RMSE, MAE, R², Spearman, Pearson and the accuracy of the prediction rounded to the nearest level."""
    targets, predictions = np.asarray(targets, dtype=np.float64), np.asarray(predictions, dtype=np.float64).ravel()
    errors = predictions - targets
    return {"rmse": float(np.sqrt(np.mean(errors ** 2))), "mae": float(np.mean(np.abs(errors))),
            "r2": float(1 - np.sum(errors ** 2) / np.sum((targets - targets.mean()) ** 2)),
            "spearman": float(spearmanr(targets, predictions)[0]), "pearson": float(pearsonr(targets, predictions)[0]),
            "rounded_accuracy": float(np.mean(nearest_levels(predictions, levels) == targets))}


def cost_record(result: dict[str, Any]) -> dict[str, Any]:
    metrics = result["metrics"]
    return {"wall_seconds": round(result["wall_seconds"], 1), "precision": metrics["precision"]["used"],
            "precision_why": metrics["precision"].get("why"),
            "features": {key: metrics["features"].get(key) for key in ("cache_hit", "seconds", "texts", "cache_entry")},
            "training_seconds": metrics["training"]["seconds"], "training_epochs": metrics["training"].get("epochs_run"),
            "split_sizes": metrics["config"].get("split_sizes")}


def regression_record(result: dict[str, Any], split: dict[str, Any]) -> dict[str, Any]:
    """Head and probe test metrics from metrics.json, checked against the test table and against our own metrics
    recomputed from the head's test predictions (the same code then scores the classification's expected value)."""
    metrics = result["metrics"]
    if not np.array_equal(result["labels"].astype(np.float64), split["test_scores"]):
        sys.exit(f"seed {result['seed']}: the regression run's test targets are not the test table's scores in order")
    levels = np.asarray(metrics["target"]["levels"], dtype=np.float64)
    recomputed = number_metrics(split["test_scores"], result["probabilities"], levels)
    mismatch = max(abs(recomputed[name] - metrics["test"][name]) for name in METRICS)
    if mismatch > CHECK_TOLERANCE:
        sys.exit(f"seed {result['seed']}: metrics recomputed from test_predictions.npz differ from metrics.json by "
                 f"{mismatch:.2e}: {recomputed} against {metrics['test']}")
    return {"head": {name: metrics["test"][name] for name in METRICS},
            "probe": {name: metrics["baseline"]["test"][name] for name in METRICS},
            "head_val": {name: metrics["val"][name] for name in METRICS},
            "probe_val_rmse": metrics["baseline"]["test"].get("val_rmse"),
            "probe_strength": {"model": metrics["baseline"].get("model"), "alpha": metrics["baseline"]["test"].get("alpha")},
            "target": metrics["target"], "recomputed_largest_difference": mismatch, **cost_record(result)}


def classification_record(result: dict[str, Any], split: dict[str, Any], levels: np.ndarray) -> dict[str, Any]:
    """The five-class run: its own accuracy, and its expected value sum_k p_k * score_k scored as a number."""
    metrics = result["metrics"]
    class_scores = np.array([float(name) for name in metrics["labels"]])
    probabilities = result["probabilities"].astype(np.float64)
    if probabilities.shape != (len(split["test_scores"]), len(class_scores)):
        sys.exit(f"seed {result['seed']}: test probabilities of shape {probabilities.shape}, expected "
                 f"({len(split['test_scores'])}, {len(class_scores)})")
    if not np.array_equal(class_scores[result["labels"].astype(int)], split["test_scores"]):
        sys.exit(f"seed {result['seed']}: the classification run's test labels are not the test table's scores in order")
    expected = probabilities @ class_scores / probabilities.sum(axis=1)
    argmax = class_scores[probabilities.argmax(axis=1)]
    return {"classes": metrics["labels"], "expected_value": number_metrics(split["test_scores"], expected, levels),
            "argmax_as_number": number_metrics(split["test_scores"], argmax, levels),
            "accuracy": metrics["test"]["accuracy"], "macro_f1": metrics["test"]["f1"],
            "macro_auroc": metrics["test"]["auroc"], "probe_accuracy": metrics["baseline"]["test"]["accuracy"],
            **cost_record(result)}


def summary_table(records: list[dict[str, Any]]) -> str:
    """Head, probe and the classification's expected value: each metric's mean ± sd (min-max) over the seeds."""
    lines = ["| test metric | head (3 mlp averaged, regression) | probe (ridge) | five classes, expected value |",
             "|---|---:|---:|---:|"]
    for name in METRICS:
        head = [record["regression"]["head"][name] for record in records]
        probe = [record["regression"]["probe"][name] for record in records]
        expected = [record["classification"]["expected_value"][name] for record in records]
        better = " (lower is better)" if name in LOWER_IS_BETTER else ""
        lines.append(f"| {name.replace('_', ' ')}{better} | {spread(head)} | {spread(probe)} | {spread(expected)} |")
    accuracy = [record["classification"]["accuracy"] for record in records]
    lines.append(f"| five-class accuracy (argmax) | | | {spread(accuracy)} |")
    return "\n".join(lines)


def seed_table(records: list[dict[str, Any]]) -> str:
    """Per seed: the three comparisons the issue asks for, with their differences."""
    lines = ["| split seed | head RMSE | probe RMSE | head - probe | EV RMSE | head - EV | head Spearman | probe Spearman | "
             "head - probe | EV Spearman | five-class accuracy | head rounded accuracy |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for record in records:
        head, probe = record["regression"]["head"], record["regression"]["probe"]
        expected = record["classification"]["expected_value"]
        lines.append(
            f"| {record['seed']} | {head['rmse']:.4f} | {probe['rmse']:.4f} | {head['rmse'] - probe['rmse']:+.4f} | "
            f"{expected['rmse']:.4f} | {head['rmse'] - expected['rmse']:+.4f} | {head['spearman']:.4f} | "
            f"{probe['spearman']:.4f} | {head['spearman'] - probe['spearman']:+.4f} | {expected['spearman']:.4f} | "
            f"{record['classification']['accuracy']:.4f} | {head['rounded_accuracy']:.4f} |")
    return "\n".join(lines)


def metric_seed_table(records: list[dict[str, Any]]) -> str:
    """Per seed, every metric for the head, the probe and the classification's expected value (EV)."""
    header = " | ".join(f"{kind} {name.replace('_', ' ')}" for name in METRICS for kind in ("head", "probe", "EV"))
    lines = [f"| split seed | {header} |", "|---:|" + "---:|" * (3 * len(METRICS))]
    for record in records:
        sources = (record["regression"]["head"], record["regression"]["probe"], record["classification"]["expected_value"])
        lines.append(f"| {record['seed']} | " + " | ".join(f"{source[name]:.4f}" for name in METRICS for source in sources)
                     + " |")
    return "\n".join(lines)


def cost_table(records: list[dict[str, Any]]) -> str:
    """Per seed and run: precision, features (extracted or read), training and the whole run."""
    lines = ["| split seed | run | rows train/val/test | precision | features | training | whole run |",
             "|---:|---|---|---|---:|---:|---:|"]
    for record in records:
        for kind in ("regression", "classification"):
            run = record[kind]
            features, sizes = run["features"], run["split_sizes"] or {}
            lines.append(
                f"| {record['seed']} | {kind} | {'/'.join(str(sizes.get(name, '?')) for name in ('train', 'validation', 'test'))} | "
                f"{run['precision']} | {features['seconds']:.1f} s ({'cache hit' if features['cache_hit'] else 'extracted'}) | "
                f"{run['training_seconds']:.1f} s | {run['wall_seconds']:.0f} s |")
    return "\n".join(lines)


def verdict(records: list[dict[str, Any]]) -> str:
    """Whether each of the three comparisons held at every seed."""
    checks = (("head RMSE < probe RMSE", lambda r: r["regression"]["head"]["rmse"] - r["regression"]["probe"]["rmse"], -1),
              ("head Spearman > probe Spearman",
               lambda r: r["regression"]["head"]["spearman"] - r["regression"]["probe"]["spearman"], 1),
              ("head RMSE < five-class expected-value RMSE",
               lambda r: r["regression"]["head"]["rmse"] - r["classification"]["expected_value"]["rmse"], -1))
    lines = []
    for title, difference_of, sign in checks:
        differences = [difference_of(record) for record in records]
        failed = [str(record["seed"]) for record, difference in zip(records, differences) if sign * difference <= 0]
        lines.append(f"{title}: held at {len(records) - len(failed)} of {len(records)} seeds"
                     f"{' (failed at seeds ' + ', '.join(failed) + ')' if failed else ''}; "
                     f"differences {', '.join(f'{difference:+.4f}' for difference in differences)}")
    return "\n".join(lines)


def print_report(results: dict[str, Any], output: Path) -> None:
    """The tables and checks of one call's results (as written to OUTPUT/results.json)."""
    records, cpu = results["runs"], results["cpu"]
    precisions = sorted({record[kind]["precision"] for record in records for kind in ("regression", "classification")})
    first = records[0]["regression"]
    print(f"\nCPU: {cpu_line(cpu)}; precision used: {', '.join(precisions)} ({first['precision_why']})")
    print(f"target: {json.dumps(first['target'])}; probe: {first['probe_strength']['model']}, alpha per seed "
          f"{[record['regression']['probe_strength']['alpha'] for record in records]}")
    print(f"rows: train table {sorted({r['train_rows'] for r in records})}, test table "
          f"{sorted({r['test_rows'] for r in records})}; test texts also in the training table: "
          f"{[r['test_texts_also_in_train'] for r in records]}; largest difference between our metrics and "
          f"metrics.json on the head's predictions: {max(r['regression']['recomputed_largest_difference'] for r in records):.1e}")
    print(f"\n{summary_table(records)}\n\n{seed_table(records)}\n\n{metric_seed_table(records)}\n\n{verdict(records)}\n\n"
          f"{cost_table(records)}")
    print(f"code: {results['code']}")
    print(f"\nwall time, all runs: {results['wall_seconds']:.0f} s; results: {output / 'results.json'}")


def main() -> None:
    arguments = parse_arguments()
    seeds = [int(seed) for seed in arguments.seeds.split(",")]
    output = arguments.output.resolve()
    if arguments.report:
        print_report(json.loads((output / "results.json").read_text()), output)
        return
    cache_dir, environment = output / "cache", clean_environment(output / "artifacts")
    cpu = cpu_description()
    frame = read_table(arguments)
    code, code_description = code_folder(arguments.commit, output)
    print(f"CPU: {cpu_line(cpu)}", flush=True)
    print(f"code: {code_description}", flush=True)
    counts = frame[arguments.label_column].value_counts().sort_index()
    print(f"data: {arguments.data} ({len(frame)} rows; {arguments.label_column} "
          f"{', '.join(f'{score}: {count}' for score, count in counts.items())}; "
          f"{frame[arguments.text_column].duplicated().sum()} repeated texts), seeds {seeds}, output {output}", flush=True)
    started = time.perf_counter()
    records = []
    for seed in seeds:
        split = write_split(frame, arguments, seed, output / "splits" / f"seed-{seed}")
        regression = regression_record(
            run_pipeline(arguments, split, ["--regression"], seed, output / "runs" / f"regression-seed-{seed}",
                         cache_dir, environment, code), split)
        levels = np.asarray(regression["target"]["levels"], dtype=np.float64)
        classification = classification_record(
            run_pipeline(arguments, split, [], seed, output / "runs" / f"classification-seed-{seed}", cache_dir,
                         environment, code), split, levels)
        records.append({"seed": seed, "train_rows": split["train_rows"], "test_rows": split["test_rows"],
                        "test_texts_also_in_train": split["test_texts_also_in_train"],
                        "regression": regression, "classification": classification})
        head, probe, expected = regression["head"], regression["probe"], classification["expected_value"]
        print(f"seed {seed}: head RMSE {head['rmse']:.4f} (probe {probe['rmse']:.4f}, five-class EV "
              f"{expected['rmse']:.4f}), Spearman {head['spearman']:.4f} (probe {probe['spearman']:.4f}, EV "
              f"{expected['spearman']:.4f}); probe alpha {regression['probe_strength']['alpha']}; features {regression['features']['seconds']:.1f} s and "
              f"{classification['features']['seconds']:.1f} s; runs {regression['wall_seconds']:.0f} s and "
              f"{classification['wall_seconds']:.0f} s ({time.perf_counter() - started:.0f} s so far)", flush=True)
    wall = time.perf_counter() - started
    results = {"cpu": cpu, "code": code_description, "data": str(arguments.data), "data_rows": len(frame),
               "seeds": seeds, "wall_seconds": round(wall, 1), "runs": records}
    (output / "results.json").write_text(json.dumps(results, indent=1, default=str))
    print_report(json.loads((output / "results.json").read_text()), output)

if __name__ == "__main__":
    main()
