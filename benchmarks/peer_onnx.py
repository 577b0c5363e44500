"""The ONNX Runtime peer of benchmarks/extract.py: the same checkpoint exported to ONNX, in float32 and int8.

What sentence-transformers' backend="onnx" runs: the Hugging Face `BertModel` exported with torch.onnx,
run by an ONNX Runtime CPU session at its default graph optimisation (attention, layer-norm and GELU
fusions), and for int8 the same file passed once through `onnxruntime.quantization.quantize_dynamic`
(int8 weights, activations quantized per call). Runs in .venv-peers, started by extract.py as a
subprocess; never imports TensorFlow or the pipeline. Export and quantization happen before the clock
starts, as they do once per model for a user. Batching is the PyTorch peer's: texts sorted by length
(longest first), each batch padded to its own longest row, fast tokenizer inside the timed part,
mean pooling over real tokens in float32.

    .venv-peers/bin/python benchmarks/peer_onnx.py --model-dir DIR --request request.json --output-dir DIR

request.json as for peer_torch.py, with "precisions": ["float32", "int8"]. Prints one JSON line:
{"onnxruntime": version, "sets": {"short-onnx": {"seconds": [..], "cpu_seconds": [..], "tokens": N},
"short-onnx-int8": {...}}} and
writes each set's vectors (in the order given) to <output-dir>/<set>-onnx.npy and <set>-onnx-int8.npy.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")


def export_float32(model_dir: str, onnx_path: Path) -> None:
    """The checkpoint's BertModel as ONNX, batch and sequence dimensions dynamic, last hidden state out."""
    import torch
    from transformers import BertModel

    class LastHiddenState(torch.nn.Module):
        """Inputs by name (BertModel.forward's positional order is not the three ids'), one tensor out."""

        def __init__(self) -> None:
            super().__init__()
            self.bert = BertModel.from_pretrained(model_dir, add_pooling_layer=False).eval()

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state

    model = LastHiddenState().eval()
    example = tuple(torch.ones((2, 8), dtype=torch.int64) for _ in INPUT_NAMES)
    dynamic = {name: {0: "batch", 1: "sequence"} for name in INPUT_NAMES}
    dynamic["last_hidden_state"] = {0: "batch", 1: "sequence"}
    with torch.inference_mode():
        torch.onnx.export(model, example, str(onnx_path), input_names=list(INPUT_NAMES),
                          output_names=["last_hidden_state"], dynamic_axes=dynamic, opset_version=17, dynamo=False)


# quantize_dynamic's settings for each int8 way: "int8" is its default (signed weights, one scale per tensor), the
# usual two-line path; "int8-pc" adds one scale per output channel and 7-bit weights (reduce_range), the fix its
# documentation gives for CPUs without VNNI, where the default's 16-bit intermediate sums saturate.
INT8_SETTINGS = {"int8": {}, "int8-pc": {"per_channel": True, "reduce_range": True}}


def quantized_int8(onnx_path: Path, precision: str) -> Path:
    """The float32 model passed once through quantize_dynamic with int8 weights, as INT8_SETTINGS[precision] says."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    int8_path = onnx_path.with_name(f"{onnx_path.stem}-{precision}.onnx")
    quantize_dynamic(str(onnx_path), str(int8_path), weight_type=QuantType.QInt8, **INT8_SETTINGS[precision])
    return int8_path


def encode(texts, tokenizer, session, *, max_seq_length: int, batch_size: int, hidden_size: int):
    """Mean-pooled vectors in the order given, and the number of real tokens."""
    order = sorted(range(len(texts)), key=lambda index: -len(texts[index]))
    vectors = np.empty((len(texts), hidden_size), dtype=np.float32)
    tokens = 0
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        batch = tokenizer([texts[index] for index in rows], padding=True, truncation=True, max_length=max_seq_length,
                          return_tensors="np")
        feeds = {name: batch[name].astype(np.int64) for name in INPUT_NAMES}
        hidden = session.run(["last_hidden_state"], feeds)[0]
        mask = batch["attention_mask"][:, :, np.newaxis].astype(np.float32)
        vectors[rows] = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
        tokens += int(batch["attention_mask"].sum())
    return vectors, tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", required=True, help="Hugging Face checkpoint folder (config, safetensors, tokenizer)")
    parser.add_argument("--request", required=True, help="JSON file: texts per set, repeats, threads, batch size")
    parser.add_argument("--output-dir", required=True, help="where the ONNX files and each set's vectors are written")
    arguments = parser.parse_args()
    request = json.loads(Path(arguments.request).read_text(encoding="utf-8"))

    import onnxruntime
    from transformers import AutoConfig, AutoTokenizer

    output_dir = Path(arguments.output_dir)
    float32_path = output_dir / "model.onnx"
    export_float32(arguments.model_dir, float32_path)
    paths = {"float32": float32_path}
    for precision in request.get("precisions", ["float32"]):
        if precision in INT8_SETTINGS:
            paths[precision] = quantized_int8(float32_path, precision)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = int(request["threads"])
    options.inter_op_num_threads = 1
    tokenizer = AutoTokenizer.from_pretrained(arguments.model_dir)
    hidden_size = AutoConfig.from_pretrained(arguments.model_dir).hidden_size
    report = {"onnxruntime": onnxruntime.__version__, "threads": int(request["threads"]),
              "batch_size": request["batch_size"], "sets": {}}
    for precision in request.get("precisions", ["float32"]):
        session = onnxruntime.InferenceSession(str(paths[precision]), options, providers=["CPUExecutionProvider"])
        for name, text_set in request["sets"].items():
            seconds, cpu_seconds = [], []
            for _ in range(int(request["repeats"])):
                started, cpu_started = time.perf_counter(), time.process_time()
                vectors, tokens = encode(text_set["texts"], tokenizer, session, max_seq_length=text_set["max_seq_length"],
                                         batch_size=int(request["batch_size"]), hidden_size=hidden_size)
                seconds.append(time.perf_counter() - started)
                cpu_seconds.append(time.process_time() - cpu_started)
            key = f"{name}-onnx" + ("" if precision == "float32" else f"-{precision}")
            np.save(output_dir / f"{key}.npy", vectors, allow_pickle=False)
            report["sets"][key] = {"seconds": seconds, "cpu_seconds": cpu_seconds, "tokens": tokens}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
