"""WordPiece: the vocabulary file and greedy longest-match-first sub-word splitting."""

from __future__ import annotations

import os
from collections.abc import Mapping

CONTINUATION_PREFIX = "##"
UNKNOWN_TOKEN = "[UNK]"
# Words longer than this many characters become one unknown token, as in google-research/bert.
MAX_CHARS_PER_WORD = 200


def load_vocab(vocab_file: str | os.PathLike[str]) -> dict[str, int]:
    """Reads a BERT vocab.txt (one token per line, id = line number) into a dict token -> id.

    A token listed twice keeps its last line number, as the reference loaders do.
    """
    vocab_file = os.fspath(vocab_file)
    if not os.path.isfile(vocab_file):
        raise ValueError(f"vocabulary file not found: {vocab_file!r}; pass the path of a BERT vocab.txt")
    vocab: dict[str, int] = {}
    with open(vocab_file, encoding="utf-8") as reader:
        for index, line in enumerate(reader):
            vocab[line.rstrip("\r\n")] = index
    if not vocab:
        raise ValueError(f"vocabulary file {vocab_file!r} is empty; expected one token per line")
    return vocab


class WordpieceTokenizer:
    """Splits one word into vocabulary pieces, e.g. "unaffable" -> ["un", "##aff", "##able"].

    At each position the longest vocabulary entry that matches is taken (pieces after the first
    carry the "##" prefix). A word that cannot be covered, or is longer than
    `max_chars_per_word` characters, becomes a single unknown token.
    """

    def __init__(
        self, vocab: Mapping[str, int], unknown_token: str = UNKNOWN_TOKEN, max_chars_per_word: int = MAX_CHARS_PER_WORD
    ) -> None:
        self.vocab = vocab
        self.unknown_token = unknown_token
        self.max_chars_per_word = max_chars_per_word
        # No piece can be longer than the longest entry, so candidates start there, not at the
        # end of the word; this turns the inner loop from O(word length) into O(longest entry).
        prefix_length = len(CONTINUATION_PREFIX)
        self._longest_start_piece = max((len(token) for token in vocab), default=0)
        self._longest_continuation_piece = max(
            (len(token) - prefix_length for token in vocab if token.startswith(CONTINUATION_PREFIX)),
            default=0,
        )

    def tokenize_word(self, word: str) -> list[str]:
        """Pieces of one word (a word has no whitespace; basic tokenization has run)."""
        if len(word) > self.max_chars_per_word:
            return [self.unknown_token]
        pieces: list[str] = []
        start = 0
        while start < len(word):
            longest = self._longest_continuation_piece if start else self._longest_start_piece
            end = min(len(word), start + longest)
            piece: str | None = None
            while end > start:
                candidate = word[start:end]
                if start:
                    candidate = CONTINUATION_PREFIX + candidate
                if candidate in self.vocab:
                    piece = candidate
                    break
                end -= 1
            if piece is None:
                return [self.unknown_token]
            pieces.append(piece)
            start = end
        return pieces
