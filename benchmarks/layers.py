"""Does pooling every layer slow extraction? Times `extract_features` on demo snippets with the last layer
alone and with all layers side by side, alternating, into fresh caches; prints each run and the ratio of
the fastest runs (docs/benchmarks.md, "Every layer costs no extraction time").

    .venv/bin/python benchmarks/layers.py [--texts 3000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from pipeline.base.config import RunConfig
from pipeline.features.extraction import extract_features
from pipeline.runs.run import prepare


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=3)
    arguments = parser.parse_args()
    prepared = prepare(RunConfig())
    texts = list(dict.fromkeys(prepared.splits.train.texts))[: arguments.texts]
    every_layer = tuple(range(-prepared.encoder.available_layers, 0))
    seconds: dict[str, list[float]] = {"last": [], "all": []}
    for _ in range(arguments.repeats):
        for name, layers in (("last", (-1,)), ("all", every_layer)):
            with tempfile.TemporaryDirectory() as folder:
                started = time.perf_counter()
                extract_features(texts, prepared.encoder, pooling="mean", layers=layers, combine="concat",
                                 max_seq_length=128, cache_dir=Path(folder), show_progress=False)
                seconds[name].append(time.perf_counter() - started)
    for name, values in seconds.items():
        print(f"{name}: " + " ".join(f"{value:.2f}" for value in values)
              + f" s; best {min(values):.2f} s ({len(texts) / min(values):.0f} texts/s)")
    print(f"all / last (best runs): {min(seconds['all']) / min(seconds['last']):.3f}")


if __name__ == "__main__":
    main()
