"""pipeline.features.long_texts as TensorFlow ops, for the exported model: a batch of token ids in, the segments
the encoder reads out, with the text each belongs to and its weight, so the exported graph reads a long text
exactly as extraction did (tested against it within 1e-5)."""

from __future__ import annotations

from typing import Any

import tensorflow as tf
import tensorflow_text

from pipeline.features.long_texts import LongTexts, room


def graph_segments(ids: tf.RaggedTensor, max_seq_length: int, long_texts: LongTexts) -> tuple[tf.RaggedTensor, tf.Tensor, tf.Tensor]:
    """(segments [S, None] int32 ids, owner [S] int32: the text of each segment, weight [S] float32: its ids)."""
    text_room = room(max_seq_length)
    lengths = ids.row_lengths()
    texts = tf.range(tf.size(lengths, out_type=tf.int64))
    if long_texts.strategy == "windows":
        return _windows(ids, lengths, texts, text_room, long_texts)
    if long_texts.strategy == "head-tail":
        positions = tf.ragged.range(lengths)
        tail = text_room - long_texts.head_tokens
        fits = tf.expand_dims(lengths <= text_room, 1)
        kept = (positions < long_texts.head_tokens) | (positions >= tf.expand_dims(lengths, 1) - tail) | fits
        segments = tf.ragged.boolean_mask(ids, kept)
    else:
        segments = ids[:, :text_room]
    return segments, tf.cast(texts, tf.int32), tf.cast(segments.row_lengths(), tf.float32)


def _windows(ids: tf.RaggedTensor, lengths: tf.Tensor, texts: tf.Tensor, text_room: int,
             long_texts: LongTexts) -> tuple[tf.RaggedTensor, tf.Tensor, tf.Tensor]:
    """Windows starting every `room - overlap` ids, as many as cover the text, at most `max_windows`."""
    overlap, stride = long_texts.window_overlap, text_room - long_texts.window_overlap
    needed = (lengths - overlap + stride - 1) // stride  # len(range(0, length - overlap, stride))
    count = tf.where(lengths <= text_room, tf.ones_like(lengths), tf.minimum(needed, long_texts.max_windows))
    owner = tf.repeat(texts, count)
    starts = tf.ragged.range(count).flat_values * stride
    ends = tf.minimum(starts + text_room, tf.gather(lengths, owner))
    positions = tf.ragged.range(starts, ends)
    flat_positions = positions.flat_values + tf.repeat(tf.gather(ids.row_starts(), owner), positions.row_lengths())
    segments = tf.RaggedTensor.from_row_lengths(tf.gather(ids.flat_values, flat_positions), positions.row_lengths())
    return segments, tf.cast(owner, tf.int32), tf.cast(tf.maximum(ends - starts, 1), tf.float32)  # as extraction weighs


def pack_segments(segments: tf.RaggedTensor, *, cls_id: int, sep_id: int, pad_id: int) -> dict[str, tf.Tensor]:
    """[CLS] segment [SEP], padded to the batch's longest: the encoder's three inputs."""
    word_ids, type_ids = tensorflow_text.combine_segments([segments], start_of_sequence_id=cls_id,
                                                          end_of_segment_id=sep_id)
    return {
        "input_word_ids": tf.cast(word_ids.to_tensor(default_value=pad_id), tf.int32),
        "input_mask": tf.ones_like(word_ids, dtype=tf.int32).to_tensor(default_value=0),
        "input_type_ids": tf.cast(type_ids, tf.int32).to_tensor(default_value=0),
    }


def pool_per_text(vectors: tf.Tensor, owner: tf.Tensor, weight: tf.Tensor, texts: Any) -> tf.Tensor:
    """One vector per text: the mean of its segments' vectors weighted by their ids (a lone segment is itself)."""
    totals = tf.math.unsorted_segment_sum(vectors * weight[:, tf.newaxis], owner, texts)
    ids = tf.math.unsorted_segment_sum(weight, owner, texts)
    return totals / tf.maximum(ids, 1.0)[:, tf.newaxis]
