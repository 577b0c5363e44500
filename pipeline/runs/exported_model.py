"""The exported model's on-disk format: a SavedModel with three signatures and `export_info.json`.

`export` writes it (pipeline.runs.export); `predict` and the export's own check load it here, through its
signatures only, as any user would (TensorFlow and tensorflow-text, nothing of this package).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.base.errors import UserError

EXPORT_INFO_FILE = "export_info.json"
EXPORT_FORMAT = "pipeline-end-to-end-savedmodel"
SERVING_SIGNATURE = "serving_default"
LABELS_SIGNATURE = "labels"
TOKENIZE_SIGNATURE = "tokenize"


def looks_like_exported_model(folder: Path) -> bool:
    return (folder / "saved_model.pb").is_file() and (folder / EXPORT_INFO_FILE).is_file()


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

    def predict(self, texts: list[str]) -> np.ndarray:
        probabilities: np.ndarray = self._serve(texts=self._tf.constant(texts, dtype=self._tf.string))["probabilities"].numpy()
        return probabilities
