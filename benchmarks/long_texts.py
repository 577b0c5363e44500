"""Long texts: what each `--long-texts` strategy costs and gives on real long reviews (docs/quality.md, "Long texts",
and docs/benchmarks.md, "Long texts").

Quality: the Amazon Fine Food sample (score 3 dropped, 1-2 negative, 4-5 positive, HTML removed as the preset
does), every review or only those under 50 words (the tutorial's filter), through `run` with the default head,
at several split seeds; val and test AUROC per strategy. Defaults are chosen on validation AUROC.
Documents built from the demo (--demo-documents N): a review snippet of the embedded Rotten Tomatoes corpus,
which carries the label, joined with two of the corpus's plot summaries, which carry none; the snippet is placed
first, between the summaries or last (a third of the documents each). Truncation reads the snippet of the first
third only; a strategy that reads whole documents can find it anywhere.
Speed: extraction of the long reviews alone (more than 126 WordPiece tokens) into fresh caches, windows of 128
tokens against reading the same texts whole at 512, timed in the same process.

    .venv/bin/python benchmarks/long_texts.py --data ../shared/data/amazon-fine-food-sample.csv [--seeds 0,1,2]
        [--part quality|speed|both] [--output results.json]
    .venv/bin/python benchmarks/long_texts.py --demo-documents 4000 --part quality [--seeds 0,1,2]
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
import pandas as pd

from pipeline.base.config import RunConfig
from pipeline.data.presets import strip_html, word_count
from pipeline.features.extraction import extract_features
from pipeline.features.long_texts import LongTexts
from pipeline.runs.run import prepare, run

# name: (max_seq_length, --long-texts and its options)
READINGS: dict[str, tuple[int | str, dict[str, Any]]] = {
    "truncate 128": (128, {"long_texts": "truncate"}),
    "head-tail 128": (128, {"long_texts": "head-tail"}),
    "head-tail 128, head 63": (128, {"long_texts": "head-tail", "head_tokens": 63}),
    "windows 128": (128, {"long_texts": "windows"}),
    "windows 128, overlap 0": (128, {"long_texts": "windows", "window_overlap": 0}),
    "truncate 512": (512, {"long_texts": "truncate"}),
    "windows auto": ("auto", {"long_texts": "windows"}),
}


def amazon_table(source: Path, folder: Path, *, under_50_words: bool) -> Path:
    """The preset's labelling and cleaning of the sample, with or without its under-50-words filter, as a CSV."""
    frame = pd.read_csv(source)
    frame = frame[frame["Score"] != 3]
    texts = [strip_html(str(text)) for text in frame["Text"]]
    table = pd.DataFrame({"text": texts, "label": np.where(frame["Score"] >= 4, "positive", "negative")})
    table = table[[0 < word_count(text) for text in texts]]
    if under_50_words:
        table = table[[word_count(text) < 50 for text in table["text"]]]
    path = folder / ("amazon-under-50-words.csv" if under_50_words else "amazon-all.csv")
    table.to_csv(path, index=False)
    return path


PLACES = ("start", "middle", "end")


