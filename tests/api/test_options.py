"""Each option is declared once, as a RunConfig field: the command line's flags and the Python API's parameters
must both come from those declarations, with the same defaults, and reach the shared core as one settings object."""

from __future__ import annotations

import dataclasses
import inspect

import numpy as np
import pytest

from pipeline.base.config import (
    CLASSES_STAGE,
    COMMAND_LINE_ONLY,
    DATA_STAGE,
    EMBEDDED_ENCODER,
    FEATURES_STAGE,
    REGRESSION_STAGE,
    TRAINING_STAGE,
    RunConfig,
    api_parameters,
    flag_of,
    options_of_record,
)
from pipeline.commands.cli import build_parser

OUTPUT_PARAMETERS = {"progress"}  # the API's --quiet: how a call reports, not what it computes
OUTPUT_FLAGS = {"--quiet", "--verbose", "--help"}
EXTRACT_ONLY_FLAGS = {"--runner"}


def constructor_defaults(estimator_class: type) -> dict[str, object]:
    return {name: parameter.default for name, parameter in inspect.signature(estimator_class.__init__).parameters.items()
            if name != "self"}


def mismatches(estimator_class: type, declared: dict[str, dataclasses.Field]) -> list[str]:
    """What differs between an API class's constructor and the declared options (by parameter name): names, defaults."""
    constructor = {name: default for name, default in constructor_defaults(estimator_class).items()
                   if name not in OUTPUT_PARAMETERS}
    problems = [f"option {name} is not a parameter of {estimator_class.__name__}" for name in declared if name not in constructor]
    problems += [f"parameter {name} of {estimator_class.__name__} is no option" for name in constructor if name not in declared]
    problems += [f"{estimator_class.__name__}({name}=...) defaults to {constructor[name]!r}, the option to "
                 f"{declared[name].default!r}" for name in declared if name in constructor and constructor[name] != declared[name].default]
    return problems


def run_flags(command: str) -> set[str]:
    subparsers = next(action for action in build_parser()._actions if action.dest == "command")
    parser = subparsers.choices[command]
    return {flag for action in parser._actions for flag in action.option_strings if flag.startswith("--")}


def test_every_option_has_a_stage_help_and_a_flag_of_run_sweep_and_extract():
    stages = {DATA_STAGE, FEATURES_STAGE, TRAINING_STAGE, CLASSES_STAGE, REGRESSION_STAGE, COMMAND_LINE_ONLY}
    flags = {flag_of(field.name) for field in dataclasses.fields(RunConfig)}
    for command in ("run", "sweep", "extract"):
        extra = EXTRACT_ONLY_FLAGS if command == "extract" else set()
        assert run_flags(command) == flags | OUTPUT_FLAGS | extra, command
    for field in dataclasses.fields(RunConfig):
        assert field.metadata["stage"] in stages and field.metadata["help"], field.name


def test_the_api_classes_take_exactly_the_options_of_their_stages_with_the_same_defaults():
    from pipeline import FeatureExtractor, TextClassifier, TextRegressor

    assert mismatches(FeatureExtractor, api_parameters((FEATURES_STAGE,))) == []
    assert mismatches(TextClassifier, api_parameters((FEATURES_STAGE, TRAINING_STAGE, CLASSES_STAGE))) == []
    assert mismatches(TextRegressor, api_parameters((FEATURES_STAGE, TRAINING_STAGE, REGRESSION_STAGE))) == []
    assert "batch_size" in api_parameters((FEATURES_STAGE,)) and "extraction_batch_size" not in api_parameters((FEATURES_STAGE,))


def test_the_check_names_an_option_missing_from_the_api_a_parameter_no_option_declares_and_a_default_that_differs():
    from pipeline import TextClassifier

    declared = api_parameters((FEATURES_STAGE, TRAINING_STAGE, CLASSES_STAGE))
    new_option = dataclasses.field(default=0.0)
    new_option.name = "label_smoothing"
    assert mismatches(TextClassifier, {**declared, "label_smoothing": new_option}) == [
        "option label_smoothing is not a parameter of TextClassifier"]
    assert mismatches(TextClassifier, {name: field for name, field in declared.items() if name != "seed"}) == [
        "parameter seed of TextClassifier is no option"]
    other_default = dataclasses.field(default=7)
    other_default.name = "seed"
    assert mismatches(TextClassifier, {**declared, "seed": other_default}) == [
        "TextClassifier(seed=...) defaults to 42, the option to 7"]


def test_parameters_reach_the_core_as_one_settings_object_converted_and_checked_as_declared(tmp_path):
    from pipeline import FeatureExtractor, TextClassifier
    from pipeline.api.inputs import InvalidInput

    classifier = TextClassifier(layers=[0, -1], hidden_units=np.int64(50), epochs=np.int64(3), cache_dir=tmp_path,
                                learning_rate=np.float32(0.5), max_seq_length="auto")
    config = classifier._config()
    assert (config.layers, config.hidden_units, config.epochs, config.cache_dir, config.max_seq_length) == (
        "0,-1", (50,), 3, str(tmp_path), "auto")
    assert isinstance(config.learning_rate, float) and config.data == "in-memory"
    assert FeatureExtractor(batch_size=8)._settings().extraction_batch_size == 8
    assert TextClassifier(encoder=None)._config().encoder == TextClassifier(encoder="")._config().encoder == EMBEDDED_ENCODER
    for parameters, message in [
        ({"epochs": 0}, "--epochs must be a positive whole number, got 0"),
        ({"epochs": "3"}, "--epochs must be a positive whole number, got '3'"),
        ({"seed": None}, "--seed must be a whole number, got None"),
        ({"combine": None}, "--combine None is unknown; choose one of concat, mean"),
        ({"learning_rate": "fast"}, "--learning-rate must be a number, got 'fast'"),
        ({"dropout_rate": 1.0}, "--dropout-rate must be in [0, 1), got 1.0"),
        ({"ensemble": 21}, "--ensemble must be a whole number of heads from 1 to 20, got 21"),
        ({"class_weights": "even"}, "--class-weights must be 'balanced' or 'none', got 'even'"),
        ({"layers": [0, 0]}, "--layers '0,0' names a layer twice; name each layer once"),
    ]:
        with pytest.raises(InvalidInput) as raised:
            TextClassifier(**parameters)._config()
        assert str(raised.value) == message
    with pytest.raises(InvalidInput, match="^--extraction-batch-size must be a positive whole number, got 0$"):
        FeatureExtractor(batch_size=0)._settings()


def test_a_recorded_config_gives_back_the_api_parameters_of_its_options():
    record = {**RunConfig(head="paperspace", epochs=3, hidden_units=(5, 4), output_dir="elsewhere").to_json(),
              "labels": ["a", "b"]}
    options = options_of_record(record, (FEATURES_STAGE, TRAINING_STAGE, CLASSES_STAGE))
    assert options["hidden_units"] == (5, 4) and options["epochs"] == 3 and options["head"] == "paperspace"
    assert "output_dir" not in options and "labels" not in options and "data" not in options
    assert options_of_record({**record, "head": "fine-tune", "fine_tune": True},
                             (FEATURES_STAGE, TRAINING_STAGE, CLASSES_STAGE))["head"] == "mlp"
    assert "batch_size" in options_of_record(record, (FEATURES_STAGE,))  # FeatureExtractor's name of the extraction's
