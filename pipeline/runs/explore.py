"""Notebook support: what the notebooks compute beyond a run, as plain functions over data and run folders.

The notebooks use the public API (`from pipeline import FeatureExtractor, TextClassifier`) and this module (with
`pipeline.evaluation.plots` for pictures) and only call them, so everything they compute is tested. Only the API's
`FeatureExtractor.count_tokens` imports it (for `token_lengths`); the commands do not.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pipeline.base.config import EMBEDDED_ENCODER, RunConfig
from pipeline.runs.run_folder import LOGS_DIR, TRAINING_LOG_FILE
from tokenization.packing import SPECIAL_TOKENS_SINGLE

if TYPE_CHECKING:
    from pipeline.data.tables import Splits
    from pipeline.runs.prepare import Prepared
    from tokenization import FullTokenizer

# Environment variables the notebooks read, so a test can point them at a tiny data set and encoder.
NOTEBOOK_DATA = "PIPELINE_NOTEBOOK_DATA"
NOTEBOOK_ENCODER = "PIPELINE_NOTEBOOK_ENCODER"
NOTEBOOK_MAX_SEQ_LENGTH = "PIPELINE_NOTEBOOK_MAX_SEQ_LENGTH"
NOTEBOOK_EPOCHS = "PIPELINE_NOTEBOOK_EPOCHS"


def notebook_config(environ: Mapping[str, str] | None = None) -> RunConfig:
    """The demo's RunConfig, or the data, encoder, length and epochs the PIPELINE_NOTEBOOK_* variables name."""
    environ = os.environ if environ is None else environ
    changes: dict[str, Any] = {}
    if environ.get(NOTEBOOK_DATA):
        changes["data"] = environ[NOTEBOOK_DATA]
    if environ.get(NOTEBOOK_MAX_SEQ_LENGTH):
        changes["max_seq_length"] = int(environ[NOTEBOOK_MAX_SEQ_LENGTH])
    if environ.get(NOTEBOOK_EPOCHS):
        changes["epochs"] = int(environ[NOTEBOOK_EPOCHS])
    return RunConfig(encoder=environ.get(NOTEBOOK_ENCODER) or EMBEDDED_ENCODER, **changes)


def notebook_table(environ: Mapping[str, str] | None = None) -> pd.DataFrame:
    """The DataFrame the notebooks start from, as a user's own would be: `text`, and `label` as a categorical
    in the classes' order. The embedded demo read by its preset (Rotten Tomatoes: rotten, fresh), or the
    table PIPELINE_NOTEBOOK_DATA names (columns text and label)."""
    from pipeline.data.tables import load_labeled_texts

    config = notebook_config(environ)
    dataset = load_labeled_texts(config.data, seed=config.seed)
    names = list(dataset.label_names)
    return pd.DataFrame({"text": dataset.texts,
                         "label": pd.Categorical.from_codes(dataset.labels, categories=names)})


