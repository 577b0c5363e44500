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

import os
import shutil
import tempfile
from pathlib import Path

from pipeline.base.errors import UserError
from pipeline.base.files import file_sha256
from pipeline.encoders.checkpoint import (
    check_checkpoint_files,
    load_bert_weights,
    read_bert_config,
    read_do_lower_case,
    read_json_object,
    read_recommended_pooling,
)
from pipeline.encoders.model_info import write_model_info
from pipeline.encoders.modeling import build_encoder_module

CONVERTER_VERSION = 2


def _existing_output_error(output_dir: Path) -> UserError:
    return UserError(f"output folder {output_dir} already exists; delete it or choose another output folder")


def convert_checkpoint(checkpoint_dir: str | os.PathLike[str], output_dir: str | os.PathLike[str]) -> Path:
    """Converts a Hugging Face BERT checkpoint folder into a TF-Hub reusable SavedModel.

    Returns `output_dir` (a Path), which then holds the SavedModel and `pipeline_model.json`.
    Raises UserError for a bad checkpoint or an existing output folder; in that case nothing
    is left behind.
    """
    checkpoint_dir = Path(checkpoint_dir)
    output_dir = Path(output_dir)

    check_checkpoint_files(checkpoint_dir)
    config = read_bert_config(checkpoint_dir)
    do_lower_case = read_do_lower_case(checkpoint_dir)
    pooling = read_recommended_pooling(checkpoint_dir)
    if output_dir.exists():
        raise _existing_output_error(output_dir)
    weights = load_bert_weights(checkpoint_dir, config)
    weights_sha256 = file_sha256(checkpoint_dir / "model.safetensors")

    raw_config = read_json_object(checkpoint_dir / "config.json")
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
        "layer_norm_eps": config.layer_norm_eps,  # for the reduced-precision rebuild (pipeline.encoders.reduced_precision)
        "do_lower_case": do_lower_case,
        "source": source,
        "converter_version": CONVERTER_VERSION,
    }
    sentence_config = checkpoint_dir / "sentence_bert_config.json"
    if sentence_config.is_file():
        trained_length = read_json_object(sentence_config).get("max_seq_length")
        if isinstance(trained_length, int) and not isinstance(trained_length, bool):
            info["trained_max_seq_length"] = trained_length

    output_dir.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.converting-", dir=output_dir.parent))
    try:
        import tensorflow as tf

        module = build_encoder_module(config, weights, checkpoint_dir / "vocab.txt", do_lower_case)
        tf.saved_model.save(module, str(temporary), signatures={"serving_default": module.serve})
        write_model_info(temporary, info)
        os.chmod(temporary, 0o755)  # mkdtemp makes it private; the result is an ordinary folder
        if output_dir.exists():  # created by someone else while we were converting
            raise _existing_output_error(output_dir)
        os.rename(temporary, output_dir)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return output_dir
