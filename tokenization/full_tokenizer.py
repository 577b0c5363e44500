"""FullTokenizer: basic tokenization followed by WordPiece, with the classic BERT method names."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING

from tokenization.basic import BasicTokenizer
from tokenization.wordpiece import UNKNOWN_TOKEN, WordpieceTokenizer, load_vocab

if TYPE_CHECKING:
    import numpy as np

    from tokenization.packing import NumpyInteger

# Distinct words remembered before the memo is emptied; a few hundred thousand short strings
# fit in tens of megabytes, and real corpora repeat most of their words.
_MAX_CACHED_WORDS = 1 << 18


class FullTokenizer:
    """End-to-end BERT tokenizer over a vocab.txt.

    `tokenize` gives WordPiece tokens, `encode` their ids (no [CLS]/[SEP]; see
    `tokenization.packing` for that). Results are memoised per whitespace-separated word, which
    makes tokenizing large corpora several times faster.
    """

    def __init__(self, vocab_file: str | os.PathLike[str], do_lower_case: bool | np.bool_ = True) -> None:
        # `True`/`False` and NumPy booleans (what a TF-Hub model's `do_lower_case` gives) pass;
        # strings such as "False" would silently mean True, so they are refused.
        if do_lower_case not in (True, False) or isinstance(do_lower_case, str):
            raise ValueError(f"do_lower_case must be True or False, got {do_lower_case!r}")
        self.do_lower_case = bool(do_lower_case)
        self.vocab = load_vocab(vocab_file)
        self.inv_vocab = {token_id: token for token, token_id in self.vocab.items()}
        if UNKNOWN_TOKEN not in self.vocab:
            raise ValueError(f"vocabulary {vocab_file!r} has no {UNKNOWN_TOKEN} token; is it a BERT vocab.txt?")
        self.basic_tokenizer = BasicTokenizer(do_lower_case=self.do_lower_case)
        self.wordpiece_tokenizer = WordpieceTokenizer(self.vocab)
        self._pieces_by_word: dict[str, tuple[list[str], list[int]]] = {}

    def _word_pieces(self, word: str) -> tuple[list[str], list[int]]:
        """(tokens, ids) of one whitespace-separated word, memoised."""
        cached = self._pieces_by_word.get(word)
        if cached is not None:
            return cached
        tokens: list[str] = []
        for sub_word in self.basic_tokenizer.normalize_word(word):
            tokens.extend(self.wordpiece_tokenizer.tokenize_word(sub_word))
        result = (tokens, [self.vocab[token] for token in tokens])
        if len(self._pieces_by_word) >= _MAX_CACHED_WORDS:
            self._pieces_by_word.clear()
        self._pieces_by_word[word] = result
        return result

    def tokenize(self, text: str | bytes) -> list[str]:
        """WordPiece tokens of `text` (str, or UTF-8 bytes)."""
        tokens: list[str] = []
        for word in self.basic_tokenizer.split_into_words(text):
            tokens.extend(self._word_pieces(word)[0])
        return tokens

    def encode(self, text: str | bytes) -> list[int]:
        """Token ids of `text`, without special tokens."""
        ids: list[int] = []
        for word in self.basic_tokenizer.split_into_words(text):
            ids.extend(self._word_pieces(word)[1])
        return ids

    def convert_tokens_to_ids(self, tokens: Iterable[str]) -> list[int]:
        """Ids of vocabulary tokens; a token outside the vocabulary is an error, not [UNK]."""
        try:
            return [self.vocab[token] for token in tokens]
        except KeyError as error:
            raise ValueError(f"token {error.args[0]!r} is not in the vocabulary") from None

    def convert_ids_to_tokens(self, ids: Iterable[int | NumpyInteger]) -> list[str]:
        """Tokens of vocabulary ids."""
        try:
            return [self.inv_vocab[int(token_id)] for token_id in ids]
        except KeyError as error:
            raise ValueError(
                f"token id {error.args[0]} is outside the vocabulary (ids 0..{len(self.vocab) - 1})"
            ) from None
