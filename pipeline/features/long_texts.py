"""What the encoder reads of a text longer than its `max_seq_length`, and how much of every text it read.

A text's WordPiece ids become one or more segments, each at most `max_seq_length - 2` ids (room is left
for [CLS] and [SEP]):

    truncate    the first ids only (what BERT tutorials do, and this pipeline did before it said so)
    head-tail   the first `head_tokens` ids and the last ones, one segment (Sun et al. 2019 found head and
                tail better than the head alone on long reviews)
    windows     consecutive windows of the ids, `window_overlap` ids shared by neighbours, at most
                `max_windows` of them; each window is encoded on its own and the text's vector is the mean
                of its windows' vectors weighted by their ids (extraction.py pools them)

Every runner (local, Beam), fine-tuning and `predict` cut texts here, so they agree row for row. No TensorFlow.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.base.config import LONG_TEXT_STRATEGIES
from pipeline.base.errors import UserError

SPECIAL_TOKENS_PER_SEGMENT = 2  # [CLS] and [SEP]
CUT_WARNING_SHARE = 0.1  # more than this share of texts cut: one warning line names the options
MORE_THAN_ANY_TEXT = 2**31 - 1


@dataclass(frozen=True)
class LongTexts:
    """How a text longer than the room is read; the numbers are settled (no None) by `settle`."""

    strategy: str = "truncate"
    head_tokens: int = 0  # head-tail: ids kept from the start; the rest of the room is filled from the end
    window_overlap: int = 0  # windows: ids shared by consecutive windows
    max_windows: int = 1  # windows: at most this many per text; ids past the last window are cut

    def record(self) -> dict[str, Any]:
        """The settings as config.json, metrics.json, the manifest and the export record them."""
        if self.strategy == "head-tail":
            return {"strategy": self.strategy, "head_tokens": self.head_tokens}
        if self.strategy == "windows":
            return {"strategy": self.strategy, "window_overlap": self.window_overlap, "max_windows": self.max_windows}
        return {"strategy": self.strategy}


TRUNCATE = LongTexts()


def room(max_seq_length: int) -> int:
    """Ids of text one segment holds."""
    return max_seq_length - SPECIAL_TOKENS_PER_SEGMENT


def settle(strategy: str, *, max_seq_length: int, head_tokens: int | None, window_overlap: int | None,
           max_windows: int | None) -> LongTexts:
    """The strategy with its numbers filled in from the defaults and checked against the room; UserError naming
    the option and the fix otherwise."""
    if strategy not in LONG_TEXT_STRATEGIES:
        raise UserError(f"--long-texts {strategy!r} is unknown; choose one of {', '.join(LONG_TEXT_STRATEGIES)}")
    text_room = room(max_seq_length)
    if strategy == "head-tail":
        head = default_head_tokens(max_seq_length) if head_tokens is None else head_tokens
        if not 0 <= head <= text_room:
            raise UserError(f"--head-tokens {head} does not fit --max-seq-length {max_seq_length} (room for "
                            f"{text_room} tokens of text after [CLS] and [SEP]); pass --head-tokens 0 to {text_room}")
        return LongTexts(strategy, head_tokens=head)
    if strategy == "windows":
        overlap = default_window_overlap(max_seq_length) if window_overlap is None else window_overlap
        if not 0 <= overlap < text_room:
            raise UserError(f"--window-overlap {overlap} does not fit windows of --max-seq-length {max_seq_length} "
                            f"({text_room} tokens of text each); pass --window-overlap 0 to {text_room - 1}")
        windows = DEFAULT_MAX_WINDOWS if max_windows is None else max_windows
        if windows < 1:
            raise UserError(f"--max-windows must be a positive whole number, got {windows}")
        return LongTexts(strategy, window_overlap=overlap, max_windows=windows)
    return TRUNCATE


DEFAULT_MAX_WINDOWS = 8  # 8 windows of 128 tokens (overlap 31) read 791 tokens: 97% of the long Amazon reviews


def default_head_tokens(max_seq_length: int) -> int:
    """A quarter of the room from the start, the rest from the end: Sun et al.'s 128 + 382 of 510."""
    return room(max_seq_length) // 4


def default_window_overlap(max_seq_length: int) -> int:
    """A quarter of a window shared with the next, so no sentence is seen only cut in two."""
    return room(max_seq_length) // 4


AUTO_LENGTHS = (64, 128, 256, 512)  # --max-seq-length auto chooses among these
AUTO_COVERAGE = 0.95  # the share of training texts `auto` reads whole


