"""The exported model's on-disk format: a SavedModel with three signatures and `export_info.json`.

`export` writes it (pipeline.runs.export); `predict` and the export's own check load it here, through its
signatures only, as any user would (TensorFlow and tensorflow-text, nothing of this package).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np

from pipeline.base.errors import UserError
from pipeline.data.targets import SINGLE_LABEL, Target

EXPORT_INFO_FILE = "export_info.json"
EXPORT_FORMAT = "pipeline-end-to-end-savedmodel"
SERVING_SIGNATURE = "serving_default"
LABELS_SIGNATURE = "labels"
TOKENIZE_SIGNATURE = "tokenize"


def looks_like_exported_model(folder: Path) -> bool:
    return (folder / "saved_model.pb").is_file() and (folder / EXPORT_INFO_FILE).is_file()


def exported_target(model_dir: Path, label_names: list[str]) -> Target:
    """What an exported model predicts, as export_info.json records it (exports from before targets were recorded:
    one class per text)."""
    try:
        recorded = json.loads((model_dir / EXPORT_INFO_FILE).read_text(encoding="utf-8")).get("target")
        return Target.from_record(recorded) if recorded else Target(kind=SINGLE_LABEL, names=tuple(label_names))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise UserError(f"{model_dir / EXPORT_INFO_FILE} is unreadable ({type(error).__name__}); export the run again") \
            from None


class ExportedModel:
    """A model written by `pipeline.runs.export`, used through its SavedModel signatures only."""

    chunk_size = 64  # texts per call; the graph pads each call to its longest text

    def __init__(self, model_dir: Path):
        import tensorflow as tf
        import tensorflow_text  # noqa: F401  (registers the tokenizer's ops before loading)

        from pipeline.base.devices import known_tensorflow_noise_dropped

        try:
            loaded = tf.saved_model.load(str(model_dir))
            self._serve = loaded.signatures[SERVING_SIGNATURE]
            names = loaded.signatures[LABELS_SIGNATURE]()["labels"].numpy()
            with known_tensorflow_noise_dropped():  # the first call prints a oneDNN note; later ones do not
                self._serve(texts=tf.constant(["warm-up"]))
        except (OSError, KeyError, ValueError, tf.errors.OpError) as error:
            raise UserError(f"{model_dir} could not be loaded as an exported model ({type(error).__name__}); "
                            f"export the run again") from None
        self._model = loaded  # the signatures hold only weak references to it
        self._tf = tf
        self.label_names = [name.decode("utf-8") for name in names]
        self.model_dir = model_dir

    @functools.cached_property
    def target(self) -> Target:
        """Read when first asked (the export's own check loads the model before export_info.json is written)."""
        return exported_target(self.model_dir, self.label_names)

    def predict(self, texts: list[str]) -> np.ndarray:
        outputs = self._serve(texts=self._tf.constant(texts, dtype=self._tf.string))
        # One output: "probabilities" of classes or labels, or "predictions" of a number.
        values: np.ndarray = next(iter(outputs.values())).numpy()
        return values
