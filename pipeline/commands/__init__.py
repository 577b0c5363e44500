"""What users call: the `run`, `extract` and `sweep` commands (`run`, `beam_extract`, `sweep`), `export` and
`predict` (`export`, `predict`), the notebooks' helpers (`explore`) and the argument parsing (`cli`).

May import: base, data, encoders, features, evaluation, training, runs.
"""
