"""Multi-label quality on real data: the default head against the probe, over split seeds (docs/quality.md).

Runs `python -m pipeline run --label-columns ...` with the defaults (the embedded encoder, three mlp heads
averaged, every other option left alone) once per split seed on a table with one 0/1 column per label (by
default SemEval-2018 Task 1 E-c, English training tweets), each run in its own subprocess with a clean
environment, all of them sharing one feature cache so that the first run extracts and the others read. Each
run's metrics.json is read back: the head's test metrics (`test`) against the one-vs-rest logistic-regression
probe every run fits beside it on the same features (`baseline.test`), both with per-label thresholds chosen
on the validation split.

Then one single-label run (`--label-column joy` by default) on the same table, texts and cache: it should find
the multi-label runs' cache entry (`features.cache_hit` true, about 0 s extracting), which shows that a
multi-label run costs no more extraction than a single-label one on the same texts.

Prints Markdown tables, ready to paste: mean, sample sd and min-max over the seeds of macro/micro AUROC, macro/
micro F1, subset accuracy and Hamming loss for head and probe; the head-minus-probe differences per seed; the
labels by test AUROC, weakest first; and the cache check. Writes every figure to OUTPUT/results.json.
`--commit C` runs the pipeline of commit C (exported with git archive) rather than the checkout, so that code
edited while the runs go on does not reach them.

    .venv/bin/python benchmarks/multi_label_quality.py [--data ../shared/data/semeval2018-ec-en-train.tsv]
        [--seeds 0,1,2,3,4] [--output /tmp/multi-label-quality] [--single-label joy] [--commit HEAD]
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import time
from pathlib import Path
from typing import Any

from measured_runs import REPO, clean_environment, code_folder, cpu_description, cpu_line, run_or_exit, spread

DEFAULT_DATA = REPO.parent / "shared" / "data" / "semeval2018-ec-en-train.tsv"
DEFAULT_LABELS = "anger,anticipation,disgust,fear,joy,love,optimism,pessimism,sadness,surprise,trust"
METRICS = ("macro_auroc", "micro_auroc", "macro_f1", "micro_f1", "subset_accuracy", "hamming_loss")


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="table with a text column and 0/1 label columns")
    parser.add_argument("--text-column", default="Tweet")
    parser.add_argument("--label-columns", default=DEFAULT_LABELS, help="the 0/1 label columns, named with commas")
    parser.add_argument("--seeds", default="0,1,2,3,4", help="split seeds, with commas")
    parser.add_argument("--single-label", default="joy",
                        help="the label column of the single-label run that checks the cache (empty: no such run)")
    parser.add_argument("--output", type=Path, default=Path("/tmp/multi-label-quality"),
                        help="scratch folder: artifacts, the shared feature cache, run folders, results.json")
    parser.add_argument("--commit", help="run the pipeline of this commit, exported to OUTPUT/code with git archive, "
                                         "so that edits to the checkout during the runs do not reach them "
                                         "(default: the checkout as it is)")
    parser.add_argument("--python", type=Path, default=REPO / ".venv" / "bin" / "python")
    return parser.parse_args()


def count_rows(data: Path) -> int:
    """Data rows of the table as the data set's README says to read it: tab-separated, a header, no quoting."""
    with data.open(newline="", encoding="utf-8") as handle:
        return sum(1 for _ in csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)) - 1


def run_pipeline(arguments: argparse.Namespace, label_options: list[str], seed: int, run_dir: Path,
                 cache_dir: Path, environment: dict[str, str], code: Path) -> dict[str, Any]:
    """One `pipeline run` in a subprocess started in `code` (so `-m pipeline` imports that folder's package); its
    metrics.json and wall time. Exits with the stderr tail if it fails."""
    command = [str(arguments.python), "-m", "pipeline", "run", "--data", str(arguments.data),
               "--text-column", arguments.text_column, *label_options, "--seed", str(seed),
               "--output-dir", str(run_dir), "--cache-dir", str(cache_dir), "--quiet"]
    wall = run_or_exit(command, code=code, environment=environment)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {"seed": seed, "command": command, "wall_seconds": wall, "metrics": metrics}


def split_rows(metrics: dict[str, Any]) -> int:
    """Rows in the run's training, validation and test splits together (from its config record)."""
    return int(sum(metrics["config"]["split_sizes"].values()))


