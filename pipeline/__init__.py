"""BERT feature pipeline: frozen TF-Hub encoder -> cached pooled features -> small Keras head.

One folder per stage, in the order the data flows; each imports only the folders below it (its
`__init__` says which) and `tokenization/`:

    base/        errors, files, config, devices: what every stage may use
    data/        tables, presets, label mapping, splits
    encoders/    a TF-Hub BERT in one calling convention; the converter; reduced precision
    features/    texts -> pooled vectors: token ids, pooling, the local and Beam runners, the cache
    evaluation/  metrics, the probe, plots, TensorBoard logging
    training/    heads, fitting on cached features, fine-tuning
    runs/        a finished run on disk and in memory; the exported model's format
    commands/    run, extract, sweep, export, predict, the notebooks' helpers, the command line
"""