def notebook_feature_options(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """FeatureExtractor's and TextClassifier's encoder and max_seq_length in the notebooks: the defaults, or what
    PIPELINE_NOTEBOOK_ENCODER and PIPELINE_NOTEBOOK_MAX_SEQ_LENGTH name."""
    config = notebook_config(environ)
    options: dict[str, Any] = {"encoder": config.encoder}
    if config.max_seq_length:
        options["max_seq_length"] = config.max_seq_length
    return options


def notebook_head_options(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """TextClassifier's head options in the notebooks: the defaults, or the epochs PIPELINE_NOTEBOOK_EPOCHS names."""
    config = notebook_config(environ)
    return {"epochs": config.epochs} if config.epochs else {}


def notebook_run_dir(name: str) -> Path:
    """A new folder under artifacts/runs/, named as the command line names its runs (<time>-<name>), for a
    notebook's TextClassifier to write its run folder into (TensorBoard on artifacts/runs shows it beside the rest)."""
    from pipeline.base.config import artifacts_dir
    from pipeline.runs.run_folder import choose_run_dir

    return choose_run_dir(None, runs_dir=artifacts_dir() / "runs", name=name)


# ============================================================================ data

def all_texts_and_labels(splits: Splits) -> tuple[list[str], np.ndarray]:
    """Every text and label, in the order pipeline.runs.run.extract returns features: train, validation, test."""
    parts = [splits.train, splits.validation, splits.test]
    return [text for part in parts for text in part.texts], np.concatenate([part.labels for part in parts])


def class_balance(splits: Splits, label_names: list[str]) -> pd.DataFrame:
    """Texts per class in each split, the total, and each class's share of the total."""
    counts = {
        name: np.bincount(getattr(splits, name).labels, minlength=len(label_names))
        for name in ("train", "validation", "test")
    }
    table = pd.DataFrame(counts, index=pd.Index(label_names, name="label"))
    table["total"] = table.sum(axis=1)
    table["share"] = table["total"] / table["total"].sum()
    return table


def token_lengths(texts: list[str], tokenizer: FullTokenizer) -> np.ndarray:
    """WordPiece tokens per text including [CLS] and [SEP], before any truncation."""
    return np.array([len(tokenizer.tokenize(text)) + SPECIAL_TOKENS_SINGLE for text in texts], dtype=np.int64)


def length_summary(lengths: np.ndarray, max_seq_length: int) -> dict[str, Any]:
    """How long texts are in tokens, and which share of them max_seq_length cuts short."""
    lengths = np.asarray(lengths)
    return {
        "texts": int(len(lengths)),
        "mean": float(lengths.mean()),
        "median": float(np.median(lengths)),
        "p95": float(np.percentile(lengths, 95)),
        "max": int(lengths.max()),
        "max_seq_length": int(max_seq_length),
        "truncated": int((lengths > max_seq_length).sum()),
        "truncated_share": float((lengths > max_seq_length).mean()),
    }


def long_text_line(texts: list[str], extractor: Any) -> str:
    """The run summary's long-text line for these texts as a fitted FeatureExtractor reads them: how many are cut
    and how long they are (the same figures `run`, `extract` and metrics.json give for the same unique texts)."""
    from pipeline.features.long_texts import length_report, summary_line

    settings = extractor.settings_
    lengths = [len(settings.encoder.tokenizer.encode(text)) for text in dict.fromkeys(texts)]
    return summary_line(length_report(lengths, settings.max_seq_length, settings.long_texts))


def examples_per_class(texts: list[str], labels: np.ndarray, label_names: list[str], *,
                       per_class: int = 3, seed: int = 0) -> pd.DataFrame:
    """A seeded random handful of texts of each class (fewer where a class has fewer)."""
    rng = np.random.default_rng(seed)
    rows = []
    for class_id, name in enumerate(label_names):
        members = np.flatnonzero(np.asarray(labels) == class_id)
        for index in sorted(rng.permutation(members)[:per_class]):
            rows.append({"label": name, "text": texts[index]})
    return pd.DataFrame(rows, columns=["label", "text"])


# ============================================================================ a run folder

def load_run_splits(config_record: Mapping[str, Any]) -> Splits:
    """The run's train/validation/test texts, read and split again exactly as the run did (same data, seed)."""
    from pipeline.data import tables as data_module

    if config_record.get("data") == data_module.IN_MEMORY_DATA:
        raise ValueError("this run was fitted on texts held in memory (pipeline.TextClassifier), which its run folder "
                         "does not keep; use the texts you fitted it on")

    from pipeline.base.config import DATA_STAGE
    from pipeline.runs.prepare import read_and_split

    data_options = {declared.name: config_record[declared.name] for declared in dataclasses.fields(RunConfig)
                    if declared.metadata["stage"] == DATA_STAGE and declared.name in config_record}
    _, splits = read_and_split(RunConfig(**data_options, seed=config_record["seed"]))
    expected = config_record.get("split_sizes")
    found = {name: len(getattr(splits, name).texts) for name in ("train", "validation", "test")}
    if expected and expected != found:
        raise ValueError(f"the data changed since the run: split sizes {found}, the run had {expected}")
    return splits


def training_curves(run_dir: str | os.PathLike[str]) -> pd.DataFrame:
    """Per-epoch values as in training_log.csv (loss, val_loss, auroc, val_auroc, lr, ...), read from the
    TensorBoard logs, or from training_log.csv when the run has no logs."""
    run_dir = Path(run_dir)
    columns: dict[str, dict[int, float]] = {}
    for split, prefix in (("train", ""), ("validation", "val_")):
        for tag, values in _epoch_scalars(run_dir / LOGS_DIR / split).items():
            columns[prefix + tag.removeprefix("epoch_")] = values
    if not columns:
        return pd.read_csv(run_dir / TRAINING_LOG_FILE).set_index("epoch")
    table = pd.DataFrame(columns).sort_index()
    table.index.name = "epoch"
    return table[sorted(table.columns)]


def _epoch_scalars(folder: Path) -> dict[str, dict[int, float]]:
    """{tag: {step: value}} of the `epoch_*` scalars in one TensorBoard run folder."""
    if not folder.is_dir() or not list(folder.glob("events.out.tfevents.*")):
        return {}
    from tensorboard.backend.event_processing import event_accumulator
    from tensorboard.util import tensor_util

    accumulator = event_accumulator.EventAccumulator(str(folder), size_guidance={event_accumulator.TENSORS: 0})
    accumulator.Reload()
    result: dict[str, dict[int, float]] = {}
    for tag in accumulator.Tags()["tensors"]:
        if tag.startswith("epoch_"):
            result[tag] = {
                event.step: float(tensor_util.make_ndarray(event.tensor_proto)) for event in accumulator.Tensors(tag)
            }
    return result


# ============================================================================ evaluation

def head_against_baseline(metrics: Mapping[str, Any]) -> pd.DataFrame:
    """Test metrics of the head and of the logistic-regression baseline, side by side."""
    keys = ["accuracy", "auroc", "pr_auc", "f1"]
    return pd.DataFrame(
        {"head": [metrics["test"][key] for key in keys], "baseline": [metrics["baseline"]["test"][key] for key in keys]},
        index=pd.Index(keys, name="metric"),
    )


def compare_on_test(models: Mapping[str, Any], texts: Any, labels: Any) -> pd.DataFrame:
    """Test metrics (accuracy, AUROC, PR-AUC, F1) of fitted classifiers side by side, each scored the way a run
    scores its head. `labels` is a categorical (the notebooks' tables); each model's probability columns are
    matched to its categories by name, whatever order the model's `classes_` has."""
    from pipeline.evaluation.metrics import classification_metrics

    labels = pd.Series(labels)
    names = [str(name) for name in labels.cat.categories]
    codes = labels.cat.codes.to_numpy()
    keys = ["accuracy", "auroc", "pr_auc", "f1"]
    columns = {}
    for model_name, model in models.items():
        probabilities = np.asarray(model.predict_proba(texts))
        column_of = {str(name): index for index, name in enumerate(model.classes_)}
        aligned = probabilities[:, [column_of[name] for name in names]]
        metrics = classification_metrics(codes, aligned, len(names))
        columns[model_name] = [metrics[key] for key in keys]
    return pd.DataFrame(columns, index=pd.Index(keys, name="metric"))


def most_confidently_wrong(texts: list[str], labels: np.ndarray, probabilities: np.ndarray, label_names: list[str], *,
                           count: int = 10) -> pd.DataFrame:
    """The misclassified texts with the highest probability on the wrong class, most confident first."""
    labels, probabilities = np.asarray(labels), np.asarray(probabilities)
    predictions = probabilities.argmax(axis=1)
    confidence = probabilities.max(axis=1)
    wrong = np.flatnonzero(predictions != labels)
    order = wrong[np.argsort(-confidence[wrong], kind="stable")][:count]
    return pd.DataFrame({
        "text": [texts[i] for i in order],
        "label": [label_names[labels[i]] for i in order],
        "predicted": [label_names[predictions[i]] for i in order],
        "confidence": confidence[order],
    })


# ============================================================================ feature space

def project_2d(features: np.ndarray, *, method: str = "pca", seed: int = 0) -> np.ndarray:
    """[N, 2] coordinates: PCA, or t-SNE (after PCA to 50 dimensions, the usual speed-up)."""
    from sklearn.decomposition import PCA

    features = np.asarray(features, dtype=np.float64)
    if method == "pca":
        return PCA(n_components=2, random_state=seed).fit_transform(features)
    if method == "tsne":
        from sklearn.manifold import TSNE
        from threadpoolctl import threadpool_limits

        reduced = PCA(n_components=min(50, *features.shape), random_state=seed).fit_transform(features)
        perplexity = float(min(30, max(2, (len(features) - 1) // 3)))
        # One OpenMP thread: on a machine whose cores are busy, t-SNE's spinning threads made it 50x slower.
        with threadpool_limits(limits=1, user_api="openmp"):
            return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(reduced)
    raise ValueError(f"method must be 'pca' or 'tsne', got {method!r}")


def encode_query(text: str, prepared: Prepared) -> np.ndarray:
    """One new text's features, made exactly as the cached ones (same encoder, pooling, layers, max_seq_length)."""
    from pipeline.features.extraction import encode_texts

    return encode_texts([text], prepared.encoder, pooling=prepared.pooling, layers=prepared.layers,
                        combine=prepared.combine, max_seq_length=prepared.max_seq_length,
                        long_texts=prepared.long_texts)[0]


def nearest_neighbours(query_vector: np.ndarray, features: np.ndarray, texts: list[str], labels: np.ndarray,
                       label_names: list[str], *, count: int = 5) -> pd.DataFrame:
    """The `count` texts whose features have the highest cosine similarity to `query_vector`."""
    features = np.asarray(features, dtype=np.float64)
    query = np.asarray(query_vector, dtype=np.float64).reshape(-1)
    norms = np.linalg.norm(features, axis=1) * np.linalg.norm(query)
    similarity = features @ query / np.maximum(norms, 1e-12)
    order = np.argsort(-similarity, kind="stable")[:count]
    return pd.DataFrame({
        "text": [texts[i] for i in order],
        "label": [label_names[int(labels[i])] for i in order],
        "cosine_similarity": similarity[order],
    })


