"""The command line only (`cli`): parsing arguments into one settings object, calling the shared core
(pipeline.runs), printing what it returns, and the exit status.

May import: base, data, encoders, features, evaluation, training, runs.
"""
