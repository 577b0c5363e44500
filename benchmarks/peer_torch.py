"""The PyTorch peer of benchmarks/extract.py: Hugging Face `BertModel` the sentence-transformers way.

Runs in its own virtual environment (.venv-peers, from benchmarks/requirements-peers.txt), started by
extract.py as a subprocess; it never imports TensorFlow or the pipeline. For each text set it
tokenizes with the checkpoint's fast tokenizer, sorts the texts by length (longest first, as
sentence-transformers' `encode` does), pads each batch to its own longest row, runs the encoder under
`torch.inference_mode()` with a fixed number of threads, mean-pools over real tokens and keeps the
vectors in memory. Tokenization is inside the timed part, as for the other ways.

    .venv-peers/bin/python benchmarks/peer_torch.py --model-dir DIR --request request.json --output-dir DIR

request.json: {"repeats": 2, "threads": 2, "batch_size": 32, "precisions": ["float32", "bfloat16"],
               "sets": {"short": {"texts": [...], "max_seq_length": 128}, ...}}
Prints one JSON line: {"torch": version, "sets": {"short": {"seconds": [..], "tokens": N},
"short-bfloat16": {...}, ...}} and writes each set's vectors (in the order given) to
<output-dir>/<set>.npy (<set>-bfloat16.npy for bfloat16 autocast) for the equality check.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def encode(texts, tokenizer, model, *, max_seq_length, batch_size, torch, autocast_bfloat16=False):
    """Mean-pooled vectors in the order given, and the number of real tokens. `autocast_bfloat16` runs the
    model under torch.autocast("cpu", dtype=torch.bfloat16), PyTorch's one-line bfloat16 switch."""
    order = sorted(range(len(texts)), key=lambda index: -len(texts[index]))
    vectors = np.empty((len(texts), model.config.hidden_size), dtype=np.float32)
    tokens = 0
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast_bfloat16):
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            batch = tokenizer([texts[index] for index in rows], padding=True, truncation=True,
                              max_length=max_seq_length, return_tensors="pt")
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            hidden = hidden.float()  # pooling sums in float32, as the pipeline's
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            vectors[rows] = pooled.numpy()
            tokens += int(batch["attention_mask"].sum())
    return vectors, tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", required=True, help="Hugging Face checkpoint folder (config, safetensors, tokenizer)")
    parser.add_argument("--request", required=True, help="JSON file: texts per set, repeats, threads, batch size")
    parser.add_argument("--output-dir", required=True, help="where each set's vectors are written as .npy")
    arguments = parser.parse_args()
    request = json.loads(Path(arguments.request).read_text(encoding="utf-8"))

    import torch
    from transformers import AutoTokenizer, BertModel

    torch.set_num_threads(int(request["threads"]))
    tokenizer = AutoTokenizer.from_pretrained(arguments.model_dir)
    model = BertModel.from_pretrained(arguments.model_dir, add_pooling_layer=False).eval()
    report = {"torch": torch.__version__, "threads": torch.get_num_threads(), "batch_size": request["batch_size"], "sets": {}}
    for name, text_set in request["sets"].items():
        for precision in request.get("precisions", ["float32"]):
            seconds = []
            for _ in range(int(request["repeats"])):
                started = time.perf_counter()
                vectors, tokens = encode(text_set["texts"], tokenizer, model, max_seq_length=text_set["max_seq_length"],
                                         batch_size=int(request["batch_size"]), torch=torch,
                                         autocast_bfloat16=precision == "bfloat16")
                seconds.append(time.perf_counter() - started)
            suffix = "" if precision == "float32" else f"-{precision}"
            np.save(Path(arguments.output_dir) / f"{name}{suffix}.npy", vectors, allow_pickle=False)
            report["sets"][name + suffix] = {"seconds": seconds, "tokens": tokens}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
