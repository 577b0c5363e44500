"""Does bfloat16 change what the pipeline learns? The demo in float32 and bfloat16, side by side (docs/quality.md).

1. Every demo text's features in both precisions (the run's defaults: every layer, mean pooling): the
   cosine similarity of each text's bfloat16 vector with its float32 one, minimum and mean (bound: 0.999).
2. `run` with the defaults at each split seed, once per precision: test AUROC of the head and of the
   logistic-regression probe beside it, and their differences (bound: within 0.003 of float32). The
   probe is convex and fitted deterministically, so its difference is the features' own; the mlp head's
   also holds how differently a small change of its inputs steers its training (dropout, early stopping).
3. The control: float32 features plus Gaussian noise as large as bfloat16's differences (their root mean
   square), through the same `run`: how far the head's test AUROC moves for any change of that size.

On a CPU without bfloat16 units the bfloat16 products are emulated: slower, but the same rounding as on
AMX or AVX512_BF16 (the products accumulate in float32 either way), so the quality figures hold for both.

    .venv/bin/python benchmarks/precision_quality.py [--seeds 42,0,1,2,3,4] [--output results.json]
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

import pipeline.commands.run as run_module
from pipeline.base.config import RunConfig
from pipeline.commands.run import Prepared, extract, prepare, run
from pipeline.features.extraction import FeatureResult

PRECISIONS = ("float32", "bfloat16")


def feature_agreement(seed: int) -> dict[str, float]:
    features = {}
    for precision in PRECISIONS:
        prepared = prepare(RunConfig(seed=seed, precision=precision))
        features[precision] = extract(prepared, show_progress=False).features
    similarity = cosines(features["float32"], features["bfloat16"])
    difference = features["float32"] - features["bfloat16"]
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
    parser.add_argument("--output", help="also write the results as JSON here")
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    seeds = [int(seed) for seed in arguments.seeds.split(",")]
    print(machine_line(), flush=True)
    agreement = feature_agreement(seeds[0])
    print(f"features of {agreement['texts']} demo texts (seed {seeds[0]}'s split order): cosine bfloat16 vs float32 "
          f"min {agreement['min_cosine']:.5f}, mean {agreement['mean_cosine']:.6f}; "
          f"largest difference {agreement['max_abs_difference']:.2e}, root mean square {agreement['rms_difference']:.2e}",
          flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="precision-quality-") as work_dir:
        for seed in seeds:
            scores = {}
            for precision in PRECISIONS:
                started = time.perf_counter()
                result = run(RunConfig(seed=seed, precision=precision, output_dir=str(Path(work_dir) / f"{precision}-{seed}")),
                             show_progress=False)
                scores[precision] = result.metrics["test"]["auroc"]
                scores[f"{precision}_probe"] = result.metrics["baseline"]["test"]["auroc"]
                scores[f"{precision}_seconds"] = round(time.perf_counter() - started, 1)
            control = run_with_noise(RunConfig(seed=seed, precision="float32",
                                               output_dir=str(Path(work_dir) / f"control-{seed}")),
                                     agreement["rms_difference"])
            scores["control"] = control["test"]["auroc"]
            rows.append({"seed": seed, **scores, "difference": scores["bfloat16"] - scores["float32"],
                         "probe_difference": scores["bfloat16_probe"] - scores["float32_probe"],
                         "control_difference": scores["control"] - scores["float32"]})
            print(f"seed {seed}: test AUROC head float32 {scores['float32']:.4f}, bfloat16 {scores['bfloat16']:.4f}, "
                  f"difference {rows[-1]['difference']:+.4f}; probe float32 {scores['float32_probe']:.4f}, "
                  f"bfloat16 {scores['bfloat16_probe']:.4f}, difference {rows[-1]['probe_difference']:+.4f}; control (float32 + "
                  f"noise) {scores['control']:.4f}, difference {rows[-1]['control_difference']:+.4f}", flush=True)
    for name, key in (("head", "difference"), ("probe", "probe_difference"), ("control", "control_difference")):
        differences = [row[key] for row in rows]
        print(f"{name} difference over {len(rows)} seeds: mean {statistics.mean(differences):+.4f}, largest "
              f"|difference| {max(map(abs, differences)):.4f}"
              + (f", sd {statistics.stdev(differences):.4f}" if len(rows) > 1 else ""))
    if arguments.output:
        Path(arguments.output).write_text(json.dumps({"agreement": agreement, "runs": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
