"""Hugging Face BERT checkpoint -> TF-Hub reusable SavedModel (new dict signature).

Input: a folder with `config.json` (model_type "bert"), `model.safetensors`, `vocab.txt`,
optionally `tokenizer_config.json` (for `do_lower_case`, default True) and a
sentence-transformers `1_Pooling/config.json` (for the recommended pooling).

Output: one folder that is both a TF-Hub handle and a record of what produced it:

    output_dir/
      saved_model.pb, variables/, assets/vocab.txt   the reusable SavedModel
      pipeline_model.json                            what was converted, recommended pooling

The loaded object (`hub.load(output_dir)`) has:
  __call__(inputs, training=False)  inputs: dict of int32 [batch, seq] tensors
                                    input_word_ids, input_mask, input_type_ids;
                                    returns dict pooled_output [batch, hidden],
                                    sequence_output [batch, seq, hidden],
                                    encoder_outputs (list, one [batch, seq, hidden] per layer).
                                    Traced for training=True (dropout on) and training=False.
  variables, trainable_variables    lists of tf.Variable (do_lower_case is not trainable)
  vocab_file                        tf.saved_model.Asset with the WordPiece vocabulary
  do_lower_case                     tf.Variable(bool)
  signatures["serving_default"]     keyword inputs as above; outputs pooled_output,
                                    sequence_output, encoder_outputs_0 .. encoder_outputs_{L-1}

Weights are read with `safetensors.numpy` (no PyTorch). The output is first written into a
hidden temporary folder beside `output_dir` and renamed at the end, so a half-written
output folder never exists.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from pipeline.errors import UserError

CONVERTER_VERSION = 2
MODEL_INFO_FILENAME = "pipeline_model.json"
INPUT_NAMES = ("input_word_ids", "input_mask", "input_type_ids")

# Added to attention scores of padding positions before the softmax (as in the original BERT).
_MASK_ADDEND = -10000.0


# --------------------------------------------------------------------------- reading the checkpoint


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


def sha256_of_file(path: Path, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks (never the whole file in memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _read_json(path: Path) -> dict:
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserError(f"cannot read {path} as JSON ({reason}); fix or replace the file") from None
    if not isinstance(content, dict):
        raise UserError(f"{path} must hold a JSON object; fix or replace the file")
    return content


def _check_checkpoint_files(checkpoint_dir: Path) -> None:
    if not checkpoint_dir.exists():
        raise UserError(
            f"checkpoint folder {checkpoint_dir} does not exist; "
            "point at a folder holding config.json, model.safetensors and vocab.txt"
        )
    if not checkpoint_dir.is_dir():
        raise UserError(
            f"{checkpoint_dir} is not a folder; "
            "point at a folder holding config.json, model.safetensors and vocab.txt"
        )
    for name in ("config.json", "model.safetensors", "vocab.txt"):
        if not (checkpoint_dir / name).is_file():
            raise UserError(
                f"{checkpoint_dir} has no {name}; a Hugging Face BERT checkpoint folder needs "
                "config.json, model.safetensors and vocab.txt"
            )


def _config_int(raw: dict, key: str, config_path: Path, default: int | None = None) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise UserError(f"{config_path} needs a positive integer {key!r} (found {value!r}); fix config.json")
    return value


def _config_float(raw: dict, key: str, config_path: Path, default: float) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise UserError(f"{config_path} needs a non-negative number {key!r} (found {value!r}); fix config.json")
    return float(value)


def read_bert_config(checkpoint_dir: Path) -> BertConfig:
    """Reads and checks `config.json`; anything this converter cannot reproduce is a UserError."""
    config_path = checkpoint_dir / "config.json"
    raw = _read_json(config_path)
    model_type = raw.get("model_type")
    if model_type != "bert":
        raise UserError(
            f"{config_path} has model_type {model_type!r}, but only 'bert' checkpoints can be converted; "
            "choose a BERT checkpoint"
        )
    activation = raw.get("hidden_act", "gelu")
    if activation != "gelu":
        raise UserError(
            f"{config_path} has hidden_act {activation!r}; only 'gelu' (exact erf GELU) is supported, "
            "choose a standard BERT checkpoint"
        )
    position_type = raw.get("position_embedding_type", "absolute")
    if position_type != "absolute":
        raise UserError(
            f"{config_path} has position_embedding_type {position_type!r}; only 'absolute' is supported, "
            "choose a standard BERT checkpoint"
        )
    config = BertConfig(
        vocab_size=_config_int(raw, "vocab_size", config_path),
        hidden_size=_config_int(raw, "hidden_size", config_path),
        num_layers=_config_int(raw, "num_hidden_layers", config_path),
        num_heads=_config_int(raw, "num_attention_heads", config_path),
        intermediate_size=_config_int(raw, "intermediate_size", config_path),
        max_position_embeddings=_config_int(raw, "max_position_embeddings", config_path),
        type_vocab_size=_config_int(raw, "type_vocab_size", config_path, default=2),
        layer_norm_eps=_config_float(raw, "layer_norm_eps", config_path, default=1e-12),
        hidden_dropout_rate=_config_float(raw, "hidden_dropout_prob", config_path, default=0.1),
        attention_dropout_rate=_config_float(raw, "attention_probs_dropout_prob", config_path, default=0.1),
    )
    if config.hidden_size % config.num_heads:
        raise UserError(
            f"{config_path}: hidden_size {config.hidden_size} is not divisible by "
            f"num_attention_heads {config.num_heads}; fix config.json"
        )
    return config


def read_do_lower_case(checkpoint_dir: Path) -> bool:
    """`do_lower_case` from `tokenizer_config.json`; True when the file or the key is absent."""
    path = checkpoint_dir / "tokenizer_config.json"
    if not path.is_file():
        return True
    value = _read_json(path).get("do_lower_case", True)
    if not isinstance(value, bool):
        raise UserError(f"{path} has do_lower_case {value!r}; it must be true or false")
    return value


def read_recommended_pooling(checkpoint_dir: Path) -> str:
    """'mean' or 'cls' from a sentence-transformers `1_Pooling/config.json`, else 'pooled'."""
    path = checkpoint_dir / "1_Pooling" / "config.json"
    if not path.is_file():
        return "pooled"
    pooling = _read_json(path)
    if pooling.get("pooling_mode_mean_tokens"):
        return "mean"
    if pooling.get("pooling_mode_cls_token"):
        return "cls"
    return "pooled"


def _checkpoint_tensor_names(config: BertConfig) -> dict[str, tuple[str, tuple[int, ...], bool]]:
    """Our parameter name -> (checkpoint key, expected checkpoint shape, is a torch Linear weight).

    Torch Linear weights are [out, in]; they are transposed into [in, out] kernels.
    """
    hidden, inner = config.hidden_size, config.intermediate_size
    names: dict[str, tuple[str, tuple[int, ...], bool]] = {
        "word_embeddings": ("embeddings.word_embeddings.weight", (config.vocab_size, hidden), False),
        "position_embedding": (
            "embeddings.position_embeddings.weight",
            (config.max_position_embeddings, hidden),
            False,
        ),
        "type_embeddings": ("embeddings.token_type_embeddings.weight", (config.type_vocab_size, hidden), False),
        "embeddings_norm_gamma": ("embeddings.LayerNorm.weight", (hidden,), False),
        "embeddings_norm_beta": ("embeddings.LayerNorm.bias", (hidden,), False),
        "pooler_kernel": ("pooler.dense.weight", (hidden, hidden), True),
        "pooler_bias": ("pooler.dense.bias", (hidden,), False),
    }
    for index in range(config.num_layers):
        prefix = f"encoder.layer.{index}."
        layer = {
            "query_kernel": ("attention.self.query.weight", (hidden, hidden), True),
            "query_bias": ("attention.self.query.bias", (hidden,), False),
            "key_kernel": ("attention.self.key.weight", (hidden, hidden), True),
            "key_bias": ("attention.self.key.bias", (hidden,), False),
            "value_kernel": ("attention.self.value.weight", (hidden, hidden), True),
            "value_bias": ("attention.self.value.bias", (hidden,), False),
            "attention_output_kernel": ("attention.output.dense.weight", (hidden, hidden), True),
            "attention_output_bias": ("attention.output.dense.bias", (hidden,), False),
            "attention_norm_gamma": ("attention.output.LayerNorm.weight", (hidden,), False),
            "attention_norm_beta": ("attention.output.LayerNorm.bias", (hidden,), False),
            "intermediate_kernel": ("intermediate.dense.weight", (inner, hidden), True),
            "intermediate_bias": ("intermediate.dense.bias", (inner,), False),
            "output_kernel": ("output.dense.weight", (hidden, inner), True),
            "output_bias": ("output.dense.bias", (hidden,), False),
            "output_norm_gamma": ("output.LayerNorm.weight", (hidden,), False),
            "output_norm_beta": ("output.LayerNorm.bias", (hidden,), False),
        }
        for name, (key, shape, is_linear) in layer.items():
            names[f"layer_{index}/{name}"] = (prefix + key, shape, is_linear)
    return names


def _lookup(tensors: dict[str, np.ndarray], key: str) -> np.ndarray | None:
    """Finds `key` with or without the "bert." prefix; old checkpoints say gamma/beta for LayerNorm."""
    candidates = [key]
    if key.endswith("LayerNorm.weight"):
        candidates.append(key[: -len("weight")] + "gamma")
    if key.endswith("LayerNorm.bias"):
        candidates.append(key[: -len("bias")] + "beta")
    for candidate in candidates:
        for name in (candidate, "bert." + candidate):
            if name in tensors:
                return tensors[name]
    return None


def load_bert_weights(checkpoint_dir: Path, config: BertConfig) -> dict[str, np.ndarray]:
    """Reads `model.safetensors` into float32 numpy arrays keyed by our parameter names.

    Linear weights come back transposed to [in, out]. A missing tensor or a shape that
    disagrees with config.json is a UserError naming the tensor.
    """
    from safetensors.numpy import load_file  # imported here: only conversion needs it

    path = checkpoint_dir / "model.safetensors"
    try:
        tensors = load_file(str(path))
    except Exception as error:  # the library raises several types for a damaged file
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserError(f"cannot read {path} ({reason}); replace it with a valid safetensors file") from None

    weights: dict[str, np.ndarray] = {}
    for name, (key, shape, is_linear) in _checkpoint_tensor_names(config).items():
        array = _lookup(tensors, key)
        if array is None:
            raise UserError(
                f"{path} has no tensor {key!r} (nor 'bert.{key}'); it is not a complete BERT checkpoint, "
                "export the full BertModel weights"
            )
        if tuple(array.shape) != shape:
            raise UserError(
                f"{path}: tensor {key!r} has shape {list(array.shape)} but config.json implies {list(shape)}; "
                "use the config.json that belongs to these weights"
            )
        if not np.issubdtype(array.dtype, np.floating):
            raise UserError(f"{path}: tensor {key!r} has dtype {array.dtype}, expected floating point weights")
        array = array.astype(np.float32)
        weights[name] = np.ascontiguousarray(array.T if is_linear else array)
    return weights


# --------------------------------------------------------------------------- the TensorFlow model


def _build_module(config: BertConfig, weights: dict[str, np.ndarray], vocab_path: Path, do_lower_case: bool):
    """Creates the tf.Module that is saved; TensorFlow is imported only when converting."""
    import tensorflow as tf

    class BertEncoder(tf.Module):
        # tf.Module computes `variables` and `trainable_variables` on the fly; a reusable
        # SavedModel needs them as saved attributes, so these class attributes shadow the
        # properties and __init__ assigns real lists.
        variables = None
        trainable_variables = None

        def __init__(self):
            super().__init__(name="bert_encoder")
            self._config = config
            self._params = {}
            for name, value in weights.items():
                # Variable names follow the TF Model Garden style; "position_embedding" is what
                # readers search for to learn the maximum sequence length.
                if name == "word_embeddings":
                    var_name = "word_embeddings/embeddings"
                elif name == "position_embedding":
                    var_name = "position_embedding/embeddings"
                elif name == "type_embeddings":
                    var_name = "type_embeddings/embeddings"
                elif name.startswith("layer_"):
                    var_name = "transformer/" + name
                else:
                    var_name = name
                self._params[name] = tf.Variable(value, trainable=True, name=var_name)
            self.vocab_file = tf.saved_model.Asset(str(vocab_path))
            self.do_lower_case = tf.Variable(do_lower_case, trainable=False, name="do_lower_case")
            self.trainable_variables = list(self._params.values())
            self.variables = list(self._params.values()) + [self.do_lower_case]

        @tf.function
        def __call__(self, inputs, training=False):
            return _bert_forward(self._params, self._config, inputs, training)

        @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32, name=name) for name in INPUT_NAMES])
        def serve(self, input_word_ids, input_mask, input_type_ids):
            outputs = _bert_forward(
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


def _bert_forward(params: dict, config: BertConfig, inputs: dict, training: bool) -> dict:
    """The BERT forward pass in TensorFlow ops (traced inside the saved tf.functions)."""
    import tensorflow as tf

    word_ids = tf.convert_to_tensor(inputs["input_word_ids"])
    mask = tf.convert_to_tensor(inputs["input_mask"])
    type_ids = tf.convert_to_tensor(inputs["input_type_ids"])
    batch_size = tf.shape(word_ids)[0]
    seq_length = tf.shape(word_ids)[1]
    hidden = config.hidden_size
    heads = config.num_heads
    head_size = hidden // heads

    def dropout(tensor, rate):
        if training and rate > 0:
            return tf.nn.dropout(tensor, rate=rate)
        return tensor

    def layer_norm(tensor, gamma, beta):
        mean = tf.reduce_mean(tensor, axis=-1, keepdims=True)
        variance = tf.reduce_mean(tf.square(tensor - mean), axis=-1, keepdims=True)
        return (tensor - mean) * tf.math.rsqrt(variance + config.layer_norm_eps) * gamma + beta

    # The hidden states are kept as [batch * seq, hidden]: each dense layer is then one plain 2-D
    # MatMul + BiasAdd, which TensorFlow's CPU graph rewriter fuses into a single oneDNN call
    # (with the GELU for the intermediate layer). The same layers written as 3-D einsums ran
    # 6-15% slower per token (docs/benchmarks.md).
    def dense(tensor, kernel, bias):
        return tf.nn.bias_add(tf.matmul(tensor, kernel), bias)

    def split_heads(tensor):  # [batch * seq, hidden] -> [batch, heads, seq, head_size]
        tensor = tf.reshape(tensor, [batch_size, seq_length, heads, head_size])
        return tf.transpose(tensor, [0, 2, 1, 3])

    def unflatten(tensor):  # [batch * seq, hidden] -> [batch, seq, hidden]
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
        + tf.gather(params["position_embedding"], positions)[tf.newaxis]
        + tf.gather(params["type_embeddings"], type_ids)
    )
    state = tf.reshape(embeddings, [-1, hidden])
    state = layer_norm(state, params["embeddings_norm_gamma"], params["embeddings_norm_beta"])
    state = dropout(state, config.hidden_dropout_rate)

    # [batch, 1, 1, seq]: 0 for real tokens, a large negative number for padding.
    addend = (1.0 - tf.cast(mask, tf.float32)) * _MASK_ADDEND
    addend = addend[:, tf.newaxis, tf.newaxis, :]
    scale = 1.0 / math.sqrt(head_size)

    encoder_outputs = []
    for index in range(config.num_layers):
        p = {name: params[f"layer_{index}/{name}"] for name in _LAYER_PARAM_NAMES}
        query = split_heads(dense(state, p["query_kernel"], p["query_bias"]))
        key = split_heads(dense(state, p["key_kernel"], p["key_bias"]))
        value = split_heads(dense(state, p["value_kernel"], p["value_bias"]))
        scores = tf.matmul(query, key, transpose_b=True) * scale + addend
        probabilities = dropout(tf.nn.softmax(scores, axis=-1), config.attention_dropout_rate)
        context = tf.transpose(tf.matmul(probabilities, value), [0, 2, 1, 3])
        context = tf.reshape(context, [-1, hidden])
        attention = dense(context, p["attention_output_kernel"], p["attention_output_bias"])
        state = layer_norm(
            dropout(attention, config.hidden_dropout_rate) + state,
            p["attention_norm_gamma"],
            p["attention_norm_beta"],
        )
        intermediate = tf.nn.gelu(dense(state, p["intermediate_kernel"], p["intermediate_bias"]), approximate=False)
        output = dense(intermediate, p["output_kernel"], p["output_bias"])
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


# --------------------------------------------------------------------------- public API


def _existing_output_error(output_dir: Path) -> UserError:
    return UserError(f"output folder {output_dir} already exists; delete it or choose another output folder")


def convert_checkpoint(checkpoint_dir: str | os.PathLike, output_dir: str | os.PathLike) -> Path:
    """Converts a Hugging Face BERT checkpoint folder into a TF-Hub reusable SavedModel.

    Returns `output_dir` (a Path), which then holds the SavedModel and `pipeline_model.json`.
    Raises UserError for a bad checkpoint or an existing output folder; in that case nothing
    is left behind.
    """
    checkpoint_dir = Path(checkpoint_dir)
    output_dir = Path(output_dir)

    _check_checkpoint_files(checkpoint_dir)
    config = read_bert_config(checkpoint_dir)
    do_lower_case = read_do_lower_case(checkpoint_dir)
    pooling = read_recommended_pooling(checkpoint_dir)
    if output_dir.exists():
        raise _existing_output_error(output_dir)
    weights = load_bert_weights(checkpoint_dir, config)
    weights_sha256 = sha256_of_file(checkpoint_dir / "model.safetensors")

    raw_config = _read_json(checkpoint_dir / "config.json")
    source = {"checkpoint": checkpoint_dir.resolve().name, "sha256": weights_sha256}
    if isinstance(raw_config.get("_name_or_path"), str) and raw_config["_name_or_path"]:
        source["name_or_path"] = raw_config["_name_or_path"]
    info = {
        "format": "tf-hub-reusable-savedmodel",
        "signature": "dict",
        "recommended_pooling": pooling,
        "hidden_size": config.hidden_size,
        "num_layers": config.num_layers,
        "num_attention_heads": config.num_heads,
        "vocab_size": config.vocab_size,
        "max_seq_length": config.max_position_embeddings,
        "do_lower_case": do_lower_case,
        "source": source,
        "converter_version": CONVERTER_VERSION,
    }
    sentence_config = checkpoint_dir / "sentence_bert_config.json"
    if sentence_config.is_file():
        trained_length = _read_json(sentence_config).get("max_seq_length")
        if isinstance(trained_length, int) and not isinstance(trained_length, bool):
            info["trained_max_seq_length"] = trained_length

    output_dir.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.converting-", dir=output_dir.parent))
    try:
        import tensorflow as tf

        module = _build_module(config, weights, checkpoint_dir / "vocab.txt", do_lower_case)
        tf.saved_model.save(module, str(temporary), signatures={"serving_default": module.serve})
        (temporary / MODEL_INFO_FILENAME).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        os.chmod(temporary, 0o755)  # mkdtemp makes it private; the result is an ordinary folder
        if output_dir.exists():  # created by someone else while we were converting
            raise _existing_output_error(output_dir)
        os.rename(temporary, output_dir)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return output_dir


def read_model_info(model_dir: str | os.PathLike) -> dict | None:
    """The `pipeline_model.json` written by `convert_checkpoint`, or None when there is none.

    A handle that is not a local folder (a URL, a Kaggle handle) also gives None.
    """
    path = Path(model_dir) / MODEL_INFO_FILENAME
    try:
        if not path.is_file():
            return None
    except OSError:  # e.g. a URL that is not a valid path on this system
        return None
    info = _read_json(path)
    return info
