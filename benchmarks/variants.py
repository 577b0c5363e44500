"""What each extraction idea gives, measured side by side: docs/benchmarks-history.md#what-was-tried-and-what-it-gave.

    .venv/bin/python benchmarks/variants.py --set short --texts 2000
    .venv/bin/python benchmarks/variants.py --set reviews --texts 1000 --inter-op 1

The texts are tokenized once; then every variant encodes all of them (sorted by length, mean pooling,
the embedded encoder) and the variants take turns, round after round, so a change in the machine's
load touches all alike. Reported per variant: the fastest round's wall time, and CPU seconds per
1,000 real tokens (less sensitive to other processes on a shared machine). The first round of a
variant includes its tracing or compilation and is shown apart.

  pipeline   what pipeline.features.extraction does: at most --batch-size rows and TOKEN_BUDGET padded tokens per
             batch, each padded to its own longest row
  batchN     always N rows per batch (the pipeline before the token budget: batch64)
  budgetN    a token budget: as many rows as fit in N padded tokens, at most --batch-size (fewer long texts)
  xla8       the pipeline's batches, jit_compile=True on the encoder call, widths rounded up to a multiple
             of 8 (so XLA compiles a bounded number of shapes)
  prefetch   the pipeline's batches, the next one packed in a thread while the encoder runs (tf.data-style)
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from pipeline.base.devices import start_tensorflow


def batches_by_rows(lengths, rows):
    return [(start, min(start + rows, len(lengths))) for start in range(0, len(lengths), rows)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", choices=("short", "reviews"), default="short")
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--inter-op", type=int, default=0, help="TensorFlow inter-op threads (0: its default)")
    parser.add_argument("--intra-op", type=int, default=0, help="TensorFlow intra-op threads (0: its default)")
    parser.add_argument("--only", default="pipeline,batch64,xla8,prefetch",
                        help="comma-separated variants: pipeline, batchN, budgetN, xla8, prefetch")
    arguments = parser.parse_args()
    start_tensorflow()
    import tensorflow as tf

    if arguments.inter_op:
        tf.config.threading.set_inter_op_parallelism_threads(arguments.inter_op)
    if arguments.intra_op:
        tf.config.threading.set_intra_op_parallelism_threads(arguments.intra_op)

    import extract as benchmark

    from pipeline.encoders.encoder import load_encoder
    from pipeline.features.encoder_io import pool, token_ids
    from pipeline.features.extraction import TOKEN_BUDGET, _batch_bounds, make_feature_function
    from tokenization.packing import pack_inputs

    encoder = load_encoder(benchmark.ENCODER)
    snippets = benchmark.demo_snippets()
    texts = (benchmark.short_texts if arguments.set == "short" else benchmark.review_texts)(snippets, arguments.texts, 0)
    ids = sorted((token_ids(encoder.tokenizer, text, 128) for text in texts), key=len)
    lengths = [len(row) for row in ids]
    real_tokens = sum(lengths) + 2 * len(lengths)
    cls_id, sep_id = encoder.tokenizer.vocab["[CLS]"], encoder.tokenizer.vocab["[SEP]"]
    spec = tf.TensorSpec([None, None], tf.int32)

    @tf.function(input_signature=[spec, spec, spec], jit_compile=True)
    def xla_features(word_ids, mask, type_ids):
        return tf.cast(pool(encoder(word_ids, mask, type_ids), mask, "mean"), tf.float32)

    plain_features = make_feature_function(encoder, "mean")

    def pack(bounds, multiple=1):
        start, end = bounds
        packed = pack_inputs(ids[start:end], max_seq_length=128, cls_id=cls_id, sep_id=sep_id)
        width = packed["input_word_ids"].shape[1]
        padded = -(-width // multiple) * multiple
        if padded != width:
            packed = {name: np.pad(value, [(0, 0), (0, padded - width)]) for name, value in packed.items()}
        return [tf.constant(packed[name]) for name in ("input_word_ids", "input_mask", "input_type_ids")]

    def run(bounds, function, multiple=1):
        return np.concatenate([function(*pack(bound, multiple)).numpy() for bound in bounds])

    def run_prefetch(bounds, function):
        outputs = []
        with ThreadPoolExecutor(max_workers=1) as pool_executor:
            pending = pool_executor.submit(pack, bounds[0])
            for index in range(len(bounds)):
                inputs = pending.result()
                if index + 1 < len(bounds):
                    pending = pool_executor.submit(pack, bounds[index + 1])
                outputs.append(function(*inputs).numpy())
        return np.concatenate(outputs)

    rows = _batch_bounds(lengths, arguments.batch_size, TOKEN_BUDGET)  # the pipeline's own batches

    def variant(name):
        if name == "pipeline":
            return rows, lambda: run(rows, plain_features)
        if name == "xla8":
            return rows, lambda: run(rows, xla_features, multiple=8)
        if name == "prefetch":
            return rows, lambda: run_prefetch(rows, plain_features)
        if name.startswith("batch"):
            bounds = batches_by_rows(lengths, int(name[5:]))
        elif name.startswith("budget"):
            bounds = _batch_bounds(lengths, arguments.batch_size, int(name[6:]))  # the pipeline's rule, another budget
        else:
            raise SystemExit(f"unknown variant {name}")
        return bounds, lambda: run(bounds, plain_features)

    chosen = {name: variant(name) for name in arguments.only.split(",")}
    variants = {name: function for name, (_, function) in chosen.items()}
    def padded_tokens(name, bounds):
        multiple = 8 if name == "xla8" else 1
        return sum((end - start) * -(-(lengths[end - 1] + 2) // multiple) * multiple for start, end in bounds)

    padded = {name: padded_tokens(name, bounds) for name, (bounds, _) in chosen.items()}
    print(benchmark.machine_line())
    print(f"{arguments.set}: {len(texts)} texts, {real_tokens} real tokens; padded tokens: "
          + ", ".join(f"{name} {count} (+{count / real_tokens - 1:.1%})" for name, count in padded.items())
          + f"; inter-op {tf.config.threading.get_inter_op_parallelism_threads()}, "
            f"intra-op {tf.config.threading.get_intra_op_parallelism_threads()} (0 = TensorFlow's choice)", flush=True)
    reference = None
    first, wall, cpu = {}, {}, {}
    for round_index in range(arguments.rounds):
        for name, variant in variants.items():
            wall_started, cpu_started = time.perf_counter(), time.process_time()
            vectors = variant()
            seconds, cpu_seconds = time.perf_counter() - wall_started, time.process_time() - cpu_started
            if round_index == 0:
                first[name] = seconds
            else:
                wall[name] = min(wall.get(name, seconds), seconds)
                cpu[name] = min(cpu.get(name, cpu_seconds), cpu_seconds)
            reference = vectors if reference is None else reference
            difference = float(np.abs(vectors - reference).max())
            if difference > 1e-4:
                print(f"warning: {name} differs from the first variant by {difference:.1e}")
    print(f"{'variant':<10} {'first s':>8} {'best s':>8} {'tokens/s':>9} {'cpu s/1k tokens':>16}")
    for name in variants:
        print(f"{name:<10} {first[name]:>8.2f} {wall[name]:>8.2f} {real_tokens / wall[name]:>9.0f} "
              f"{cpu[name] / real_tokens * 1000:>16.3f}")
    print(f"load average at the end: {' '.join(f'{value:.2f}' for value in __import__('os').getloadavg())}")


if __name__ == "__main__":
    main()
