"""What one epoch of the default head costs, against the arithmetic it cannot avoid: docs/benchmarks.md#training-the-heads.

    .venv/bin/python benchmarks/head_epoch.py                 # the demo's shape: 10,246 rows of 2,304 features
    .venv/bin/python benchmarks/head_epoch.py --xla           # also the epoch compiled by XLA

One process, the ways taking turns round after round (so a drift of the machine's speed touches all alike),
the fastest round of each counting; synthetic features (only the shapes matter for speed):
  products        the default head's two large products at every step of batch 64, alone in a graph loop:
                  [64, width] x [width, 256] forward and its weight gradient [width, 64] x [64, 256]
  products+adam   the same, and ResourceApplyAdam on the [width, 256] kernel: the floor of an epoch, as
                  Adam reads and writes the kernel and its two moments at every step
  epoch           pipeline.training.train.EpochRunner, one default `mlp` head (AdamW, dropout), alone
  epoch x3        three such heads side by side in threads, as `run` trains its ensemble: seconds per head-epoch
  xla, xla x3     (--xla) the same epoch with jit_compile=True; its loop takes full batches only, so the
                  rows are cut to a multiple of 64 for these two
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable

import numpy as np

from pipeline.base.devices import start_tensorflow

BATCH = 64
HIDDEN = 256


def epoch_flops(rows: int, width: int) -> int:
    """The two large products of an epoch (forward and weight gradient, 2 FLOP a multiply-add), full batches."""
    return 2 * 2 * (rows // BATCH * BATCH) * width * HIDDEN


def products_loop(features: np.ndarray, with_adam: bool) -> Callable[[], object]:
    """One epoch's worth of the head's large products (and Adam's update of their kernel), nothing else."""
    import tensorflow as tf

    steps = len(features) // BATCH
    batches = tf.constant(features[: steps * BATCH].reshape(steps, BATCH, features.shape[1]))
    generator = np.random.default_rng(1)
    kernel = tf.Variable(generator.standard_normal((features.shape[1], HIDDEN)).astype(np.float32) * 0.02)
    moment, velocity = tf.Variable(tf.zeros_like(kernel)), tf.Variable(tf.zeros_like(kernel))

    def step(index: tf.Tensor, total: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        hidden = tf.matmul(batches[index], kernel)
        gradient = tf.matmul(batches[index], hidden, transpose_a=True)
        if with_adam:
            tf.raw_ops.ResourceApplyAdam(var=kernel.handle, m=moment.handle, v=velocity.handle, beta1_power=0.9,
                                         beta2_power=0.999, lr=1e-9, beta1=0.9, beta2=0.999, epsilon=1e-7, grad=gradient)
        return index + 1, total + gradient[0, 0]

    loop = tf.function(lambda: tf.while_loop(lambda index, _: index < steps, step, (0, 0.0))[1], autograph=False)
    return lambda: loop().numpy()


def epoch_runners(features: np.ndarray, heads: int, xla: bool) -> list[Callable[[], object]]:
    """`heads` default heads on the same rows, each an EpochRunner with its own order; XLA compiles the epoch."""
    import tensorflow as tf

    from pipeline.training.head import build_mlp_head, compile_head
    from pipeline.training.train import EpochRunner, TrainingRows

    if xla:
        features = features[: len(features) // BATCH * BATCH]
    labels = (features[:, :8].sum(axis=1) > 0).astype(np.float32)
    rows, runs = TrainingRows(features), []
    for head in range(heads):
        model = compile_head(build_mlp_head(features, 2, seed=42 + 1000 * head), 2, learning_rate=1e-3,
                             weight_decay=0.1)
        runner = EpochRunner(model, features, labels, np.ones(len(labels), np.float32), BATCH, seed=head, rows=rows)
        if xla:
            runner._run = tf.function(full_batches_epoch(runner), autograph=False, jit_compile=True)
        order = np.random.default_rng(head).permutation(len(labels))
        runs.append(lambda runner=runner, order=order: runner.run(order))
    return runs


def full_batches_epoch(runner: object) -> Callable[..., object]:
    """EpochRunner's epoch with every batch of static shape (XLA needs static shapes; the rows are a multiple of 64)."""
    import tensorflow as tf

    def epoch(features: tf.Tensor, labels: tf.Tensor, weights: tf.Tensor, order: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        steps = order.shape[0] // BATCH
        features, labels, weights = (tf.reshape(tf.gather(tensor, order), [steps, BATCH, *tensor.shape[1:]])
                                     for tensor in (features, labels, weights))
        model = runner.model  # type: ignore[attr-defined]

        def step(index: tf.Tensor, loss_sum: tf.Tensor, outputs: tf.TensorArray) -> tuple[object, ...]:
            x = features[index]
            with tf.GradientTape() as tape:
                predicted = runner._forward(x, model.optimizer.iterations)  # type: ignore[attr-defined]
                loss = model.compute_loss(x, labels[index], predicted, weights[index])
            runner.fused.apply(tape.gradient(loss, runner.fused.variables))  # type: ignore[attr-defined]
            return index + 1, loss_sum + loss * BATCH, outputs.write(index, predicted)

        _, loss_sum, outputs = tf.while_loop(lambda index, *_: index < steps, step,
                                             (0, 0.0, tf.TensorArray(tf.float32, size=steps)))
        return loss_sum / (steps * BATCH), outputs.concat()

    return epoch


def side_by_side(runs: list[Callable[[], object]]) -> None:
    threads = [threading.Thread(target=run) for run in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10246, help="training rows (the demo's: 10,246)")
    parser.add_argument("--width", type=int, default=2304, help="features a row (the demo's: 3 layers x 768)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every way; the fastest counts")
    parser.add_argument("--xla", action="store_true", help="also the epoch compiled by XLA")
    arguments = parser.parse_args()
    start_tensorflow(verbose=False)
    features = np.random.default_rng(0).standard_normal((arguments.rows, arguments.width)).astype(np.float32)
    ways: dict[str, tuple[Callable[[], object], int]] = {
        "products": (products_loop(features, with_adam=False), 1),
        "products+adam": (products_loop(features, with_adam=True), 1),
    }
    for label, xla in (("epoch", False), ("xla", True)) if arguments.xla else (("epoch", False),):
        ways[label] = (epoch_runners(features, 1, xla)[0], 1)
        three = epoch_runners(features, 3, xla)
        ways[f"{label} x3"] = (lambda three=three: side_by_side(three), 3)
    first: dict[str, float] = {}
    best: dict[str, float] = {}
    for round_index in range(arguments.rounds + 1):  # round 0 traces (or compiles) and is shown apart
        for label, (run, heads) in ways.items():
            started = time.perf_counter()
            run()
            seconds = (time.perf_counter() - started) / heads
            if round_index == 0:
                first[label] = seconds
            else:
                best[label] = min(seconds, best.get(label, float("inf")))
    flops = epoch_flops(arguments.rows, arguments.width)
    floor = best["products+adam"]
    print(f"{arguments.rows} rows x {arguments.width} features, batch {BATCH}, {HIDDEN} hidden units; "
          f"fastest of {arguments.rounds} rounds; seconds per head-epoch")
    print(f"{'way':<15} {'first':>7} {'seconds':>8} {'vs floor':>9}")
    for label in ways:
        print(f"{label:<15} {first[label]:7.3f} {best[label]:8.3f} {best[label] / floor:8.2f}x")
    print(f"products: {flops / best['products'] / 1e9:.0f} GFLOP/s ({flops / 1e9:.1f} GFLOP an epoch); "
          f"the floor (products+adam) is {floor:.3f} s an epoch")


if __name__ == "__main__":
    main()
