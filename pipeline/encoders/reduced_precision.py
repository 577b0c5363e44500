"""An encoder converted by this pipeline, rebuilt at load time to run its matrix products in bfloat16 or float16.

Grappler's automatic rewrites are slower for this graph (measured on an AMX Xeon:
docs/benchmarks.md#precision-bfloat16-and-float16): they leave the converted graph's fused MatMul + BiasAdd
(+ GELU) in float32 or wrap them in casts. Our converter's SavedModel holds plain named variables and
`pipeline_model.json` says how the graph was built, so the same forward pass
(`pipeline.encoders.modeling.bert_forward`) is traced again with the dense weights converted once, here, and
every product in the reduced precision; layer norms, softmax and the residual stream stay float32. Encoders
from elsewhere (TF-Hub, TF Model Garden) have other graphs and variable names; they get TensorFlow's graph
rewrite instead (pipeline.base.devices).
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from pipeline.encoders.modeling import REDUCED_PRECISION_PARAMS, BertConfig, bert_forward, param_name

COMPUTE_DTYPES = {"bfloat16": tf.bfloat16, "float16": tf.float16}
# What every BERT config.json says; converters before this key was recorded did not write it down.
DEFAULT_LAYER_NORM_EPS = 1e-12


def saved_params(resolved_object: Any) -> dict[str, tf.Variable]:
    """The encoder's variables by our parameter names; {} when they are not the converter's names."""
    params = {}
    for variable in getattr(resolved_object, "variables", None) or []:
        if variable.dtype.is_floating:  # not do_lower_case
            params[param_name(variable.name)] = variable
    needed = {"word_embeddings", "position_embedding", "type_embeddings", "pooler_kernel", "layer_0/query_kernel"}
    return params if needed <= params.keys() else {}


def can_rebuild(resolved_object: Any, model_info: dict[str, Any]) -> bool:
    """True for an encoder written by our converter (or a fine-tuned run's re-save of one)."""
    return isinstance(model_info.get("num_attention_heads"), int) and bool(saved_params(resolved_object))


def rebuilt_config(params: dict[str, Any], model_info: dict[str, Any]) -> BertConfig:
    """The forward pass's settings, from the variables' shapes and what the converter recorded."""
    word_table = params["word_embeddings"].shape
    num_layers = sum(1 for name in params if name.endswith("/query_kernel"))
    return BertConfig(
        vocab_size=int(word_table[0]), hidden_size=int(word_table[1]), num_layers=num_layers,
        num_heads=int(model_info["num_attention_heads"]),
        intermediate_size=int(params["layer_0/intermediate_kernel"].shape[1]),
        max_position_embeddings=int(params["position_embedding"].shape[0]),
        type_vocab_size=int(params["type_embeddings"].shape[0]),
        layer_norm_eps=float(model_info.get("layer_norm_eps", DEFAULT_LAYER_NORM_EPS)),
        hidden_dropout_rate=0.0, attention_dropout_rate=0.0,
    )


class ReducedPrecisionEncoder(tf.Module):
    """Called like the saved encoder (a dict of int32 inputs -> pooled_output, sequence_output, encoder_outputs,
    all float32), inference only. The dense weights are converted once, in __init__, and kept as variables so
    the traced graph does not carry them as constants."""

    def __init__(self, resolved_object: Any, model_info: dict[str, Any], precision: str):
        super().__init__(name=f"bert_encoder_{precision}")
        saved = saved_params(resolved_object)
        self._config = rebuilt_config(saved, model_info)
        self._dtype = COMPUTE_DTYPES[precision]
        self._params = {
            name: tf.Variable(tf.cast(variable, self._dtype) if name.split("/")[-1] in REDUCED_PRECISION_PARAMS
                              else variable.read_value(), trainable=False, name=f"{name}_{precision}")
            for name, variable in saved.items()
        }

    @tf.function
    def __call__(self, inputs: dict[str, tf.Tensor], training: bool | None = None) -> dict[str, Any]:
        del training  # inference only: a reduced-precision encoder is never trained
        return bert_forward(self._params, self._config, inputs, False, compute_dtype=self._dtype)
