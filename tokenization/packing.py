"""Packing token ids into BERT encoder inputs: [CLS] a [SEP] (b [SEP]), mask and segment ids."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

import numpy as np
import numpy.typing as npt

# Special tokens added around one segment ([CLS] a [SEP]) and around a pair ([CLS] a [SEP] b [SEP]).
SPECIAL_TOKENS_SINGLE = 2
SPECIAL_TOKENS_PAIR = 3

# Every NumPy integer scalar type (intc, intp, longlong, ... are aliases of these). Spelled out
# because a bare `np.integer` means `np.integer[Any]`.
NumpyInteger: TypeAlias = np.int8 | np.int16 | np.int32 | np.int64 | np.uint8 | np.uint16 | np.uint32 | np.uint64
# One segment's token ids: a list, tuple or array('i') of ints, or a 1-D NumPy integer array.
TokenIds: TypeAlias = Sequence[int] | npt.NDArray[NumpyInteger]
# A truncated segment: a new list of the input's own items (NumPy integers when it was an array).
IdList: TypeAlias = list[int] | list[NumpyInteger]
# Lengths and budgets may be Python or NumPy integers (bool is refused at run time).
WholeNumber: TypeAlias = int | NumpyInteger


def _check_whole_number(name: str, value: WholeNumber, minimum: int) -> None:
    # bool is an int subclass, but max_seq_length=True is certainly a mistake.
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")


def truncate_pair(first: TokenIds, second: TokenIds, max_tokens: WholeNumber) -> tuple[IdList, IdList]:
    """Shortens two id sequences so that together they hold at most `max_tokens` ids.

    Longest first, one id at a time from the end of the longer sequence (the second on a tie),
    as google-research/bert does: a short segment keeps all its ids and the long one gives way.
    Returns new lists; the inputs are not changed.
    """
    _check_whole_number("max_tokens", max_tokens, 0)
    first_length, second_length = len(first), len(second)
    if first_length + second_length <= max_tokens:
        return list(first), list(second)
    # Closed form of the one-at-a-time loop: the first keeps at least half (rounded up) of the
    # budget unless it is shorter; the second takes what is left.
    first_kept = min(first_length, max(max_tokens - second_length, (max_tokens + 1) // 2))
    second_kept = min(second_length, max_tokens - first_kept)
    return list(first[:first_kept]), list(second[:second_kept])


def _check_batch(name: str, segments: Sequence[TokenIds]) -> None:
    """Refuses a single id list passed where a batch (list of id lists) is expected."""
    if isinstance(segments, (str, bytes)):
        raise ValueError(f"{name} must be a list of token-id lists, got a string; tokenize it first")
    for row in segments:
        if isinstance(row, (int, np.integer, str, bytes)):
            raise ValueError(
                f"{name} must be a batch: a list of token-id lists "
                "(got a flat list; wrap one text's ids as [ids])"
            )


def pack_inputs(
    first_segments: Sequence[TokenIds],
    second_segments: Sequence[TokenIds] | None = None,
    *,
    max_seq_length: WholeNumber,
    cls_id: int,
    sep_id: int,
    pad_id: int = 0,
    pad_to_max_length: bool = False,
) -> dict[str, npt.NDArray[np.int32]]:
    """Packs a batch of token-id lists into the three int32 arrays a BERT encoder takes.

    Each row is `[CLS] a [SEP]`, or `[CLS] a [SEP] b [SEP]` when `second_segments` is given,
    truncated to `max_seq_length` (longest segment first for pairs) and padded with `pad_id`.
    Returns `input_word_ids`, `input_mask` (1 on real tokens) and `input_type_ids` (0 for the
    first segment and its specials, 1 for the second segment and its closing [SEP]), each of
    shape [batch, length], where length is the longest packed row, or `max_seq_length` when
    `pad_to_max_length` is set.
    """
    special_tokens = SPECIAL_TOKENS_SINGLE if second_segments is None else SPECIAL_TOKENS_PAIR
    _check_whole_number("max_seq_length", max_seq_length, special_tokens + 1)
    _check_batch("first_segments", first_segments)
    first_segments = list(first_segments)
    if second_segments is not None:
        _check_batch("second_segments", second_segments)
        second_segments = list(second_segments)
        if len(second_segments) != len(first_segments):
            raise ValueError(
                f"first_segments and second_segments must have the same batch size, "
                f"got {len(first_segments)} and {len(second_segments)}"
            )

    budget = max_seq_length - special_tokens
    packed_rows: list[tuple[list[int | NumpyInteger], int]] = []  # (ids, length of the first part: [CLS] a [SEP])
    first: TokenIds | IdList  # a row as given, then truncated
    for index, first in enumerate(first_segments):
        if second_segments is None:
            first = list(first[:budget])
            packed_rows.append(([cls_id, *first, sep_id], len(first) + SPECIAL_TOKENS_SINGLE))
        else:
            first, second = truncate_pair(first, second_segments[index], budget)
            packed_rows.append(
                ([cls_id, *first, sep_id, *second, sep_id], len(first) + SPECIAL_TOKENS_SINGLE)
            )

    if pad_to_max_length:
        width = max_seq_length
    else:
        width = max((len(ids) for ids, _ in packed_rows), default=0)
    word_ids = np.full((len(packed_rows), width), pad_id, dtype=np.int32)
    mask = np.zeros((len(packed_rows), width), dtype=np.int32)
    type_ids = np.zeros((len(packed_rows), width), dtype=np.int32)
    for row_index, (ids, first_part_length) in enumerate(packed_rows):
        word_ids[row_index, : len(ids)] = ids
        mask[row_index, : len(ids)] = 1
        type_ids[row_index, first_part_length : len(ids)] = 1
    return {"input_word_ids": word_ids, "input_mask": mask, "input_type_ids": type_ids}
