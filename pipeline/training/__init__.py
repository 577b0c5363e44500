"""Heads and their training: the Keras heads and the ensemble's average (`head`, their output layer and loss asked
of the target's kind), fitting on cached features (`train`, with a progress bar per head from `progress`; a sweep's
trials in step, `in_step`), and fine-tuning the encoder with its head (`fine_tune`, batched by `token_batches`).

May import: base, data, encoders, features, evaluation.
"""
