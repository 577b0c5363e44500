"""Does bfloat16 (or int8) change what the pipeline learns? The demo in float32 and the other, side by side (docs/quality.md).

1. Every demo text's features in both precisions (the run's defaults: every layer, mean pooling): the
   cosine similarity of each text's bfloat16 (int8) vector with its float32 one, minimum and mean (bound:
   0.999 for bfloat16, 0.99 for int8).
2. `run` with the defaults at each split seed, once per precision: test AUROC of the head and of the
   logistic-regression probe beside it, and their differences (bound: within 0.003 of float32). The
   probe is convex and fitted deterministically, so its difference is the features' own; the mlp head's
   also holds how differently a small change of its inputs steers its training (dropout, early stopping).
3. The control: float32 features plus Gaussian noise as large as bfloat16's differences (their root mean
   square), through the same `run`: how far the head's test AUROC moves for any change of that size.

On a CPU without bfloat16 units the bfloat16 products are emulated: slower, but the same rounding as on
AMX or AVX512_BF16 (the products accumulate in float32 either way), so the quality figures hold for both.

    .venv/bin/python benchmarks/precision_quality.py [--precision bfloat16|int8] [--seeds 42,0,1,2,3,4] [--no-control]
                                                     [--output results.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from extract import cosines, machine_line

import pipeline.runs.run as run_module
from pipeline.base.config import RunConfig
from pipeline.features.extraction import FeatureResult
from pipeline.runs.run import Prepared, extract, prepare, run

REFERENCE = "float32"


def feature_agreement(seed: int, precision: str) -> dict[str, float]:
    features = {}
    for used in (REFERENCE, precision):
        prepared = prepare(RunConfig(seed=seed, precision=used))
        features[used] = extract(prepared, show_progress=False).features
    similarity = cosines(features[REFERENCE], features[precision])
    difference = features[REFERENCE] - features[precision]
    return {"texts": len(similarity), "min_cosine": float(similarity.min()), "mean_cosine": float(similarity.mean()),
            "max_abs_difference": float(np.abs(difference).max()), "rms_difference": float(np.sqrt(np.mean(difference**2)))}


def run_with_noise(config: RunConfig, noise: float) -> dict:
    """`run`, its float32 features given Gaussian noise of standard deviation `noise` (seeded by the split seed)."""

    def noisy_extract(prepared: Prepared, *, show_progress: bool = True) -> FeatureResult:
        result = extract(prepared, show_progress=show_progress)
        generator = np.random.default_rng(config.seed)
        result.features = result.features + generator.normal(0, noise, result.features.shape).astype(np.float32)
        return result

    run_module.extract = noisy_extract  # type: ignore[assignment]
    try:
        return run(config, show_progress=False).metrics
    finally:
        run_module.extract = extract


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="42,0,1,2,3,4", help="split seeds, comma-separated")
    parser.add_argument("--precision", default="bfloat16", choices=("bfloat16", "int8"), help="compared with float32")
    parser.add_argument("--no-control", action="store_true", help="leave out the float32 + noise control runs")
    parser.add_argument("--output", help="also write the results as JSON here")
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    seeds = [int(seed) for seed in arguments.seeds.split(",")]
    print(machine_line(), flush=True)
    compared = arguments.precision
    precisions = (REFERENCE, compared)
    agreement = feature_agreement(seeds[0], compared)
    print(f"features of {agreement['texts']} demo texts (seed {seeds[0]}'s split order): cosine {compared} vs float32 "
          f"min {agreement['min_cosine']:.5f}, mean {agreement['mean_cosine']:.6f}; "
          f"largest difference {agreement['max_abs_difference']:.2e}, root mean square {agreement['rms_difference']:.2e}",
          flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="precision-quality-") as work_dir:
        for seed in seeds:
            scores = {}
            for precision in precisions:
                started = time.perf_counter()
                result = run(RunConfig(seed=seed, precision=precision, output_dir=str(Path(work_dir) / f"{precision}-{seed}")),
                             show_progress=False)
                scores[precision] = result.metrics["test"]["auroc"]
                scores[f"{precision}_probe"] = result.metrics["baseline"]["test"]["auroc"]
                scores[f"{precision}_seconds"] = round(time.perf_counter() - started, 1)
            if not arguments.no_control:
                control = run_with_noise(RunConfig(seed=seed, precision=REFERENCE,
                                                   output_dir=str(Path(work_dir) / f"control-{seed}")),
                                         agreement["rms_difference"])
                scores["control"] = control["test"]["auroc"]
                scores["control_difference"] = scores["control"] - scores[REFERENCE]
            rows.append({"seed": seed, **scores, "difference": scores[compared] - scores[REFERENCE],
                         "probe_difference": scores[f"{compared}_probe"] - scores[f"{REFERENCE}_probe"]})
            control_text = "" if arguments.no_control else (
                f"; control (float32 + noise) {scores['control']:.4f}, difference {scores['control_difference']:+.4f}")
            print(f"seed {seed}: test AUROC head float32 {scores[REFERENCE]:.4f}, {compared} {scores[compared]:.4f}, "
                  f"difference {rows[-1]['difference']:+.4f}; probe float32 {scores[f'{REFERENCE}_probe']:.4f}, "
                  f"{compared} {scores[f'{compared}_probe']:.4f}, difference {rows[-1]['probe_difference']:+.4f}"
                  + control_text, flush=True)
    summaries = [("head", "difference"), ("probe", "probe_difference")] + ([] if arguments.no_control else [
        ("control", "control_difference")])
    for name, key in summaries:
        differences = [row[key] for row in rows]
        print(f"{name} difference ({compared} - float32) over {len(rows)} seeds: mean {statistics.mean(differences):+.4f}, largest "
              f"|difference| {max(map(abs, differences)):.4f}"
              + (f", sd {statistics.stdev(differences):.4f}" if len(rows) > 1 else ""))
    if arguments.output:
        Path(arguments.output).write_text(json.dumps({"precision": compared, "agreement": agreement, "runs": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
