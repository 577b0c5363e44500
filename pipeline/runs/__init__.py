"""The shared core: what `run`, `extract`, `sweep`, `export` and `predict` do, as plain functions of one settings
object (`RunConfig`), called by the command line and by the Python API alike. The run folder's format (`run_folder`),
its encoder and head loaded for prediction (`run_model`), the exported SavedModel's format (`exported_model`); the
data read and the features settled and extracted (`prepare`), a run trained, scored and written (`run`), the lines
it ends with (`summary`), extraction with Apache Beam (`beam_extract`), the sweep (`sweep`), the export (`export`),
prediction (`predict`), and the notebooks' helpers (`explore`).

May import: base, data, encoders, features, evaluation, training.
"""