def demo_documents(folder: Path, count: int, seed: int = 0) -> Path:
    """`count` documents (half fresh, half rotten) as described in the module docstring, as a CSV with a `place`
    column saying where the label-bearing snippet is."""
    from pipeline.data.presets import embedded_demo_path

    corpus = pd.read_csv(embedded_demo_path())
    plots = [str(text) for text in corpus.loc[corpus["category"] == "plot", "text"].dropna()]
    generator = np.random.default_rng(seed)
    rows = []
    for label in ("fresh", "rotten"):
        snippets = corpus.loc[corpus["category"] == label, "text"].dropna().astype(str).tolist()
        for number, index in enumerate(generator.choice(len(snippets), size=count // 2, replace=False)):
            first, second = (plots[choice] for choice in generator.choice(len(plots), size=2, replace=False))
            place = PLACES[number % len(PLACES)]
            parts = {"start": [snippets[index], first, second], "middle": [first, snippets[index], second],
                     "end": [first, second, snippets[index]]}[place]
            rows.append({"text": " ".join(" ".join(part.split()) for part in parts), "label": label, "place": place})
    path = folder / "demo-documents.csv"
    pd.DataFrame(rows).sample(frac=1.0, random_state=seed).to_csv(path, index=False)
    return path


def quality(table: Path, seeds: list[int], readings: list[str], cache_dir: Path, runs_dir: Path) -> list[dict[str, Any]]:
    rows = []
    for name in readings:
        max_seq_length, options = READINGS[name]
        for seed in seeds:
            config = RunConfig(data=str(table), max_seq_length=max_seq_length, cache_dir=str(cache_dir), seed=seed,
                               output_dir=str(runs_dir / f"{table.stem}-{name.replace(' ', '-')}-{seed}"), **options)
            result = run(config, show_progress=False)
            metrics = result.metrics
            features = metrics["features"]
            rows.append({"table": table.stem, "reading": name, "seed": seed, "val_auroc": metrics["val"]["auroc"],
                         "test_auroc": metrics["test"]["auroc"], "test_accuracy": metrics["test"]["accuracy"],
                         "probe_test_auroc": metrics["baseline"]["test"]["auroc"],
                         "texts_cut": features["long_texts"]["texts_cut"], "texts": features["texts"],
                         "extraction_seconds": None if features["cache_hit"] else features["seconds"]})
            rows[-1].update(test_auroc_by_place(table, config, result.run_dir))
            print(json.dumps(rows[-1]), flush=True)
    return rows


def test_auroc_by_place(table: Path, config: RunConfig, run_dir: Path) -> dict[str, float]:
    """Test AUROC of the documents whose label-bearing snippet is at each place (built documents only)."""
    frame = pd.read_csv(table)
    if "place" not in frame:
        return {}
    from sklearn.metrics import roc_auc_score

    from pipeline.runs.run import read_and_split
    from pipeline.runs.run_folder import read_run_folder

    place_of = dict(zip(frame["text"], frame["place"]))
    test_texts = read_and_split(config)[1].test.texts  # the run's own test split, in its order
    labels, probabilities = read_run_folder(run_dir).test_predictions()
    places = np.array([place_of[text] for text in test_texts])
    return {f"test_auroc_{place}": float(roc_auc_score(labels[places == place], probabilities[places == place, 1]))
            for place in PLACES}


def speed(table: Path, cache_root: Path, repeats: int, limit: int | None = None) -> dict[str, Any]:
    """texts/s of the long texts only, each reading into a fresh cache, `repeats` rounds alternating the two."""
    prepared = prepare(RunConfig(data=str(table), max_seq_length=512))
    texts = prepared.splits.train.texts + prepared.splits.validation.texts + prepared.splits.test.texts
    long = [text for text in dict.fromkeys(texts) if len(prepared.encoder.tokenizer.encode(text)) > 126][:limit]
    ways = {"windows 128": (128, LongTexts("windows", window_overlap=31, max_windows=8)),
            "truncate 512": (512, LongTexts("truncate"))}
    seconds: dict[str, list[float]] = {name: [] for name in ways}
    for round_number in range(repeats):
        for name, (max_seq_length, reading) in ways.items():
            started = time.perf_counter()
            result = extract_features(long, prepared.encoder, pooling=prepared.pooling, layers=prepared.layers,
                                      max_seq_length=max_seq_length, long_texts=reading, show_progress=False,
                                      cache_dir=cache_root / f"{name.replace(' ', '-')}-{round_number}")
            assert not result.cache_hit
            seconds[name].append(time.perf_counter() - started)
            print(f"round {round_number + 1}: {name}: {len(long)} texts in {seconds[name][-1]:.1f} s", flush=True)
    best = {name: min(values) for name, values in seconds.items()}
    return {"long_texts": len(long), "seconds": seconds, "texts_per_second": {name: len(long) / value for name, value in best.items()},
            "windows_speedup_over_512": best["truncate 512"] / best["windows 128"]}


def summary_table(rows: list[dict[str, Any]]) -> str:
    """Mean ± sample sd over the seeds, one Markdown row per (table, reading), in the order measured."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["table"], row["reading"]), []).append(row)
    lines = ["| table | reading | texts cut | val AUROC | test AUROC | test accuracy | probe test AUROC | extraction s |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    def cell(group: list[dict[str, Any]], name: str) -> str:
        values = np.array([row[name] for row in group], dtype=float)
        spread = values.std(ddof=1) if len(values) > 1 else 0.0
        return f"{values.mean():.4f} ± {spread:.4f}"

    for (table, reading), group in groups.items():
        seconds = [row["extraction_seconds"] for row in group if row["extraction_seconds"] is not None]
        lines.append(f"| {table} | {reading} | {group[0]['texts_cut']} of {group[0]['texts']} | {cell(group, 'val_auroc')} | "
                     f"{cell(group, 'test_auroc')} | {cell(group, 'test_accuracy')} | {cell(group, 'probe_test_auroc')} | "
                     f"{seconds[0] if seconds else 0:.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", type=Path, help="the Amazon Fine Food sample (Reviews.csv columns)")
    source.add_argument("--demo-documents", type=int, metavar="N", help="N documents built from the embedded demo")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--readings", default=";".join(READINGS), help="semicolon list of: " + "; ".join(READINGS))
    parser.add_argument("--part", choices=("quality", "speed", "both"), default="both")
    parser.add_argument("--filtered", action="store_true", help="also the under-50-words table, truncate 128 only")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--limit", type=int, help="speed: time only the first N long texts")
    parser.add_argument("--output", type=Path)
    parser.add_argument("--summarize", type=Path, help="print the table of an earlier --output file and stop")
    arguments = parser.parse_args()
    if arguments.summarize:
        print(summary_table(json.loads(arguments.summarize.read_text())["quality"]))
        return
    seeds = [int(seed) for seed in arguments.seeds.split(",")]
    readings = [name.strip() for name in arguments.readings.split(";")]
    results: dict[str, Any] = {"machine": platform.processor() or platform.machine(), "seeds": seeds}
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        everything = (demo_documents(folder, arguments.demo_documents) if arguments.demo_documents
                      else amazon_table(arguments.data, folder, under_50_words=False))
        if arguments.part in ("quality", "both"):
            results["quality"] = quality(everything, seeds, readings, folder / "cache", folder / "runs")
            if arguments.filtered:
                short = amazon_table(arguments.data, folder, under_50_words=True)
                results["quality"] += quality(short, seeds, ["truncate 128"], folder / "cache", folder / "runs")
        if arguments.part in ("speed", "both"):
            results["speed"] = speed(everything, folder / "speed", arguments.repeats, arguments.limit)
            print(json.dumps(results["speed"]), flush=True)
    if arguments.output:
        arguments.output.write_text(json.dumps(results, indent=1))
    if "quality" in results:
        print(summary_table(results["quality"]))


if __name__ == "__main__":
    main()
