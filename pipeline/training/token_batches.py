"""Length-bucketed batches of token ids for fine-tuning: the CPU spends its time on real tokens.

Each epoch shuffles the rows with a generator seeded by (seed, epoch), cuts the shuffled order into
pools of BUCKET_POOL_BATCHES batches, sorts each pool by length, cuts it into batches and shuffles
the batch order. A batch is padded only to its own longest row. Rows still meet different
neighbours every epoch, and the order depends on nothing but the seed and the epoch number, so a
run resumed at epoch k sees exactly the batches an uninterrupted run saw. No TensorFlow here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Batches per sorted pool: large enough that a pool's rows have similar lengths (little padding),
# small enough that the order stays random. 50 is the figure common in bucketing samplers.
BUCKET_POOL_BATCHES = 50


def epoch_batches(lengths: Sequence[int] | np.ndarray, batch_size: int, *, seed: int, epoch: int) -> list[np.ndarray]:
    """Row indices of every batch of one training epoch; each row appears exactly once."""
    lengths = np.asarray(lengths)
    generator = np.random.default_rng([seed, epoch])
    order = generator.permutation(len(lengths))
    pool_rows = batch_size * BUCKET_POOL_BATCHES
    batches: list[np.ndarray] = []
    for start in range(0, len(order), pool_rows):
        pool = order[start : start + pool_rows]
        pool = pool[np.argsort(lengths[pool], kind="stable")]
        batches += [pool[index : index + batch_size] for index in range(0, len(pool), batch_size)]
    return [batches[index] for index in generator.permutation(len(batches))]


def sorted_batches(lengths: Sequence[int] | np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Row indices for evaluation: every row once, shortest first, in batches of similar length."""
    order = np.argsort(np.asarray(lengths), kind="stable")
    return [order[index : index + batch_size] for index in range(0, len(order), batch_size)]


def padding_fraction(lengths: Sequence[int] | np.ndarray, batches: list[np.ndarray]) -> float:
    """Share of the encoder's token positions that are padding when each batch is padded to its longest row."""
    lengths = np.asarray(lengths)
    real = sum(int(lengths[batch].sum()) for batch in batches)
    padded = sum(int(lengths[batch].max()) * len(batch) for batch in batches if len(batch))
    return 0.0 if padded == 0 else 1.0 - real / padded