def run_record(result: dict[str, Any]) -> dict[str, Any]:
    """The figures kept from one run: head and probe test metrics, per label, precision, features and timing."""
    metrics = result["metrics"]
    head, probe = metrics["test"], metrics["baseline"]["test"]
    return {
        "seed": result["seed"], "wall_seconds": round(result["wall_seconds"], 1),
        "precision": metrics["precision"]["used"], "precision_why": metrics["precision"].get("why"),
        "head": {name: head[name] for name in METRICS}, "probe": {name: probe[name] for name in METRICS},
        "head_val": {name: metrics["val"][name] for name in METRICS},
        "macro_auroc_labels": (head.get("macro_auroc_labels"), probe.get("macro_auroc_labels")),
        "head_per_label": head["per_label"], "probe_per_label": probe["per_label"],
        "test_rows": head.get("rows"), "split_rows": split_rows(metrics),
        "features": {key: metrics["features"][key] for key in ("cache_hit", "seconds", "texts", "cache_entry")},
        "training_seconds": metrics["training"]["seconds"],
        "training_epochs": metrics["training"].get("epochs_run"),
    }


def summary_table(records: list[dict[str, Any]]) -> str:
    """Head and probe, each metric's mean ± sd (min-max) over the seeds."""
    lines = ["| test metric | head (3 mlp averaged) | probe (one-vs-rest logistic regression) | head - probe, mean |",
             "|---|---:|---:|---:|"]
    for name in METRICS:
        head = [record["head"][name] for record in records]
        probe = [record["probe"][name] for record in records]
        difference = statistics.mean(head) - statistics.mean(probe)
        lines.append(f"| {name.replace('_', ' ')}{' (lower is better)' if name == 'hamming_loss' else ''} | "
                     f"{spread(head)} | {spread(probe)} | {difference:+.4f} |")
    return "\n".join(lines)


def seed_table(records: list[dict[str, Any]]) -> str:
    """Per seed: head and probe macro AUROC and macro F1 and their differences, and the run's costs."""
    lines = ["| split seed | head macro AUROC | probe | difference | head macro F1 | probe | difference | "
             "head micro F1 | precision | features | training | whole run |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|"]
    for record in records:
        head, probe, features = record["head"], record["probe"], record["features"]
        lines.append(
            f"| {record['seed']} | {head['macro_auroc']:.4f} | {probe['macro_auroc']:.4f} | "
            f"{head['macro_auroc'] - probe['macro_auroc']:+.4f} | {head['macro_f1']:.4f} | {probe['macro_f1']:.4f} | "
            f"{head['macro_f1'] - probe['macro_f1']:+.4f} | {head['micro_f1']:.4f} | {record['precision']} | "
            f"{features['seconds']:.1f} s ({'cache hit' if features['cache_hit'] else 'extracted'}) | "
            f"{record['training_seconds']:.1f} s | {record['wall_seconds']:.0f} s |")
    return "\n".join(lines)


def label_table(records: list[dict[str, Any]]) -> str:
    """Each label's test AUROC and F1 (mean over the seeds) for head and probe, weakest head AUROC first."""
    names = list(records[0]["head_per_label"])

    def mean_of(kind: str, name: str, metric: str) -> float:
        values = [record[kind][name][metric] for record in records if record[kind][name][metric] is not None]
        return statistics.mean(values) if values else float("nan")

    rows = sorted(names, key=lambda name: mean_of("head_per_label", name, "auroc"))
    lines = ["| label | test positives (mean) | head AUROC | probe AUROC | head F1 | probe F1 |",
             "|---|---:|---:|---:|---:|---:|"]
    for name in rows:
        support = statistics.mean(record["head_per_label"][name]["support"] for record in records)
        lines.append(f"| {name} | {support:.0f} | {mean_of('head_per_label', name, 'auroc'):.4f} | "
                     f"{mean_of('probe_per_label', name, 'auroc'):.4f} | {mean_of('head_per_label', name, 'f1'):.4f} | "
                     f"{mean_of('probe_per_label', name, 'f1'):.4f} |")
    return "\n".join(lines)


def cache_table(records: list[dict[str, Any]], single: dict[str, Any] | None, single_label: str) -> str:
    """Which run extracted and which read the cache, with the entry each used."""
    lines = ["| run | rows split | unique texts | features.cache_hit | features.seconds | cache entry |",
             "|---|---:|---:|---|---:|---|"]
    rows = [(f"multi-label, seed {record['seed']}", record) for record in records]
    if single is not None:
        rows.append((f"single-label `--label-column {single_label}`, seed {single['seed']}", single))
    for title, record in rows:
        features = record["features"]
        lines.append(f"| {title} | {record['split_rows']} | {features['texts']} | {str(features['cache_hit']).lower()} | "
                     f"{features['seconds']:.2f} | {Path(features['cache_entry']).name} |")
    return "\n".join(lines)


