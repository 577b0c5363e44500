"""BERT tokenization in pure Python (no TensorFlow): basic + WordPiece tokenization and input packing.

    tokenizer = FullTokenizer("vocab.txt", do_lower_case=True)
    ids = [tokenizer.encode(text) for text in texts]
    inputs = pack_inputs(ids, max_seq_length=128, cls_id=tokenizer.vocab["[CLS]"],
                         sep_id=tokenizer.vocab["[SEP]"], pad_id=tokenizer.vocab["[PAD]"])
"""

from __future__ import annotations

from tokenization.basic import BasicTokenizer
from tokenization.full_tokenizer import FullTokenizer
from tokenization.packing import pack_inputs, truncate_pair
from tokenization.wordpiece import WordpieceTokenizer, load_vocab

__all__ = [
    "BasicTokenizer",
    "FullTokenizer",
    "WordpieceTokenizer",
    "load_vocab",
    "pack_inputs",
    "truncate_pair",
]
