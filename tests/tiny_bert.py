"""Test helpers (not tests): tiny BERT checkpoints, an independent NumPy forward pass, and
an old-signature TF-Hub wrapper. Other test modules import these names; keep them stable.

    write_tiny_checkpoint(folder, ...)        -> Hugging Face style checkpoint folder
    numpy_bert_forward(checkpoint_dir, ids, mask, type_ids) -> {"sequence_output", "pooled_output"}
    save_old_signature_model(new_model_dir, output_dir)     -> old list-in/list-out SavedModel
    save_frozen_model(new_model_dir, output_dir)            -> dict-signature SavedModel with nothing trainable
    make_tiny_encoder(folder, **checkpoint_options)         -> converted tiny SavedModel folder
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

# 95 ordinary tokens: punctuation, lower-case words that review sentences use, and a few
# WordPiece continuation pieces. With the 5 special tokens the vocabulary has 100 entries.
ORDINARY_TOKENS = [
    ".", ",", "!", "?", "'", "-",
    "the", "a", "an", "is", "was", "it", "this", "that", "movie", "film", "good", "bad",
    "great", "not", "very", "and", "but", "of", "to", "in", "fun", "boring", "story",
    "acting", "plot", "funny", "dull", "best", "worst", "i", "love", "hate", "one", "with",
    "for", "as", "its", "so", "too", "really", "ever", "never", "all", "at", "be", "by",
    "are", "his", "her", "he", "she", "they", "you", "have", "has", "more", "most", "no",
    "just", "than", "what", "who", "like", "well", "time", "characters", "director",
    "script", "performance", "cast", "ending", "long", "slow", "smart", "charming",
    "mess", "waste", "hour", "watch", "see", "make", "made", "plays",
    "##s", "##ing", "##ed", "##ly", "##er", "##y",
]
if len(SPECIAL_TOKENS) + len(ORDINARY_TOKENS) != 100 or len(set(ORDINARY_TOKENS)) != len(ORDINARY_TOKENS):
    raise RuntimeError("the tiny vocabulary must have 100 distinct tokens")


def tiny_vocabulary(vocab_size: int = 100) -> list[str]:
    """The token list for a tiny checkpoint: the 100 tokens above, cut or padded to vocab_size."""
    tokens = SPECIAL_TOKENS + ORDINARY_TOKENS
    if vocab_size < len(SPECIAL_TOKENS):
        raise ValueError(f"vocab_size must be at least {len(SPECIAL_TOKENS)}, got {vocab_size}")
    tokens = tokens[:vocab_size]
    tokens += [f"[unused{index}]" for index in range(vocab_size - len(tokens))]
    return tokens


def write_tiny_checkpoint(
    folder,
    *,
    num_layers: int = 2,
    hidden_size: int = 32,
    num_heads: int = 4,
    intermediate_size: int = 64,
    vocab_size: int = 100,
    max_position_embeddings: int = 64,
    seed: int = 0,
    pooling: str | None = "mean",
    bert_prefix: bool = False,
) -> Path:
    """Writes a random-weight Hugging Face BERT checkpoint folder and returns it.

    Files: config.json, model.safetensors, vocab.txt, tokenizer_config.json and, unless
    pooling is None, a sentence-transformers 1_Pooling/config.json ("mean" or "cls").
    Weights are larger than BERT's initialisation so that attention is far from uniform
    and a wrong mask or transpose shows up in the outputs.
    """
    from safetensors.numpy import save_file

    if pooling not in ("mean", "cls", None):
        raise ValueError(f"pooling must be 'mean', 'cls' or None, got {pooling!r}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)

    def normal(*shape, scale=0.3):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    def gamma(size):
        return (1.0 + rng.standard_normal(size) * 0.1).astype(np.float32)

    hidden, inner = hidden_size, intermediate_size
    tensors = {
        "embeddings.word_embeddings.weight": normal(vocab_size, hidden, scale=1.0),
        "embeddings.position_embeddings.weight": normal(max_position_embeddings, hidden, scale=0.5),
        "embeddings.token_type_embeddings.weight": normal(2, hidden, scale=0.5),
        "embeddings.LayerNorm.weight": gamma(hidden),
        "embeddings.LayerNorm.bias": normal(hidden, scale=0.1),
        "embeddings.position_ids": np.arange(max_position_embeddings, dtype=np.int64)[np.newaxis],
        "pooler.dense.weight": normal(hidden, hidden),
        "pooler.dense.bias": normal(hidden, scale=0.1),
    }
    for index in range(num_layers):
        prefix = f"encoder.layer.{index}."
        for name in ("query", "key", "value"):
            tensors[f"{prefix}attention.self.{name}.weight"] = normal(hidden, hidden, scale=0.4)
            tensors[f"{prefix}attention.self.{name}.bias"] = normal(hidden, scale=0.1)
        tensors[f"{prefix}attention.output.dense.weight"] = normal(hidden, hidden, scale=0.2)
        tensors[f"{prefix}attention.output.dense.bias"] = normal(hidden, scale=0.1)
        tensors[f"{prefix}attention.output.LayerNorm.weight"] = gamma(hidden)
        tensors[f"{prefix}attention.output.LayerNorm.bias"] = normal(hidden, scale=0.1)
        tensors[f"{prefix}intermediate.dense.weight"] = normal(inner, hidden, scale=0.3)
        tensors[f"{prefix}intermediate.dense.bias"] = normal(inner, scale=0.1)
        tensors[f"{prefix}output.dense.weight"] = normal(hidden, inner, scale=0.2)
        tensors[f"{prefix}output.dense.bias"] = normal(hidden, scale=0.1)
        tensors[f"{prefix}output.LayerNorm.weight"] = gamma(hidden)
        tensors[f"{prefix}output.LayerNorm.bias"] = normal(hidden, scale=0.1)
    if bert_prefix:
        tensors = {"bert." + key: value for key, value in tensors.items()}
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})

    config = {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": vocab_size,
        "hidden_size": hidden_size,
        "num_hidden_layers": num_layers,
        "num_attention_heads": num_heads,
        "intermediate_size": intermediate_size,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": max_position_embeddings,
        "type_vocab_size": 2,
        "layer_norm_eps": 1e-12,
        "pad_token_id": 0,
        "position_embedding_type": "absolute",
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    (folder / "vocab.txt").write_text("\n".join(tiny_vocabulary(vocab_size)) + "\n", encoding="utf-8")
    tokenizer_config = {"do_lower_case": True, "tokenizer_class": "BertTokenizer"}
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config) + "\n", encoding="utf-8")
    if pooling is not None:
        (folder / "1_Pooling").mkdir(exist_ok=True)
        pooling_config = {
            "word_embedding_dimension": hidden_size,
            "pooling_mode_cls_token": pooling == "cls",
            "pooling_mode_mean_tokens": pooling == "mean",
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
        }
        (folder / "1_Pooling" / "config.json").write_text(json.dumps(pooling_config) + "\n", encoding="utf-8")
    return folder


def numpy_bert_forward(checkpoint_dir, input_word_ids, input_mask, input_type_ids) -> dict:
    """An independent float64 NumPy BERT forward pass, written from the BERT definition.

    Reads config.json and model.safetensors (keys with or without "bert."). Returns
    {"sequence_output": [batch, seq, hidden], "pooled_output": [batch, hidden]} as float64.
    """
    from safetensors.numpy import load_file

    checkpoint_dir = Path(checkpoint_dir)
    config = json.loads((checkpoint_dir / "config.json").read_text(encoding="utf-8"))
    raw = load_file(str(checkpoint_dir / "model.safetensors"))
    weights = {(key[5:] if key.startswith("bert.") else key): value.astype(np.float64) for key, value in raw.items()}
    eps = config.get("layer_norm_eps", 1e-12)
    heads = config["num_attention_heads"]

    ids = np.asarray(input_word_ids)
    mask = np.asarray(input_mask).astype(np.float64)
    types = np.asarray(input_type_ids)
    batch, length = ids.shape

    def norm(x, prefix):
        centred = x - x.mean(axis=-1, keepdims=True)
        deviation = np.sqrt((centred**2).mean(axis=-1, keepdims=True) + eps)
        return centred / deviation * weights[prefix + ".weight"] + weights[prefix + ".bias"]

    def linear(x, prefix):  # torch convention: y = x W^T + b
        return x @ weights[prefix + ".weight"].T + weights[prefix + ".bias"]

    erf = np.vectorize(math.erf)

    x = (
        weights["embeddings.word_embeddings.weight"][ids]
        + weights["embeddings.position_embeddings.weight"][np.arange(length)][np.newaxis]
        + weights["embeddings.token_type_embeddings.weight"][types]
    )
    x = norm(x, "embeddings.LayerNorm")
    hidden = x.shape[-1]
    size = hidden // heads
    padding = (1.0 - mask)[:, np.newaxis, np.newaxis, :] * -10000.0
    for index in range(config["num_hidden_layers"]):
        prefix = f"encoder.layer.{index}."

        def heads_first(t):
            return t.reshape(batch, length, heads, size).transpose(0, 2, 1, 3)

        q = heads_first(linear(x, prefix + "attention.self.query"))
        k = heads_first(linear(x, prefix + "attention.self.key"))
        v = heads_first(linear(x, prefix + "attention.self.value"))
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(size) + padding
        scores = scores - scores.max(axis=-1, keepdims=True)
        probabilities = np.exp(scores)
        probabilities /= probabilities.sum(axis=-1, keepdims=True)
        context = (probabilities @ v).transpose(0, 2, 1, 3).reshape(batch, length, hidden)
        x = norm(linear(context, prefix + "attention.output.dense") + x, prefix + "attention.output.LayerNorm")
        inner = linear(x, prefix + "intermediate.dense")
        inner = 0.5 * inner * (1.0 + erf(inner / math.sqrt(2.0)))
        x = norm(linear(inner, prefix + "output.dense") + x, prefix + "output.LayerNorm")
    pooled = np.tanh(linear(x[:, 0], "pooler.dense"))
    return {"sequence_output": x, "pooled_output": pooled}


def save_old_signature_model(new_model_dir, output_dir) -> Path:
    """Wraps a converted (new dict signature) model as an OLD-style TF-Hub BERT SavedModel.

    Its __call__(inputs, training=False) takes a list [input_word_ids, input_mask, segment_ids]
    and returns a list [pooled_output, sequence_output], like bert_en_uncased_L-12_H-768_A-12/1.
    It keeps vocab_file (asset), do_lower_case (variable), variables and trainable_variables,
    so hub.KerasLayer loads it. No pipeline_model.json is written (hub models have none).
    """
    import tensorflow as tf

    def call(inner, inputs, training):
        word_ids, mask, segment_ids = inputs
        outputs = inner({"input_word_ids": word_ids, "input_mask": mask, "input_type_ids": segment_ids},
                        training=training)
        return [outputs["pooled_output"], outputs["sequence_output"]]

    spec = [tf.TensorSpec([None, None], tf.int32, name=name) for name in ("input_word_ids", "input_mask", "segment_ids")]
    return _save_wrapped_model(new_model_dir, output_dir, name="old_signature_bert", trainable=True, call=call,
                               input_spec=spec)


def save_frozen_model(new_model_dir, output_dir) -> Path:
    """Wraps a converted model as a dict-signature SavedModel that exposes no trainable variables
    (an export meant for inference only): hub.KerasLayer loads it, but nothing in it can be trained."""
    import tensorflow as tf

    spec = {name: tf.TensorSpec([None, None], tf.int32, name=name) for name in ("input_word_ids", "input_mask", "input_type_ids")}
    return _save_wrapped_model(new_model_dir, output_dir, name="frozen_bert", trainable=False,
                               call=lambda inner, inputs, training: inner(inputs, training=False), input_spec=spec)


def _save_wrapped_model(new_model_dir, output_dir, *, name, trainable, call, input_spec) -> Path:
    """Saves a tf.Module around a loaded converted model: its vocab asset and do_lower_case, its variables
    (listed as trainable only when `trainable`), and `call(inner, inputs, training)` as __call__, traced for
    training True and False as hub.KerasLayer expects."""
    import tensorflow as tf

    new_model_dir, output_dir = Path(new_model_dir), Path(output_dir)
    inner = tf.saved_model.load(str(new_model_dir))

    class WrappedBert(tf.Module):
        variables = None  # shadow tf.Module's computed properties with saved lists
        trainable_variables = None

        def __init__(self):
            super().__init__(name=name)
            self._inner = inner
            self.vocab_file = tf.saved_model.Asset(str(new_model_dir / "assets" / "vocab.txt"))
            self.do_lower_case = tf.Variable(bool(inner.do_lower_case.numpy()), trainable=False, name="do_lower_case")
            self.trainable_variables = list(inner.trainable_variables) if trainable else []
            self.variables = list(inner.trainable_variables) + [self.do_lower_case]

        @tf.function
        def __call__(self, inputs, training=False):
            return call(self._inner, inputs, training)

    module = WrappedBert()
    for training in (True, False):
        module.__call__.get_concrete_function(input_spec, training=training)
    tf.saved_model.save(module, str(output_dir))
    return output_dir


def make_tiny_encoder(folder, **checkpoint_options) -> Path:
    """Writes a tiny checkpoint into folder/checkpoint, converts it into folder/encoder, returns
    the SavedModel folder (a TF-Hub handle with pipeline_model.json)."""
    from pipeline.encoders.convert import convert_checkpoint

    folder = Path(folder)
    checkpoint = write_tiny_checkpoint(folder / "checkpoint", **checkpoint_options)
    return convert_checkpoint(checkpoint, folder / "encoder")