def verdict(records: list[dict[str, Any]]) -> str:
    """Whether the head beat the probe at every seed on test macro AUROC and on test macro F1."""
    lines = []
    for name in ("macro_auroc", "macro_f1"):
        differences = [record["head"][name] - record["probe"][name] for record in records]
        wins = sum(difference > 0 for difference in differences)
        lines.append(f"test {name.replace('_', ' ')}: head beat the probe at {wins} of {len(records)} seeds; "
                     f"differences {', '.join(f'{difference:+.4f}' for difference in differences)}")
    return "\n".join(lines)


def single_label_record(result: dict[str, Any]) -> dict[str, Any]:
    """The figures kept from the single-label run: its features' provenance and its test AUROC."""
    metrics = result["metrics"]
    return {"seed": result["seed"], "wall_seconds": round(result["wall_seconds"], 1),
            "precision": metrics["precision"]["used"], "split_rows": split_rows(metrics),
            "features": {key: metrics["features"][key] for key in ("cache_hit", "seconds", "texts", "cache_entry")},
            "test_auroc": metrics["test"].get("auroc"), "probe_test_auroc": metrics["baseline"]["test"].get("auroc")}


def main() -> None:
    arguments = parse_arguments()
    seeds = [int(seed) for seed in arguments.seeds.split(",")]
    output = arguments.output.resolve()
    cache_dir, environment = output / "cache", clean_environment(output / "artifacts")
    cpu = cpu_description()
    rows = count_rows(arguments.data)
    code, code_description = code_folder(arguments.commit, output)
    print(f"CPU: {cpu_line(cpu)}", flush=True)
    print(f"code: {code_description}", flush=True)
    print(f"data: {arguments.data} ({rows} rows), seeds {seeds}, output {output}", flush=True)
    started = time.perf_counter()
    records = []
    for seed in seeds:
        result = run_pipeline(arguments, ["--label-columns", arguments.label_columns], seed,
                              output / "runs" / f"multi-label-seed-{seed}", cache_dir, environment, code)
        records.append(run_record(result))
        record = records[-1]
        print(f"seed {seed}: head macro AUROC {record['head']['macro_auroc']:.4f} (probe {record['probe']['macro_auroc']:.4f}), "
              f"macro F1 {record['head']['macro_f1']:.4f} (probe {record['probe']['macro_f1']:.4f}); "
              f"features {record['features']['seconds']:.1f} s, cache hit {record['features']['cache_hit']}; "
              f"{record['wall_seconds']:.0f} s ({time.perf_counter() - started:.0f} s so far)", flush=True)
    single = None
    if arguments.single_label:
        result = run_pipeline(arguments, ["--label-column", arguments.single_label], seeds[0],
                              output / "runs" / f"single-label-{arguments.single_label}-seed-{seeds[0]}", cache_dir,
                              environment, code)
        single = single_label_record(result)
    wall = time.perf_counter() - started
    (output / "results.json").write_text(json.dumps(
        {"cpu": cpu, "code": code_description, "data": str(arguments.data), "data_rows": rows, "seeds": seeds, "wall_seconds": round(wall, 1),
         "runs": records, "single_label": single}, indent=1))
    precisions = sorted({record["precision"] for record in records} | ({single["precision"]} if single else set()))
    print(f"\nCPU: {cpu_line(cpu)}; precision used: {', '.join(precisions)} ({records[0]['precision_why']})")
    print(f"data rows: {rows}; rows in each run's splits: {sorted({record['split_rows'] for record in records})}; "
          f"test rows: {sorted({record['test_rows'] for record in records})}; labels in macro AUROC (head, probe): "
          f"{sorted({tuple(record['macro_auroc_labels']) for record in records})}")
    print(f"\n{summary_table(records)}\n\n{seed_table(records)}\n\n{verdict(records)}\n\n{label_table(records)}\n\n"
          f"{cache_table(records, single, arguments.single_label)}")
    if single is not None:
        print(f"\nsingle-label run: test AUROC {single['test_auroc']:.4f} (probe {single['probe_test_auroc']:.4f}), "
              f"{single['wall_seconds']:.0f} s")
    print(f"code: {code_description}")
    print(f"\nwall time, all runs: {wall:.0f} s; results: {output / 'results.json'}")


if __name__ == "__main__":
    main()
