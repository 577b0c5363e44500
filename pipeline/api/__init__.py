"""The public Python API, for notebooks and scikit-learn: texts and DataFrames in, features and classifiers out.

`inputs` turns lists, pandas Series and DataFrame columns and NumPy arrays into checked texts and labels;
`cached_features` serves any texts from the feature cache; `feature_extractor` is FeatureExtractor, a
scikit-learn transformer; `text_classifier` is TextClassifier, a scikit-learn classifier, and `load_run`. They
call the shared core the command line calls (`pipeline.runs`), with the same settings object, so a fit writes the
run folder `run` writes. The command line does not import this folder, nor this folder the command line;
`pipeline/__init__.py` hands its three names on lazily.

May import: base, data, encoders, features, evaluation, training, runs.
"""
