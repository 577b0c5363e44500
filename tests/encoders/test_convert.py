"""pipeline.encoders.convert: Hugging Face BERT checkpoint -> TF-Hub reusable SavedModel, on tiny checkpoints."""

import json

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_hub as hub
import tf_keras as keras
from safetensors.numpy import load_file, save_file
from tiny_bert import (
    make_tiny_encoder,
    numpy_bert_forward,
    save_old_signature_model,
    tiny_vocabulary,
    write_tiny_checkpoint,
)

from pipeline.base.errors import UserError
from pipeline.base.files import file_sha256
from pipeline.encoders import convert
from pipeline.encoders.checkpoint import read_recommended_pooling
from pipeline.encoders.convert import convert_checkpoint
from pipeline.encoders.model_info import read_model_info

TOLERANCE = 1e-4

# Three sequences with padding: [CLS] ... [SEP] then [PAD]s; the last one uses segment ids 0 and 1.
WORD_IDS = np.array(
    [
        [2, 6, 14, 9, 16, 3, 0, 0, 0],
        [2, 19, 22, 3, 0, 0, 0, 0, 0],
        [2, 12, 15, 9, 21, 3, 34, 96, 3],
    ],
    dtype=np.int32,
)
MASK = (WORD_IDS != 0).astype(np.int32)
TYPE_IDS = np.array([[0] * 9, [0] * 9, [0, 0, 0, 0, 0, 0, 1, 1, 1]], dtype=np.int32)
INPUTS = {"input_word_ids": WORD_IDS, "input_mask": MASK, "input_type_ids": TYPE_IDS}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny 2-layer checkpoint and its conversion, shared by the tests of this module."""
    folder = tmp_path_factory.mktemp("tiny")
    encoder_dir = make_tiny_encoder(folder)
    return {"checkpoint": folder / "checkpoint", "encoder": encoder_dir}


@pytest.fixture(scope="module")
def reference(tiny):
    return numpy_bert_forward(tiny["checkpoint"], WORD_IDS, MASK, TYPE_IDS)


def max_real_token_difference(sequence_output, expected):
    real = MASK.astype(bool)
    return float(np.abs(np.asarray(sequence_output) - expected)[real].max())


def test_outputs_match_numpy_forward_with_padding(tiny, reference):
    model = hub.load(str(tiny["encoder"]))
    outputs = model(INPUTS, training=False)

    assert outputs["sequence_output"].shape == (3, 9, 32)
    assert outputs["pooled_output"].shape == (3, 32)
    assert max_real_token_difference(outputs["sequence_output"], reference["sequence_output"]) < TOLERANCE
    assert float(np.abs(outputs["pooled_output"].numpy() - reference["pooled_output"]).max()) < TOLERANCE
    # The random weights are large enough that outputs are far from trivial.
    assert float(np.std(reference["pooled_output"])) > 0.1

    layers = outputs["encoder_outputs"]
    assert len(layers) == 2
    assert all(layer.shape == (3, 9, 32) for layer in layers)
    np.testing.assert_array_equal(layers[-1].numpy(), outputs["sequence_output"].numpy())


def test_padding_does_not_change_real_token_outputs(tiny):
    model = hub.load(str(tiny["encoder"]))
    batched = model(INPUTS, training=False)["sequence_output"].numpy()
    alone = model(
        {"input_word_ids": WORD_IDS[1:2, :4], "input_mask": MASK[1:2, :4], "input_type_ids": TYPE_IDS[1:2, :4]},
        training=False,
    )["sequence_output"].numpy()
    assert float(np.abs(batched[1, :4] - alone[0]).max()) < 1e-5


def test_loads_as_frozen_keras_layer(tiny, reference):
    layer = hub.KerasLayer(str(tiny["encoder"]), trainable=False)
    outputs = layer(INPUTS)
    assert max_real_token_difference(outputs["sequence_output"], reference["sequence_output"]) < TOLERANCE
    assert float(np.abs(outputs["pooled_output"].numpy() - reference["pooled_output"]).max()) < TOLERANCE
    assert layer.trainable_weights == []
    assert len(layer.non_trainable_weights) > 0

    # The layer also works inside a functional Keras 2 model with dynamic batch and length.
    inputs = {name: keras.Input(shape=(None,), dtype=tf.int32, name=name) for name in INPUTS}
    pooled = layer(inputs)["pooled_output"]
    model = keras.Model(inputs, keras.layers.Dense(1)(pooled))
    assert model.predict(INPUTS, verbose=0).shape == (3, 1)


def test_training_true_uses_dropout_and_training_false_is_deterministic(tiny):
    model = hub.load(str(tiny["encoder"]))
    first = model(INPUTS, training=False)["pooled_output"].numpy()
    second = model(INPUTS, training=False)["pooled_output"].numpy()
    noisy = model(INPUTS, training=True)["pooled_output"].numpy()
    np.testing.assert_array_equal(first, second)
    assert float(np.abs(noisy - first).max()) > 1e-3


def test_too_long_input_names_max_position_embeddings(tiny):
    model = hub.load(str(tiny["encoder"]))
    too_long = tf.ones([1, 65], tf.int32)
    with pytest.raises(tf.errors.InvalidArgumentError, match="max_position_embeddings"):
        model({"input_word_ids": too_long, "input_mask": too_long, "input_type_ids": tf.zeros_like(too_long)})


def test_saved_model_attributes(tiny, reference):
    model = hub.load(str(tiny["encoder"]))

    assert isinstance(model.vocab_file, tf.saved_model.Asset)
    vocabulary = tf.io.read_file(model.vocab_file.asset_path).numpy().decode("utf-8").splitlines()
    assert vocabulary == tiny_vocabulary(100)
    assert isinstance(model.do_lower_case, tf.Variable)
    assert model.do_lower_case.dtype == tf.bool and bool(model.do_lower_case.numpy()) is True

    position = [variable for variable in model.variables if "position_embedding" in variable.name]
    assert len(position) == 1 and position[0].shape == (64, 32)
    trainable_names = {variable.name for variable in model.trainable_variables}
    assert "do_lower_case:0" not in trainable_names
    assert len(model.trainable_variables) == len(model.variables) - 1

    serving = model.signatures["serving_default"]
    flat = serving(**{name: tf.constant(value) for name, value in INPUTS.items()})
    assert set(flat) == {"pooled_output", "sequence_output", "encoder_outputs_0", "encoder_outputs_1"}
    assert float(np.abs(flat["pooled_output"].numpy() - reference["pooled_output"]).max()) < TOLERANCE


def test_model_info(tiny):
    info = read_model_info(tiny["encoder"])
    assert info["recommended_pooling"] == "mean"
    assert info["hidden_size"] == 32
    assert info["num_layers"] == 2
    assert info["max_seq_length"] == 64
    assert info["do_lower_case"] is True
    assert info["source"]["checkpoint"] == "checkpoint"
    assert info["source"]["sha256"] == file_sha256(tiny["checkpoint"] / "model.safetensors")
    assert info["converter_version"] == convert.CONVERTER_VERSION
    assert read_model_info(tiny["checkpoint"]) == {}


def test_recommended_pooling_from_sentence_transformers_config(tmp_path):
    assert read_recommended_pooling(write_tiny_checkpoint(tmp_path / "mean", pooling="mean")) == "mean"
    assert read_recommended_pooling(write_tiny_checkpoint(tmp_path / "cls", pooling="cls")) == "cls"
    assert read_recommended_pooling(write_tiny_checkpoint(tmp_path / "none", pooling=None)) == "pooled"


def test_bert_prefixed_keys_convert_to_the_same_model(tmp_path, tiny, reference):
    checkpoint = write_tiny_checkpoint(tmp_path / "prefixed", bert_prefix=True, pooling="cls")
    assert all(key.startswith("bert.") for key in load_file(str(checkpoint / "model.safetensors")))
    output = convert_checkpoint(checkpoint, tmp_path / "encoder")
    assert output == tmp_path / "encoder"
    assert read_model_info(output)["recommended_pooling"] == "cls"
    outputs = hub.load(str(output))(INPUTS, training=False)
    assert float(np.abs(outputs["pooled_output"].numpy() - reference["pooled_output"]).max()) < TOLERANCE


def test_old_signature_wrapper_gives_the_same_outputs(tmp_path, tiny, reference):
    old_dir = save_old_signature_model(tiny["encoder"], tmp_path / "old")
    layer = hub.KerasLayer(str(old_dir), trainable=False)
    pooled, sequence = layer([WORD_IDS, MASK, TYPE_IDS])
    assert float(np.abs(pooled.numpy() - reference["pooled_output"]).max()) < TOLERANCE
    assert max_real_token_difference(sequence, reference["sequence_output"]) < TOLERANCE

    loaded = hub.load(str(old_dir))
    vocabulary = tf.io.read_file(loaded.vocab_file.asset_path).numpy().decode("utf-8").splitlines()
    assert vocabulary == tiny_vocabulary(100)
    assert bool(loaded.do_lower_case.numpy()) is True
    assert read_model_info(old_dir) == {}


# --------------------------------------------------------------------------- bad input


def _without_vocab(checkpoint):
    (checkpoint / "vocab.txt").unlink()


def _roberta(checkpoint):
    config = json.loads((checkpoint / "config.json").read_text())
    config["model_type"] = "roberta"
    (checkpoint / "config.json").write_text(json.dumps(config))


def _missing_tensor(checkpoint):
    tensors = load_file(str(checkpoint / "model.safetensors"))
    del tensors["encoder.layer.1.attention.self.key.weight"]
    save_file(tensors, str(checkpoint / "model.safetensors"))


def _missing_folder(checkpoint):
    for path in sorted(checkpoint.rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    checkpoint.rmdir()


def _existing_output(checkpoint):
    existing = checkpoint.parent / "outputs" / "encoder"
    existing.mkdir(parents=True)
    (existing / "keep.txt").write_text("user data")


@pytest.mark.parametrize(
    ("break_checkpoint", "expected_message"),
    [
        (_missing_folder, "does not exist"),
        (_without_vocab, "has no vocab.txt"),
        (_roberta, "model_type 'roberta'"),
        (_missing_tensor, "'encoder.layer.1.attention.self.key.weight'"),
        (_existing_output, "already exists; delete it or choose another"),
    ],
    ids=["missing-folder", "no-vocab", "roberta", "missing-tensor", "existing-output"],
)
def test_bad_input_is_a_one_line_user_error_and_leaves_nothing(tmp_path, break_checkpoint, expected_message):
    checkpoint = write_tiny_checkpoint(tmp_path / "checkpoint", num_layers=2)
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    break_checkpoint(checkpoint)
    before = sorted(path.relative_to(outputs) for path in outputs.rglob("*"))

    with pytest.raises(UserError) as error:
        convert_checkpoint(checkpoint, outputs / "encoder")

    message = str(error.value)
    assert expected_message in message
    assert "\n" not in message
    assert sorted(path.relative_to(outputs) for path in outputs.rglob("*")) == before


def test_failure_while_saving_removes_the_temporary_folder(tmp_path, monkeypatch):
    checkpoint = write_tiny_checkpoint(tmp_path / "checkpoint")
    outputs = tmp_path / "outputs"

    def broken_build(*args, **kwargs):
        raise RuntimeError("simulated crash while building the model")

    monkeypatch.setattr(convert, "build_encoder_module", broken_build)
    with pytest.raises(RuntimeError, match="simulated crash"):
        convert_checkpoint(checkpoint, outputs / "encoder")
    assert list(outputs.iterdir()) == []
