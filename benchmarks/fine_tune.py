"""Fine-tuning cost on this machine: training speed and peak resident memory of the embedded encoder at the
issue's worst case (batch 32, every text max_seq_length tokens long), and speed on demo-length texts.

Each case runs in its own process so that its peak resident memory is its own. Prints texts/s (first
step, which traces the graph, left out) and the peak RSS (docs/benchmarks.md, "Fine-tuning").

    .venv/bin/python benchmarks/fine_tune.py [--steps 12] [--max-seq-length 128]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def measure(steps: int, batch_size: int, tokens: int) -> dict[str, float]:
    """`steps` training steps on batches of `batch_size` texts of exactly `tokens` tokens each."""
    import numpy as np

    from pipeline.base.config import RunConfig
    from pipeline.base.devices import start_tensorflow

    start_tensorflow()
    from pipeline.encoders.encoder import load_encoder
    from pipeline.training import fine_tune
    from pipeline.training.head import compile_head

    encoder = load_encoder(RunConfig().encoder)
    settings = fine_tune.FineTuneSettings(epochs=1, batch_size=batch_size, learning_rate=5e-5, dropout_rate=0.1,
                                          weight_decay=0.01, hidden_units=(), seed=0)
    model, _ = fine_tune.build_fine_tune_model(encoder, fine_tune.load_trainable_encoder(encoder), pooling="mean",
                                               layers=(-1,), combine="concat", num_classes=2, settings=settings)
    schedule = fine_tune.learning_rate_schedule(settings, steps)
    compile_head(model, 2, optimizer=fine_tune.make_optimizer(settings, schedule, loss_scaling=False))
    generator = np.random.default_rng(0)
    rows = [generator.integers(1000, 20000, tokens - 2).tolist() for _ in range(batch_size * steps)]
    split = fine_tune.TokenizedSplit(rows, generator.integers(0, 2, len(rows)), max_seq_length=tokens, cls_id=101, sep_id=102)
    batches = [np.arange(start, start + batch_size) for start in range(0, len(rows), batch_size)]
    step_ends: list[float] = []
    timer = type("StepTimer", (fine_tune.keras.callbacks.Callback,), {
        "on_train_batch_end": lambda self, batch, logs=None: step_ends.append(time.perf_counter())})()
    model.fit(split.dataset(batches, with_labels=True), epochs=1, verbose=0, callbacks=[timer])
    seconds = step_ends[-1] - step_ends[0]
    return {"texts_per_second": batch_size * (steps - 1) / seconds,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-seq-length", type=int, default=128)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # run one case in this process, print JSON
    arguments = parser.parse_args()
    if arguments.one:
        print(json.dumps(measure(arguments.steps, arguments.batch_size, arguments.one)))
        return
    for tokens in (arguments.max_seq_length, 28):  # 28: the demo's mean length with [CLS] and [SEP]
        output = subprocess.run([sys.executable, __file__, "--steps", str(arguments.steps), "--batch-size",
                                 str(arguments.batch_size), "--one", str(tokens)], capture_output=True, text=True, check=True)
        result = json.loads(output.stdout.strip().splitlines()[-1])
        print(f"batch {arguments.batch_size} x {tokens} tokens: {result['texts_per_second']:.1f} texts/s, "
              f"peak RSS {result['peak_rss_mib']:.0f} MiB")


if __name__ == "__main__":
    main()
