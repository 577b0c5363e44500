"""A finished run, on disk and in memory: the run folder's format (`run_folder`), its encoder and head loaded
for prediction (`run_model`), and the exported SavedModel's format (`exported_model`).

May import: base, encoders, features, training.
"""
