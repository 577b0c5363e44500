"""The BERT encoder as TensorFlow ops, the module the converter saves (what google-research/bert
calls modeling.py): embeddings, self-attention layers, pooler, and the saved tf.Module around them.

TensorFlow is imported inside the functions, so reading and checking a checkpoint never starts it.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np

INPUT_NAMES = ("input_word_ids", "input_mask", "input_type_ids")

# Added to attention scores of padding positions before the softmax (as in the original BERT).
_MASK_ADDEND = -10000.0


@dataclasses.dataclass(frozen=True)
class BertConfig:
    """The fields of a Hugging Face `config.json` that the forward pass needs."""

    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    max_position_embeddings: int
    type_vocab_size: int
    layer_norm_eps: float
    hidden_dropout_rate: float
    attention_dropout_rate: float


def build_encoder_module(config: BertConfig, weights: dict[str, np.ndarray], vocab_path: Path, do_lower_case: bool) -> Any:
    """Creates the tf.Module that is saved; TensorFlow is imported only when converting."""
    import tensorflow as tf

    class BertEncoder(tf.Module):
        # tf.Module computes `variables` and `trainable_variables` on the fly; a reusable
        # SavedModel needs them as saved attributes, so these class attributes shadow the
        # properties and __init__ assigns real lists.
        variables = None
        trainable_variables = None

        def __init__(self) -> None:
            super().__init__(name="bert_encoder")
            self._config = config
            self._params: dict[str, Any] = {}
            for name, value in weights.items():
                self._params[name] = tf.Variable(value, trainable=True, name=variable_name(name))
            self.vocab_file = tf.saved_model.Asset(str(vocab_path))
            self.do_lower_case = tf.Variable(do_lower_case, trainable=False, name="do_lower_case")
            self.trainable_variables = list(self._params.values())
            self.variables = list(self._params.values()) + [self.do_lower_case]

        @tf.function
        def __call__(self, inputs: dict[str, Any], training: bool = False) -> dict[str, Any]:
            return bert_forward(self._params, self._config, inputs, training)

        @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32, name=name) for name in INPUT_NAMES])
        def serve(self, input_word_ids: Any, input_mask: Any, input_type_ids: Any) -> dict[str, Any]:
            outputs = bert_forward(
                self._params,
                self._config,
                {"input_word_ids": input_word_ids, "input_mask": input_mask, "input_type_ids": input_type_ids},
                False,
            )
            flat = {"pooled_output": outputs["pooled_output"], "sequence_output": outputs["sequence_output"]}
            for index, layer_output in enumerate(outputs["encoder_outputs"]):
                flat[f"encoder_outputs_{index}"] = layer_output
            return flat

    module = BertEncoder()
    input_spec = {name: tf.TensorSpec([None, None], tf.int32, name=name) for name in INPUT_NAMES}
    for training in (True, False):
        module.__call__.get_concrete_function(input_spec, training=training)
    return module


def variable_name(param_name: str) -> str:
    """The saved variable's name for one of our parameters: TF Model Garden style, and "position_embedding" is
    what readers search for to learn the maximum sequence length."""
    if param_name in ("word_embeddings", "position_embedding", "type_embeddings"):
        return f"{param_name}/embeddings"
    if param_name.startswith("layer_"):
        return "transformer/" + param_name
    return param_name


def param_name(saved_variable_name: str) -> str:
    """The inverse of variable_name, for a variable read back from a saved encoder ("...:0" included)."""
    name = saved_variable_name.split(":")[0]
    return name.removeprefix("transformer/").removesuffix("/embeddings")


# Parameters multiplied in the encoder's large matrix products: converted to the reduced precision once, at
# load time (pipeline.encoders.reduced_precision). Embedding tables, layer norms and the pooler stay float32.
REDUCED_PRECISION_PARAMS = ("query_kernel", "query_bias", "key_kernel", "key_bias", "value_kernel", "value_bias",
                            "attention_output_kernel", "attention_output_bias", "intermediate_kernel",
                            "intermediate_bias", "output_kernel", "output_bias")


def bert_forward(params: dict[str, Any], config: BertConfig, inputs: dict[str, Any], training: bool,
                 compute_dtype: Any = None) -> dict[str, Any]:
    """The BERT forward pass in TensorFlow ops (traced inside the saved tf.functions).

    With a `compute_dtype`, every matrix product (the six dense layers of each transformer layer and the
    two attention products) and the GELU run in it, while the residual stream, layer norms, attention
    softmax and the outputs stay float32: the usual mixed-precision split, which keeps the rounding of
    each layer from accumulating. `params` named in REDUCED_PRECISION_PARAMS must then already be in that
    dtype. Without one (float32) no cast is added, so the saved graph is what it always was.
    """
    import tensorflow as tf

    def reduced(tensor: Any) -> Any:
        return tensor if compute_dtype is None else tf.cast(tensor, compute_dtype)

    def full(tensor: Any) -> Any:
        return tensor if compute_dtype is None else tf.cast(tensor, tf.float32)

    word_ids = tf.convert_to_tensor(inputs["input_word_ids"])
    mask = tf.convert_to_tensor(inputs["input_mask"])
    type_ids = tf.convert_to_tensor(inputs["input_type_ids"])
    batch_size = tf.shape(word_ids)[0]
    seq_length = tf.shape(word_ids)[1]
    hidden = config.hidden_size
    heads = config.num_heads
    head_size = hidden // heads

    def dropout(tensor: Any, rate: float) -> Any:
        if training and rate > 0:
            return tf.nn.dropout(tensor, rate=rate)
        return tensor

    def layer_norm(tensor: Any, gamma: Any, beta: Any) -> Any:
        mean = tf.reduce_mean(tensor, axis=-1, keepdims=True)
        variance = tf.reduce_mean(tf.square(tensor - mean), axis=-1, keepdims=True)
        return (tensor - mean) * tf.math.rsqrt(variance + config.layer_norm_eps) * gamma + beta

    # The hidden states are kept as [batch * seq, hidden]: each dense layer is then one plain 2-D
    # MatMul + BiasAdd, which TensorFlow's CPU graph rewriter fuses into a single oneDNN call
    # (with the GELU for the intermediate layer). The same layers written as 3-D einsums are slower
    # per token (measured: docs/benchmarks-history.md#what-was-tried-and-what-it-gave).
    def dense(tensor: Any, kernel: Any, bias: Any) -> Any:
        return tf.nn.bias_add(tf.matmul(reduced(tensor), kernel), bias)

    def split_heads(tensor: Any) -> Any:  # [batch * seq, hidden] -> [batch, heads, seq, head_size]
        tensor = tf.reshape(tensor, [batch_size, seq_length, heads, head_size])
        return tf.transpose(tensor, [0, 2, 1, 3])

    def unflatten(tensor: Any) -> Any:  # [batch * seq, hidden] -> [batch, seq, hidden]
        return tf.reshape(tensor, [batch_size, seq_length, hidden])

    length_check = tf.debugging.assert_less_equal(
        seq_length,
        config.max_position_embeddings,
        message=f"input sequence length exceeds this encoder's max_position_embeddings "
        f"({config.max_position_embeddings}); use a shorter max sequence length",
    )
    with tf.control_dependencies([length_check]):
        positions = tf.range(seq_length)
    embeddings = (
        tf.gather(params["word_embeddings"], word_ids)
        + tf.expand_dims(tf.gather(params["position_embedding"], positions), 0)
        + tf.gather(params["type_embeddings"], type_ids)
    )
    state = tf.reshape(embeddings, [-1, hidden])
    state = layer_norm(state, params["embeddings_norm_gamma"], params["embeddings_norm_beta"])
    state = dropout(state, config.hidden_dropout_rate)

    # [batch, 1, 1, seq]: 0 for real tokens, a large negative number for padding. Reshaped, not indexed with
    # tf.newaxis: a strided slice with a new axis is no TFLite builtin, and the int8 route converts this graph.
    addend = (1.0 - tf.cast(mask, tf.float32)) * _MASK_ADDEND
    addend = tf.reshape(addend, [batch_size, 1, 1, seq_length])
    scale = 1.0 / math.sqrt(head_size)

    encoder_outputs = []
    for index in range(config.num_layers):
        p = {name: params[f"layer_{index}/{name}"] for name in _LAYER_PARAM_NAMES}
        state_reduced = reduced(state)  # cast once for the three projections
        query = split_heads(dense(state_reduced, p["query_kernel"], p["query_bias"]))
        key = split_heads(dense(state_reduced, p["key_kernel"], p["key_bias"]))
        value = split_heads(dense(state_reduced, p["value_kernel"], p["value_bias"]))
        scores = full(tf.matmul(query, key, transpose_b=True)) * scale + addend
        probabilities = dropout(tf.nn.softmax(scores, axis=-1), config.attention_dropout_rate)
        context = tf.transpose(tf.matmul(reduced(probabilities), value), [0, 2, 1, 3])
        context = tf.reshape(context, [-1, hidden])
        attention = full(dense(context, p["attention_output_kernel"], p["attention_output_bias"]))
        state = layer_norm(
            dropout(attention, config.hidden_dropout_rate) + state,
            p["attention_norm_gamma"],
            p["attention_norm_beta"],
        )
        intermediate = tf.nn.gelu(dense(state, p["intermediate_kernel"], p["intermediate_bias"]), approximate=False)
        output = full(dense(intermediate, p["output_kernel"], p["output_bias"]))
        state = layer_norm(
            dropout(output, config.hidden_dropout_rate) + state,
            p["output_norm_gamma"],
            p["output_norm_beta"],
        )
        encoder_outputs.append(unflatten(state))

    sequence_output = unflatten(state)
    first_token = sequence_output[:, 0, :]
    pooled = tf.tanh(tf.matmul(first_token, params["pooler_kernel"]) + params["pooler_bias"])
    return {"pooled_output": pooled, "sequence_output": sequence_output, "encoder_outputs": encoder_outputs}


_LAYER_PARAM_NAMES = (
    "query_kernel",
    "query_bias",
    "key_kernel",
    "key_bias",
    "value_kernel",
    "value_bias",
    "attention_output_kernel",
    "attention_output_bias",
    "attention_norm_gamma",
    "attention_norm_beta",
    "intermediate_kernel",
    "intermediate_bias",
    "output_kernel",
    "output_bias",
    "output_norm_gamma",
    "output_norm_beta",
)
