"""Heads and their training: the Keras heads and the ensemble's average (`head`), fitting on cached features
(`train`), and fine-tuning the encoder with its head (`fine_tune`, batched by `token_batches`).

May import: base, encoders, features, evaluation.
"""
