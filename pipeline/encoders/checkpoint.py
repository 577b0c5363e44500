"""Reading a Hugging Face BERT checkpoint folder: `config.json`, `model.safetensors` (with
`safetensors.numpy`, no PyTorch), `tokenizer_config.json` and a sentence-transformers pooling config.

Everything a converter cannot reproduce is refused here, as a UserError naming the file and the fix,
before TensorFlow starts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.base.errors import UserError
from pipeline.encoders.modeling import BertConfig

CHECKPOINT_FILES = ("config.json", "model.safetensors", "vocab.txt")


def read_json_object(path: Path) -> dict[str, Any]:
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserError(f"cannot read {path} as JSON ({reason}); fix or replace the file") from None
    if not isinstance(content, dict):
        raise UserError(f"{path} must hold a JSON object; fix or replace the file")
    return content


def check_checkpoint_files(checkpoint_dir: Path) -> None:
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


def _config_int(raw: dict[str, Any], key: str, config_path: Path, default: int | None = None) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise UserError(f"{config_path} needs a positive integer {key!r} (found {value!r}); fix config.json")
    return value


def _config_float(raw: dict[str, Any], key: str, config_path: Path, default: float) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise UserError(f"{config_path} needs a non-negative number {key!r} (found {value!r}); fix config.json")
    return float(value)


def read_bert_config(checkpoint_dir: Path) -> BertConfig:
    """Reads and checks `config.json`; anything this converter cannot reproduce is a UserError."""
    config_path = checkpoint_dir / "config.json"
    raw = read_json_object(config_path)
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
    value = read_json_object(path).get("do_lower_case", True)
    if not isinstance(value, bool):
        raise UserError(f"{path} has do_lower_case {value!r}; it must be true or false")
    return value


def read_recommended_pooling(checkpoint_dir: Path) -> str:
    """'mean' or 'cls' from a sentence-transformers `1_Pooling/config.json`, else 'pooled'."""
    path = checkpoint_dir / "1_Pooling" / "config.json"
    if not path.is_file():
        return "pooled"
    pooling = read_json_object(path)
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
