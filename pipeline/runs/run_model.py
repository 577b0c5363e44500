"""A finished run's encoder and head, loaded into memory and used through the pipeline's own code.

`predict` uses it on a run folder, and `export` checks the exported model against it: both must give
the probabilities the run itself gave on its test split.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tf_keras as keras

from pipeline.base.config import EMBEDDED_ENCODER
from pipeline.base.errors import UserError
from pipeline.encoders.encoder import Encoder, load_encoder
from pipeline.features.encoder_io import feature_size
from pipeline.features.extraction import encode_texts
from pipeline.runs.run_folder import FinishedRun
from pipeline.training.head import predict_probabilities

log = logging.getLogger(__name__)


@dataclass
class RunModel:
    """A run's encoder and head in memory; `predict` is the pipeline's own path (FullTokenizer + cache code)."""

    run: FinishedRun
    encoder: Encoder
    head: keras.Model

    @property
    def label_names(self) -> list[str]:
        return self.run.label_names

    def predict(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """[N, K] float32 probabilities (a number: [N, 1] predictions), computed exactly as a run computes its test
        predictions."""
        if not texts:
            return np.zeros((0, len(self.label_names)), np.float32)
        features = encode_texts(list(texts), self.encoder, pooling=self.run.pooling, layers=self.run.layers,
                                combine=self.run.combine,
                                max_seq_length=self.run.max_seq_length, long_texts=self.run.long_texts,
                                batch_size=batch_size)
        return predict_probabilities(self.head, features, kind=self.run.target.kind)


def load_run_model(run: FinishedRun, *, precision: str | None = None) -> RunModel:
    """Loads the encoder the run used, computing in the run's precision unless `precision` says otherwise, and
    its head. TensorFlow must already be started."""
    encoder = load_encoder(_encoder_location(run), precision=precision or run.precision)
    recorded = run.metrics.get("fine_tune", {}).get("encoder_fingerprint") if run.fine_tuned else run.encoder_info.get("fingerprint")
    if recorded and recorded != encoder.fingerprint:
        log.warning("encoder %s differs from the one run %s was trained with (its files changed); "
                    "predictions may not match the run's", encoder.model_dir, run.run_dir)
    head = keras.models.load_model(str(run.head_path), compile=False)
    input_width = int(head.inputs[0].shape[-1])
    expected_width = feature_size(encoder.hidden_size, run.layers, run.combine)
    if input_width != expected_width:
        raise UserError(
            f"the head in {run.run_dir} takes {input_width} features but encoder {encoder.model_dir} gives "
            f"{expected_width}; the run's encoder is no longer where it was, pass the run folder of this encoder"
        )
    return RunModel(run=run, encoder=encoder, head=head)


def _encoder_location(run: FinishedRun) -> str:
    """A fine-tuned run's own encoder folder; else the folder the run loaded, when it is still there, else the
    recorded handle (the embedded name converts the model again, a URL is looked up in the TF-Hub cache)."""
    if run.fine_tuned:
        return str(run.tuned_encoder_dir)
    model_dir = run.encoder_info.get("model_dir")
    if run.encoder_handle != EMBEDDED_ENCODER and model_dir and (Path(model_dir) / "saved_model.pb").is_file():
        return str(model_dir)
    return run.encoder_handle
