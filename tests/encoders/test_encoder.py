"""Encoder loading: both hub signatures, tokenizer from the model's assets, limits, fingerprint, clear errors."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import tensorflow as tf

from pipeline.base.config import resolve_layers
from pipeline.base.errors import UserError
from pipeline.encoders.encoder import load_encoder, model_fingerprint, resolve_handle
from pipeline.features.encoder_io import pool


def _batch():
    ids = tf.constant([[2, 10, 11, 12, 3], [2, 13, 3, 0, 0]], dtype=tf.int32)
    mask = tf.constant([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], dtype=tf.int32)
    return ids, mask, tf.zeros_like(ids)


def test_new_signature_encoder_reports_its_shape_limits_and_tokenizer(tiny_encoder_dir):
    encoder = load_encoder(str(tiny_encoder_dir))
    assert encoder.signature == "dict"
    assert encoder.hidden_size == 32
    assert encoder.max_seq_length == 64
    assert encoder.do_lower_case is True
    # The tokenizer is built from the vocab asset inside the SavedModel, not from a setting.
    assert encoder.vocab_file.parent == tiny_encoder_dir / "assets"
    assert encoder.tokenizer.tokenize("The Movie") == ["the", "movie"]
    outputs = encoder(*_batch())
    assert outputs["pooled_output"].shape == (2, 32)
    assert outputs["sequence_output"].shape == (2, 5, 32)


def test_loading_twice_returns_the_same_object(tiny_encoder_dir):
    assert load_encoder(str(tiny_encoder_dir)) is load_encoder(str(tiny_encoder_dir))


def test_the_vocabulary_is_hashed_once_per_loaded_encoder_not_per_describe(tiny_encoder_dir, tmp_path, monkeypatch):
    from pipeline.base.files import file_sha256
    from pipeline.encoders import encoder as encoder_module

    copy = tmp_path / "encoder"
    shutil.copytree(tiny_encoder_dir, copy)  # a folder this process has not loaded yet
    hashed = []

    def counting_sha256(path):
        hashed.append(path.name)
        return file_sha256(path)

    monkeypatch.setattr(encoder_module, "file_sha256", counting_sha256)
    encoder = load_encoder(str(copy))
    hashed_while_loading = hashed.count("vocab.txt")
    assert hashed_while_loading >= 1
    descriptions = [encoder.describe() for _ in range(5)]  # a run describes its encoder several times
    assert hashed.count("vocab.txt") == hashed_while_loading
    assert {description["vocab_sha256"] for description in descriptions} == {file_sha256(copy / "assets" / "vocab.txt")}


def test_old_list_signature_gives_the_same_outputs_through_one_convention(tiny_encoder_dir, tmp_path):
    from tiny_bert import save_old_signature_model

    old_dir = save_old_signature_model(tiny_encoder_dir, tmp_path / "old")
    old, new = load_encoder(str(old_dir)), load_encoder(str(tiny_encoder_dir))
    assert old.signature == "list"
    assert old.hidden_size == new.hidden_size
    assert old.tokenizer.vocab == new.tokenizer.vocab
    old_outputs, new_outputs = old(*_batch()), new(*_batch())
    # Same weights, separately traced graphs: oneDNN may order the float32 sums differently (seen: 2.8e-6).
    for name in ("pooled_output", "sequence_output"):
        np.testing.assert_allclose(old_outputs[name].numpy(), new_outputs[name].numpy(), atol=1e-5)
    # The new signature gives every layer; the old one only its last, so only --layers last fits it.
    assert (new.available_layers, new.all_layers_given) == (2, True)
    assert (old.available_layers, old.all_layers_given) == (1, False)
    assert len(old_outputs["encoder_outputs"]) == 1
    np.testing.assert_allclose(new_outputs["encoder_outputs"][-1].numpy(), new_outputs["sequence_output"].numpy())
    with pytest.raises(UserError, match="old list signature and gives only its last layer; pass --layers last"):
        resolve_layers("all", pooling="mean", available_layers=old.available_layers,
                       all_layers_given=old.all_layers_given, encoder=str(old_dir))


def test_pooling_modes_on_known_values():
    sequence = tf.constant([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    first_layer = tf.constant([[[0.0, 0.0], [1.0, 1.0], [50.0, 50.0]]])
    outputs = {"pooled_output": tf.constant([[7.0, 8.0]]), "sequence_output": sequence,
               "encoder_outputs": [first_layer, sequence]}
    mask = tf.constant([[1, 1, 0]])
    np.testing.assert_allclose(pool(outputs, mask, "pooled").numpy(), [[7.0, 8.0]])
    np.testing.assert_allclose(pool(outputs, mask, "cls").numpy(), [[1.0, 2.0]])
    # The padded position (100, 100) must not leak into the mean.
    np.testing.assert_allclose(pool(outputs, mask, "mean").numpy(), [[2.0, 3.0]])
    np.testing.assert_allclose(pool(outputs, mask, "mean", (-2, -1), "concat").numpy(), [[0.5, 0.5, 2.0, 3.0]])
    np.testing.assert_allclose(pool(outputs, mask, "mean", (-2, -1), "mean").numpy(), [[1.25, 1.75]])
    np.testing.assert_allclose(pool(outputs, mask, "cls", (-2,)).numpy(), [[0.0, 0.0]])
    with pytest.raises(ValueError, match="only the last layer"):
        pool(outputs, mask, "pooled", (-2, -1))


def test_fingerprint_is_stable_and_changes_with_any_model_file(tiny_encoder_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_encoder_dir, copy)
    assert model_fingerprint(copy) == model_fingerprint(tiny_encoder_dir)
    vocab = copy / "assets" / "vocab.txt"
    vocab.write_text(vocab.read_text() + "extra\n")
    assert model_fingerprint(copy) != model_fingerprint(tiny_encoder_dir)


def test_missing_folder_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="neither a local folder nor a URL"):
        resolve_handle(str(tmp_path / "nowhere"))


def test_folder_without_saved_model_is_a_user_error(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(UserError, match="not a SavedModel"):
        resolve_handle(str(tmp_path))


@pytest.mark.parametrize("handle", [
    "https://tfhub.dev/tensorflow/bert_en_uncased_L-12_H-768_A-12/4",
    "tensorflow/bert/tensorFlow2/en-uncased-l-12-h-768-a-12/4",
])
def test_unreachable_handle_names_tfhub_cache_dir_and_local_folders(handle, tmp_path, monkeypatch):
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "hub-cache"))
    with pytest.raises(UserError) as caught:
        resolve_handle(handle)
    message = str(caught.value)
    assert handle in message and "TFHUB_CACHE_DIR" in message and "--encoder PATH" in message
    assert "\n" not in message


def _save_module(module: tf.Module, folder):
    tf.saved_model.save(module, str(folder))
    return folder


def test_saved_model_without_bert_assets_is_refused(tmp_path):
    class Doubler(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32)])
        def __call__(self, inputs):
            return inputs * 2

    folder = _save_module(Doubler(), tmp_path / "doubler")
    with pytest.raises(UserError, match="not a TF-Hub BERT encoder"):
        load_encoder(str(folder))


def test_saved_model_with_assets_but_no_bert_outputs_is_refused(tmp_path, tiny_encoder_dir):
    class NotBert(tf.Module):
        def __init__(self):
            super().__init__()
            self.vocab_file = tf.saved_model.Asset(str(tiny_encoder_dir / "assets" / "vocab.txt"))
            self.do_lower_case = tf.Variable(True, trainable=False)

        @tf.function(input_signature=[{
            "input_word_ids": tf.TensorSpec([None, None], tf.int32),
            "input_mask": tf.TensorSpec([None, None], tf.int32),
            "input_type_ids": tf.TensorSpec([None, None], tf.int32),
        }])
        def __call__(self, inputs):
            return {"logits": tf.cast(inputs["input_word_ids"], tf.float32)}

    folder = _save_module(NotBert(), tmp_path / "not-bert")
    with pytest.raises(UserError, match="does not give BERT outputs"):
        load_encoder(str(folder))


def test_a_damaged_model_note_is_a_user_error_not_a_crash(tiny_encoder_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_encoder_dir, copy)
    (copy / "pipeline_model.json").write_text("{not json")
    with pytest.raises(UserError, match="pipeline_model.json is unreadable"):
        load_encoder(str(copy))


# ----------------------------------------------------------------------------- loaded on first use


def _counting_loads(monkeypatch):
    """A list that gets one entry per SavedModel the encoder module loads."""
    from pipeline.encoders import encoder as encoder_module

    loads, load = [], encoder_module._load_layer
    monkeypatch.setattr(encoder_module, "_load_layer", lambda model_dir: loads.append(model_dir) or load(model_dir))
    return loads


def test_a_converted_encoder_is_described_from_its_notes_and_its_saved_model_loaded_once_on_first_use(
        tiny_encoder_dir, tmp_path, monkeypatch):
    described, asked = tmp_path / "with-notes", tmp_path / "without-notes"
    shutil.copytree(tiny_encoder_dir, described)
    shutil.copytree(tiny_encoder_dir, asked)
    (asked / "pipeline_model.json").unlink()  # a hub model has none: the SavedModel itself is asked, at once
    loads = _counting_loads(monkeypatch)
    from_model = load_encoder(str(asked))
    assert loads == [asked]
    from_notes = load_encoder(str(described))
    assert loads == [asked]
    same = ("signature", "hidden_size", "available_layers", "max_seq_length", "do_lower_case", "vocab_sha256", "fingerprint")
    assert {key: getattr(from_notes, key) for key in same} == {key: getattr(from_model, key) for key in same}
    assert from_notes.vocab_file == described / "assets" / "vocab.txt"
    first = from_notes(*_batch())["sequence_output"].numpy()
    second = from_notes(*_batch())["sequence_output"].numpy()
    assert loads == [asked, described]
    np.testing.assert_array_equal(first, from_model(*_batch())["sequence_output"].numpy())
    np.testing.assert_array_equal(first, second)


@pytest.mark.parametrize("key, value", [("hidden_size", 64), ("num_layers", 5), ("do_lower_case", False)])
def test_notes_that_do_not_match_their_saved_model_stop_the_first_use_with_one_line(tiny_encoder_dir, tmp_path, key, value):
    import json

    copy = tmp_path / "encoder"
    shutil.copytree(tiny_encoder_dir, copy)
    notes = json.loads((copy / "pipeline_model.json").read_text())
    (copy / "pipeline_model.json").write_text(json.dumps({**notes, key: value}))
    encoder = load_encoder(str(copy))
    with pytest.raises(UserError) as caught:
        encoder(*_batch())
    message = str(caught.value)
    assert f"does not match the SavedModel beside it ({key})" in message and "pipeline convert" in message
    assert "\n" not in message


def test_features_served_from_the_cache_load_no_saved_model(tiny_encoder_dir, tmp_path, monkeypatch):
    from pipeline.encoders import encoder as encoder_module
    from pipeline.features.extraction import extract_features

    copy = tmp_path / "encoder"
    shutil.copytree(tiny_encoder_dir, copy)
    texts = ["the movie was great", "the film was bad", "a story"]
    options = {"pooling": "mean", "layers": (-2, -1), "max_seq_length": 16, "cache_dir": tmp_path / "cache",
               "show_progress": False}
    loads = _counting_loads(monkeypatch)
    computed = extract_features(texts, load_encoder(str(copy)), **options)
    assert (computed.cache_hit, loads) == (False, [copy])
    monkeypatch.setattr(encoder_module, "_LOADED", {})  # as a second process would start
    served = extract_features(texts, load_encoder(str(copy)), **options)
    assert (served.cache_hit, loads) == (True, [copy])
    np.testing.assert_array_equal(served.features, computed.features)