def auto_max_seq_length(lengths: Sequence[int], encoder_limit: int) -> tuple[int, str]:
    """(max_seq_length, why) for --max-seq-length auto: the smallest of AUTO_LENGTHS whose room holds
    AUTO_COVERAGE of the texts whole, at most the encoder's limit."""
    array = np.asarray(lengths, dtype=np.int64)
    candidates = [length for length in AUTO_LENGTHS if length <= encoder_limit] or [encoder_limit]
    for length in candidates:
        covered = float(np.mean(array <= room(length))) if len(array) else 1.0
        if covered >= AUTO_COVERAGE:
            return length, f"auto: {100 * covered:.1f}% of the training texts fit whole"
    length = candidates[-1]
    covered = float(np.mean(array <= room(length)))
    return length, f"auto: the encoder's limit; {100 * covered:.1f}% of the training texts fit whole"


def segments(ids: Sequence[int], max_seq_length: int, long_texts: LongTexts) -> list[Sequence[int]]:
    """The id sequences the encoder reads for one text: one, or several windows. A text that fits is read whole."""
    text_room = room(max_seq_length)
    if len(ids) <= text_room:
        return [ids]
    if long_texts.strategy == "head-tail":
        head = long_texts.head_tokens
        tail = text_room - head
        return [[*ids[:head], *ids[len(ids) - tail :]]]
    if long_texts.strategy == "windows":
        stride = text_room - long_texts.window_overlap
        starts = range(0, len(ids) - long_texts.window_overlap, stride)
        return [ids[start : start + text_room] for start in list(starts)[: long_texts.max_windows]]
    return [ids[:text_room]]


def tokens_read(length: int, max_seq_length: int, long_texts: LongTexts) -> int:
    """How many of a text's `length` ids some segment reads (each counted once)."""
    text_room = room(max_seq_length)
    if long_texts.strategy == "windows":
        stride = text_room - long_texts.window_overlap
        return min(length, (long_texts.max_windows - 1) * stride + text_room)
    return min(length, text_room)


def length_report(lengths: Sequence[int], max_seq_length: int, long_texts: LongTexts) -> dict[str, Any]:
    """How long the texts are in WordPiece ids and how many lost some: what the summary, metrics.json, the
    manifest and notebook 01 show. Percentiles are lengths that occur (nearest rank)."""
    array = np.asarray(lengths, dtype=np.int64)
    at_most = tokens_read(MORE_THAN_ANY_TEXT, max_seq_length, long_texts)
    cut = int(np.count_nonzero(array > at_most))
    percentiles = (np.percentile(array, [50, 95], method="nearest").astype(int).tolist() if len(array) else [0, 0])
    return {
        **long_texts.record(),
        "texts": int(len(array)),
        "texts_cut": cut,
        "cut_share": round(cut / len(array), 4) if len(array) else 0.0,
        "tokens_read_at_most": at_most,
        "token_length": {"median": percentiles[0], "p95": percentiles[1], "max": int(array.max()) if len(array) else 0},
    }


def stored_reading(lengths: Sequence[int], max_seq_length: int, long_texts: LongTexts) -> LongTexts:
    """The reading a cache entry of these texts is stored and keyed under. A strategy changes only texts longer
    than the room; when there are none, every strategy gives truncation's features, so the entry is truncation's
    and serves every strategy (the caches filled before `windows` became the default among them)."""
    text_room = room(max_seq_length)
    return long_texts if any(length > text_room for length in lengths) else TRUNCATE


def restated(report: dict[str, Any], max_seq_length: int, long_texts: LongTexts) -> dict[str, Any]:
    """A truncation report of texts none of which is longer than the room (texts_cut 0), said for `long_texts`:
    the lengths and counts are the same, only the settings and what the strategy could read differ."""
    return {**report, **long_texts.record(),
            "tokens_read_at_most": tokens_read(MORE_THAN_ANY_TEXT, max_seq_length, long_texts)}


def summary_line(report: dict[str, Any]) -> str:
    """One line for the run summary and `extract`: how many texts were cut, and how long texts are."""
    lengths = report["token_length"]
    cut = (f"{report['texts_cut']} of {report['texts']} texts ({100 * report['cut_share']:.1f}%) longer than "
           f"{report['tokens_read_at_most']} tokens were cut ({report['strategy']})")
    return (f"Long texts: {cut}; token lengths median {lengths['median']}, 95th percentile {lengths['p95']}, "
            f"max {lengths['max']}")


def cut_warning(report: dict[str, Any]) -> str | None:
    """The warning when more than a tenth of the texts lost ids, naming what reads more of them; else None."""
    if report["cut_share"] <= CUT_WARNING_SHARE:
        return None
    return (f"{100 * report['cut_share']:.0f}% of the texts are longer than the {report['tokens_read_at_most']} tokens "
            f"read and were cut ({report['strategy']}); --long-texts windows reads them whole in windows, --long-texts "
            f"head-tail keeps their start and end, and --max-seq-length (up to the encoder's limit) reads more of each")
