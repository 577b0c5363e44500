"""int8 against float32 features on real data: the logistic-regression probe's test accuracy and AUROC over split
seeds (issue 41, item 1; docs/int8-guard.md).

For each data set, one subprocess (clean environment, its own feature cache and artifacts) does what `run` does
up to the probe, with the pipeline's own functions: `prepare` (read, split with the seed, settle the features as
`run` would), `extract` (every split's features, from the cache or computed into it: one cache entry per
precision, so the seeds after the first read), `split_features` and `fit_baseline` (logistic regression on the
standardised features, fitted on the training split, scored on the test split: what metrics.json holds as
`baseline.test`). No head is trained. The probe is fitted afresh every time (no probe result is read from the
cache). Besides the probe, the first seed's features give each text's cosine similarity of int8 with float32.

The guard (issue 41): the int8 probe's test accuracy and AUROC within 0.002 of float32's on average over the
seeds and within 0.005 at every seed.

Data sets (`--datasets`, with commas):
  demo      the embedded demo, Rotten Tomatoes snippets (the rotten-tomatoes preset)
  semeval   SemEval-2018 Task 1 E-c English training tweets, single label: --text-column Tweet --label-column joy
  amazon    the Amazon fine food sample, --preset amazon-fine-food (binary; long reviews read in windows)

`--commit C` runs the pipeline of commit C (exported with git archive) rather than the checkout. `--control`
adds, per seed, the probe on float32 features plus Gaussian noise as large as int8's differences (their root mean
square); `--control-only` runs just that on an OUTPUT whose features are cached, appending to its results.
Prints Markdown tables per data set; `INT8_QUALITY_TABLES=NAME=OUTPUT/NAME/results.jsonl` prints them again
from the results file without running anything.

    .venv/bin/python benchmarks/int8_quality.py [--datasets demo,semeval,amazon] [--seeds 0,1,2,3,4]
        [--output /tmp/int8-quality] [--commit HEAD] [--control | --control-only]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCHMARKS = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCHMARKS))

from measured_runs import REPO, clean_environment, code_folder, cpu_description, cpu_line, spread  # noqa: E402

SHARED_DATA = REPO.parent / "shared" / "data"
DATASETS: dict[str, dict[str, Any]] = {
    "demo": {"description": "the embedded demo (Rotten Tomatoes snippets, preset rotten-tomatoes)", "options": {}},
    "semeval": {"description": "SemEval-2018 E-c English training tweets, label joy (0/1)",
                "options": {"data": str(SHARED_DATA / "semeval2018-ec-en-train.tsv"), "text_column": "Tweet",
                            "label_column": "joy"}},
    "amazon": {"description": "Amazon fine food sample (preset amazon-fine-food, long reviews in windows)",
               "options": {"data": str(SHARED_DATA / "amazon-fine-food-sample.csv"), "preset": "amazon-fine-food"}},
}
REFERENCE, COMPARED = "float32", "int8"
METRICS = ("accuracy", "auroc")
MEAN_BOUND, SEED_BOUND = 0.002, 0.005


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="demo,semeval,amazon", help=f"with commas, of {', '.join(DATASETS)}")
    parser.add_argument("--seeds", default="0,1,2,3,4", help="split seeds, with commas")
    parser.add_argument("--output", type=Path, default=Path("/tmp/int8-quality"),
                        help="scratch folder: per data set a feature cache, artifacts and its results")
    parser.add_argument("--commit", help="run the pipeline of this commit, exported to OUTPUT/code with git archive "
                                         "(default: the checkout as it is)")
    parser.add_argument("--control", action="store_true",
                        help="also the probe on float32 features plus Gaussian noise as large as int8's differences")
    parser.add_argument("--control-only", action="store_true",
                        help="only that control, appended to the results already in OUTPUT (their features cached)")
    parser.add_argument("--python", type=Path, default=REPO / ".venv" / "bin" / "python")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # JSON: one data set's job, run in the subprocess
    return parser.parse_args()


# ----------------------------------------------------------------------------- the subprocess: one data set


def work(job: dict[str, Any]) -> None:
    """Probe metrics for every precision and seed of one data set, one JSON line each into job['results']."""
    import logging

    import numpy as np

    from pipeline.base.config import RunConfig
    from pipeline.runs.prepare import extract, prepare, split_features
    from pipeline.runs.run import fit_baseline

    logging.basicConfig(level=logging.WARNING)
    results = Path(job["results"])
    first_features: dict[str, np.ndarray] = {}
    for precision in (REFERENCE, COMPARED):
        for seed in job["seeds"]:
            if job.get("control_only") and seed != job["seeds"][0]:
                continue  # the control needs only the first seed's features of both precisions
            config = RunConfig(seed=seed, precision=precision, cache_dir=job["cache_dir"], **job["options"])
            started = time.perf_counter()
            prepared = prepare(config)
            feature_result = extract(prepared, show_progress=False)
            extracted = time.perf_counter() - started
            parts = split_features(prepared, feature_result.features)
            if seed == job["seeds"][0]:
                first_features[precision] = feature_result.features
            if job.get("control_only"):
                continue
            started = time.perf_counter()
            metrics = fit_baseline(prepared, parts, None)
            summary = feature_result.summary()
            record = {"precision": precision, "precision_used": prepared.precision, "seed": seed,
                      "test": {key: float(metrics[key]) for key in METRICS},
                      "rows": {name: int(len(values)) for name, values in parts.items()},
                      "features_shape": list(feature_result.features.shape),
                      "cache_hit": summary.get("cache_hit"), "prepare_and_extract_seconds": round(extracted, 1),
                      "probe_seconds": round(time.perf_counter() - started, 1),
                      "settings": {"pooling": prepared.pooling, "layers": str(prepared.config.layers),
                                   "max_seq_length": prepared.max_seq_length,
                                   "long_texts": str(prepared.config.long_texts) if hasattr(prepared.config, "long_texts")
                                   else None}}
            with results.open("a", encoding="utf-8") as file:
                file.write(json.dumps(record) + "\n")
            print(json.dumps(record), flush=True)
    reference, compared = first_features[REFERENCE], first_features[COMPARED]
    norms = np.linalg.norm(reference, axis=1) * np.linalg.norm(compared, axis=1)
    cosine = np.sum(reference * compared, axis=1) / np.maximum(norms, 1e-12)
    difference = reference - compared
    agreement = {"agreement": {"texts": int(len(cosine)), "min_cosine": float(cosine.min()),
                               "median_cosine": float(np.median(cosine)), "mean_cosine": float(cosine.mean()),
                               "rms_difference": float(np.sqrt(np.mean(difference**2)))}}
    with results.open("a", encoding="utf-8") as file:
        file.write(json.dumps(agreement) + "\n")
    print(json.dumps(agreement), flush=True)
    if not job.get("control"):
        return
    # The control: float32 features plus Gaussian noise as large as int8's differences (their root mean square),
    # seeded by the split seed: how far the probe moves for a change of that size with no structure to it.
    noise = agreement["agreement"]["rms_difference"]
    for seed in job["seeds"]:
        prepared = prepare(RunConfig(seed=seed, precision=REFERENCE, cache_dir=job["cache_dir"], **job["options"]))
        features = extract(prepared, show_progress=False).features
        generator = np.random.default_rng(seed)
        noisy = features + generator.normal(0, noise, features.shape).astype(np.float32)
        metrics = fit_baseline(prepared, split_features(prepared, noisy), None)
        record = {"precision": "float32+noise", "noise_sd": noise, "seed": seed,
                  "test": {key: float(metrics[key]) for key in METRICS}}
        with results.open("a", encoding="utf-8") as file:
            file.write(json.dumps(record) + "\n")
        print(json.dumps(record), flush=True)


# ----------------------------------------------------------------------------- the parent: subprocesses and tables


def run_dataset(name: str, seeds: list[int], output: Path, code: Path, python: Path, *, control: bool,
                control_only: bool) -> Path:
    folder = output / name
    folder.mkdir(parents=True, exist_ok=True)
    results = folder / "results.jsonl"
    if results.exists() and not control_only:
        results.unlink()
    job = {"results": str(results), "seeds": seeds, "cache_dir": str(folder / "cache"),
           "options": DATASETS[name]["options"], "control": control or control_only, "control_only": control_only}
    environment = clean_environment(folder / "artifacts")
    environment["PIPELINE_MODELS"] = str(output / "models")  # the int8 conversion once for all data sets
    environment["PYTHONPATH"] = str(code)  # the pipeline package of `code`, explicitly
    command = [str(python), str(BENCHMARKS / "int8_quality.py"), "--worker", json.dumps(job)]
    started = time.perf_counter()
    with (folder / "stderr.log").open("a", encoding="utf-8") as stderr:
        completed = subprocess.run(command, cwd=code, env=environment, stdout=subprocess.PIPE, stderr=stderr, text=True)
    print(f"{name}: {time.perf_counter() - started:.0f} s, exit {completed.returncode}", flush=True)
    if completed.returncode != 0:
        print((folder / "stderr.log").read_text(encoding="utf-8")[-3000:], file=sys.stderr)
    return results


def tables(name: str, results: Path) -> str:
    records = [json.loads(line) for line in results.read_text(encoding="utf-8").splitlines() if line.strip()]
    runs = [record for record in records if record.get("precision") in (REFERENCE, COMPARED)]
    agreement = next((record["agreement"] for record in records if "agreement" in record), None)
    control = {record["seed"]: record for record in records if record.get("precision") == "float32+noise"}
    by = {(record["precision"], record["seed"]): record for record in runs}
    seeds = sorted({record["seed"] for record in runs if (COMPARED, record["seed"]) in by and (REFERENCE, record["seed"]) in by})
    lines = [f"### {name}: {DATASETS[name]['description']}", ""]
    if runs:
        first = runs[0]
        lines.append(f"rows train/validation/test {first['rows']['train']}/{first['rows']['validation']}/"
                     f"{first['rows']['test']}; features {first['features_shape'][1]} wide; {first['settings']}")
        lines.append("")
    lines += ["| split seed | accuracy float32 | accuracy int8 | difference | AUROC float32 | AUROC int8 | difference |",
              "|---:|---:|---:|---:|---:|---:|---:|"]
    differences: dict[str, list[float]] = {metric: [] for metric in METRICS}
    for seed in seeds:
        cells = [str(seed)]
        for metric in METRICS:
            reference, compared = by[(REFERENCE, seed)]["test"][metric], by[(COMPARED, seed)]["test"][metric]
            differences[metric].append(compared - reference)
            cells += [f"{reference:.4f}", f"{compared:.4f}", f"{compared - reference:+.4f}"]
        lines.append("| " + " | ".join(cells) + " |")
    if seeds:
        cells = ["mean ± sd"]
        for metric in METRICS:
            for precision in (REFERENCE, COMPARED):
                values = [by[(precision, seed)]["test"][metric] for seed in seeds]
                cells.append(f"{statistics.mean(values):.4f} ± {statistics.stdev(values) if len(values) > 1 else 0:.4f}")
            values = differences[metric]
            cells.append(f"**{statistics.mean(values):+.4f}** ± {statistics.stdev(values) if len(values) > 1 else 0:.4f}")
        lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        for metric in METRICS:
            values = differences[metric]
            mean, largest = statistics.mean(values), max(map(abs, values))
            holds = abs(mean) <= MEAN_BOUND and largest <= SEED_BOUND
            lines.append(f"- {metric}: mean difference {mean:+.4f} (bound {MEAN_BOUND}), largest |difference| "
                         f"{largest:.4f} (bound {SEED_BOUND}): guard **{'holds' if holds else 'fails'}**; "
                         f"differences {spread(values)}")
    if control and seeds:
        lines += ["", f"Control: float32 + Gaussian noise of sd {next(iter(control.values()))['noise_sd']:.2e} "
                      "(int8's root mean square difference), seeded by the split seed, minus float32:", "",
                  "| split seed | accuracy difference | AUROC difference |", "|---:|---:|---:|"]
        control_differences: dict[str, list[float]] = {metric: [] for metric in METRICS}
        for seed in seeds:
            if seed not in control:
                continue
            cells = [str(seed)]
            for metric in METRICS:
                difference = control[seed]["test"][metric] - by[(REFERENCE, seed)]["test"][metric]
                control_differences[metric].append(difference)
                cells.append(f"{difference:+.4f}")
            lines.append("| " + " | ".join(cells) + " |")
        if control_differences["auroc"]:
            lines.append("| mean (largest abs) | " + " | ".join(
                f"{statistics.mean(values):+.4f} ({max(map(abs, values)):.4f})" for values in control_differences.values())
                + " |")
        lines.append("")
    if agreement:
        lines.append(f"- per text, over {agreement['texts']} texts: cosine int8 vs float32 min {agreement['min_cosine']:.5f}, "
                     f"median {agreement['median_cosine']:.5f}, mean {agreement['mean_cosine']:.5f}; root mean square "
                     f"difference {agreement['rms_difference']:.2e}")
    return "\n".join(lines) + "\n"


def main() -> None:
    arguments = parse_arguments()
    if arguments.worker:
        work(json.loads(arguments.worker))
        return
    names = [name.strip() for name in arguments.datasets.split(",") if name.strip()]
    unknown = [name for name in names if name not in DATASETS]
    if unknown:
        raise SystemExit(f"unknown data sets {unknown}; known: {', '.join(DATASETS)}")
    seeds = [int(seed) for seed in arguments.seeds.split(",")]
    output = arguments.output.resolve()
    output.mkdir(parents=True, exist_ok=True)
    code, code_description = code_folder(arguments.commit, output)
    cpu = cpu_description()
    header = (f"CPU: {cpu_line(cpu)}\ncode: {code_description}\nseeds: {seeds}\n"
              f"started {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}\n")
    print(header, flush=True)
    (output / "cpu.json").write_text(json.dumps({"cpu": cpu, "code": code_description, "seeds": seeds}, indent=2) + "\n")
    for name in names:
        results = run_dataset(name, seeds, output, code, arguments.python, control=arguments.control,
                              control_only=arguments.control_only)
        if results.exists():
            print(tables(name, results), flush=True)


if __name__ == "__main__":
    if os.environ.get("INT8_QUALITY_TABLES"):  # tables from a results.jsonl already written: NAME=PATH
        table_name, _, table_path = os.environ["INT8_QUALITY_TABLES"].partition("=")
        print(tables(table_name, Path(table_path)))
    else:
        main()
