"""The Amazon preset with and without the tutorial's under-50-words filter, scored on the same reviews
(docs/quality.md, "The Amazon preset's filter").

The filter changes which reviews a model is trained and evaluated on, so each variant's own test score would
compare different test sets (short reviews are easier). Here every seed splits all reviews once; the tutorial
variant trains and early-stops on the short reviews of the training and validation splits (under 50 words,
max_seq_length 55, truncation, as the tutorial does), the other on all of them (max_seq_length 128, windows);
both are scored on the whole validation and test splits, and on their short and long parts.
The default is chosen on the whole validation split.

    .venv/bin/python benchmarks/amazon_filter.py --data ../shared/data/amazon-fine-food-sample.csv [--seeds 0,1,2]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from long_texts import amazon_table
from sklearn.metrics import roc_auc_score

from pipeline.api.text_classifier import load_run
from pipeline.base.config import RunConfig
from pipeline.data import tables
from pipeline.data.presets import word_count
from pipeline.runs.run import run

# name: (train on reviews under 50 words only, max_seq_length, --long-texts)
VARIANTS = {"under 50 words, 55 tokens, truncate (the tutorial)": (True, 55, "truncate"),
            "all reviews, 128 tokens, windows": (False, 128, "windows")}
TUTORIAL_MAX_WORDS = 50


def short_only(texts: tables.LabeledTexts) -> tables.LabeledTexts:
    keep = np.array([word_count(text) < TUTORIAL_MAX_WORDS for text in texts.texts])
    return tables.LabeledTexts([text for text, kept in zip(texts.texts, keep) if kept], texts.labels[keep],
                               texts.label_names)


def scores(labels: np.ndarray, probabilities: np.ndarray, texts: list[str]) -> dict[str, float]:
    short = np.array([word_count(text) < TUTORIAL_MAX_WORDS for text in texts])
    return {"all": float(roc_auc_score(labels, probabilities[:, 1])),
            "short": float(roc_auc_score(labels[short], probabilities[short, 1])),
            "long": float(roc_auc_score(labels[~short], probabilities[~short, 1]))}


def measure(table: Path, seeds: list[int], folder: Path) -> list[dict[str, Any]]:
    rows = []
    for seed in seeds:
        dataset = tables.load_labeled_texts(str(table), text_column="text", label_column="label", preset=None, seed=seed)
        splits = tables.split_labeled_texts(dataset, seed=seed)
        for name, (filtered, max_seq_length, long_texts) in VARIANTS.items():
            trained_on = (tables.Splits(short_only(splits.train), short_only(splits.validation), splits.test)
                          if filtered else splits)
            config = RunConfig(data=str(table), max_seq_length=max_seq_length, long_texts=long_texts, seed=seed,
                               cache_dir=str(folder / "cache"), output_dir=str(folder / f"{seed}-{len(rows)}"))
            result = run(config, show_progress=False, data=(dataset, trained_on))
            model = load_run(result.run_dir)
            row: dict[str, Any] = {"variant": name, "seed": seed, "trained_on": len(trained_on.train.texts)}
            for split_name, split in (("val", splits.validation), ("test", splits.test)):
                probabilities = model.predict_proba(split.texts)
                row.update({f"{split_name}_{part}": value
                            for part, value in scores(split.labels, probabilities, split.texts).items()})
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def summary_table(rows: list[dict[str, Any]]) -> str:
    """Mean ± sample sd over the seeds, one Markdown row per variant."""
    columns = ["val_all", "test_all", "test_short", "test_long"]
    lines = ["| variant | trained on | val AUROC (all) | test AUROC (all) | test, under 50 words | test, 50+ words |",
             "|---|---:|---:|---:|---:|---:|"]
    for name in VARIANTS:
        group = [row for row in rows if row["variant"] == name]
        cells = []
        for column in columns:
            values = np.array([row[column] for row in group])
            cells.append(f"{values.mean():.4f} ± {values.std(ddof=1) if len(values) > 1 else 0.0:.4f}")
        lines.append(f"| {name} | {int(np.mean([row['trained_on'] for row in group]))} | {' | '.join(cells)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the Amazon Fine Food sample (Reviews.csv columns)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--output", type=Path)
    arguments = parser.parse_args()
    seeds = [int(seed) for seed in arguments.seeds.split(",")]
    with tempfile.TemporaryDirectory() as scratch:
        rows = measure(amazon_table(arguments.data, Path(scratch), under_50_words=False), seeds, Path(scratch))
    if arguments.output:
        arguments.output.write_text(json.dumps({"machine": platform.processor() or platform.machine(), "seeds": seeds,
                                                "rows": rows}, indent=1))
    print(summary_table(rows))


if __name__ == "__main__":
    main()
