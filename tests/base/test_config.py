"""RunConfig's checks that need no data and no model: the layer choice and its combination."""

from __future__ import annotations

import pytest

from pipeline.base.config import RunConfig, layers_text, parse_layers, resolve_layers, validate
from pipeline.base.errors import UserError


def resolved(text, pooling="mean", available_layers=6, all_layers_given=True):
    return resolve_layers(text, pooling=pooling, available_layers=available_layers,
                          all_layers_given=all_layers_given, encoder="test-encoder")


def test_layer_choices_resolve_to_negative_indices():
    assert resolved("last") == (-1,)
    assert resolved("all") == (-6, -5, -4, -3, -2, -1)
    assert resolved("last4") == (-4, -3, -2, -1)
    assert resolved("last4", available_layers=2) == (-2, -1)
    assert resolved("0,2,-1") == (-6, -4, -1)
    assert resolved(" ALL ") == resolved("all")
    assert resolved("last", pooling="pooled", all_layers_given=False) == (-1,)
    assert layers_text(resolved("all")) == "-6,-5,-4,-3,-2,-1"
    assert resolved(layers_text((-6, -4, -1))) == (-6, -4, -1)  # what config.json records reads back the same


@pytest.mark.parametrize("text, fragments", [
    ("9", ["--layers 9", "has 6 layers (0..5, or -6..-1 from the end)"]),
    ("-7", ["has 6 layers"]),
    ("", ["--layers ''", "last, all, last4"]),
    ("first", ["'first'", "indices such as 0,2,-1"]),
    ("1,1", ["names a layer twice"]),
    ("0,-6", ["names a layer twice"]),  # layer 0 of 6 is layer -6
])
def test_bad_layer_choices_say_what_to_pass(text, fragments):
    with pytest.raises(UserError) as caught:
        resolved(text)
    for fragment in fragments:
        assert fragment in str(caught.value)


def test_pooled_output_exists_for_the_last_layer_only():
    with pytest.raises(UserError, match="pooled is the model's own output of its last layer"):
        resolved("all", pooling="pooled")
    with pytest.raises(UserError, match="--layers last"):
        validate(RunConfig(layers="last4", pooling="pooled"))
    validate(RunConfig(layers="last", pooling="pooled"))


def test_layers_and_combine_are_checked_before_any_work():
    with pytest.raises(UserError, match="--combine 'max' is unknown"):
        validate(RunConfig(combine="max"))
    with pytest.raises(UserError, match="not a layer choice"):
        validate(RunConfig(layers="top"))
    assert parse_layers("last4") == "last4" and parse_layers("3, -1") == (3, -1)


def test_fine_tuning_takes_its_own_recipe_and_keeps_options_given():
    settings = RunConfig(fine_tune=True).head_settings()
    assert (settings.head, settings.epochs, settings.batch_size, settings.learning_rate) == ("fine-tune", 2, 32, 5e-5)
    assert (settings.dropout_rate, settings.weight_decay, settings.hidden_units) == (0.1, 0.01, ())
    pinned = RunConfig(fine_tune=True, epochs=2, learning_rate=3e-5, hidden_units=(64,)).head_settings()
    assert (pinned.epochs, pinned.learning_rate, pinned.hidden_units, pinned.batch_size) == (2, 3e-5, (64,), 32)
    with pytest.raises(UserError, match="--head paperspace trains on cached frozen features"):
        validate(RunConfig(fine_tune=True, head="paperspace"))


def test_artifacts_default_to_the_checkouts_own_folder(monkeypatch):
    """Where `make demo` writes when nothing moves it: <checkout>/artifacts, whichever folder config.py lives in."""
    from helpers import REPO_ROOT

    from pipeline.base.config import artifacts_dir, models_dir

    monkeypatch.delenv("PIPELINE_ARTIFACTS", raising=False)
    monkeypatch.delenv("PIPELINE_MODELS", raising=False)
    assert artifacts_dir() == REPO_ROOT / "artifacts" and models_dir() == REPO_ROOT / "artifacts" / "models"
