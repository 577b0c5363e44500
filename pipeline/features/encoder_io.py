"""What surrounds one encoder call: the token ids a text gives, and the pooling of the encoder's outputs into
one vector per text.

Every path that runs an encoder shares these, so they agree row for row: local extraction
(`pipeline.features.extraction`), Beam workers (`pipeline.features.beam_pipeline`), fine-tuning and the exported model.
Nothing here knows which encoder it serves: the tokenizer and the output tensors are passed in. TensorFlow
is imported only by the pooling functions, so tokenizing (a Beam worker's first step) does not load it.
"""

from __future__ import annotations

from array import array as int_array
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from pipeline.base.progress_bars import redraw_interval
from tokenization import FullTokenizer

if TYPE_CHECKING:
    import tensorflow as tf


def token_ids(tokenizer: FullTokenizer, text: str, max_seq_length: int) -> list[int]:
    """WordPiece ids of one text, cut to leave room for [CLS] and [SEP]."""
    return tokenizer.encode(text)[: max_seq_length - 2]


def tokenize_whole(texts: list[str], tokenizer: FullTokenizer, *, show_progress: bool) -> list[int_array[int]]:
    """Every id of every text, uncut, each kept as a compact int32 array: long-text handling
    (pipeline.features.long_texts) decides what is read, and counts what is not."""
    with tqdm(texts, unit="text", desc="tokenizing", disable=not show_progress, smoothing=0.1,
              mininterval=redraw_interval()) as progress:
        return [int_array("i", tokenizer.encode(text)) for text in progress]


def tokenize_all(texts: list[str], tokenizer: FullTokenizer, max_seq_length: int, *,
                 show_progress: bool) -> list[int_array[int]]:
    """Ids of every text, each kept as a compact int32 array rather than a list of Python ints.

    The tokenizer memoises per word, so this is a small fraction of the encoder's time, which is why it is not
    overlapped with the encoder (measured: docs/benchmarks.md#tokenization-and-memory).
    """
    with tqdm(texts, unit="text", desc="tokenizing", disable=not show_progress, smoothing=0.1,
              mininterval=redraw_interval()) as progress:
        return [int_array("i", token_ids(tokenizer, text, max_seq_length)) for text in progress]


def feature_size(hidden_size: int, layers: tuple[int, ...], combine: str) -> int:
    """Floats per text: one vector per chosen layer side by side (concat), or one (mean)."""
    return hidden_size * len(layers) if combine == "concat" else hidden_size


def pool(outputs: dict[str, Any], input_mask: tf.Tensor, pooling: str, layers: tuple[int, ...] = (-1,),
         combine: str = "concat") -> tf.Tensor:
    """One vector per text from the chosen layers (negative indices into `encoder_outputs`), side by side
    (concat) or averaged (mean). `pooled` is the model's own pooled output, which exists for the last layer only."""
    import tensorflow as tf

    if pooling == "pooled":
        if layers != (-1,):
            raise ValueError(f"pooling 'pooled' has only the last layer, got layers {layers}")
        return outputs["pooled_output"]
    per_layer = [_pool_sequence(outputs["encoder_outputs"][index], input_mask, pooling) for index in layers]
    if len(per_layer) == 1:
        return per_layer[0]
    if combine == "concat":
        return tf.concat(per_layer, axis=-1)
    if combine == "mean":
        return tf.add_n(per_layer) / float(len(per_layer))
    raise ValueError(f"unknown combine {combine!r}")


def _pool_sequence(sequence: tf.Tensor, input_mask: tf.Tensor, pooling: str) -> tf.Tensor:
    """cls = the [CLS] row; mean = average over real tokens."""
    import tensorflow as tf

    if pooling == "cls":
        return sequence[:, 0, :]
    if pooling == "mean":
        weights = tf.cast(input_mask, sequence.dtype)[:, :, tf.newaxis]
        total = tf.reduce_sum(sequence * weights, axis=1)
        count = tf.maximum(tf.reduce_sum(weights, axis=1), 1e-9)
        return total / count
    raise ValueError(f"unknown pooling {pooling!r}")
