"""Basic (pre-WordPiece) BERT tokenization: cleaning, CJK splitting, lower-casing, punctuation.

The rules follow the reference BERT tokenizer (google-research/bert `BasicTokenizer`, and the
slow Hugging Face one, which adds an NFC step). Each rule is a per-character decision, so the
decisions are memoised per code point: after warm-up, cleaning a text is one `str.translate`.
"""

from __future__ import annotations

import unicodedata

# ASCII symbols that Unicode files under S* (like "$", "^", "`") still count as punctuation in BERT.
_ASCII_PUNCTUATION_RANGES = ((33, 47), (58, 64), (91, 96), (123, 126))

# Blocks that BERT treats as "Chinese characters": each such character becomes its own word.
# Hangul, Hiragana and Katakana are deliberately absent (those scripts separate words by spaces).
_CJK_RANGES = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B820, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
)


def is_whitespace(char: str) -> bool:
    """True for space, tab, newline, carriage return and Unicode space separators (Zs)."""
    return char in " \t\n\r" or unicodedata.category(char) == "Zs"


def is_control(char: str) -> bool:
    """True for Unicode C* characters, except tab/newline/return, which count as whitespace."""
    if char in "\t\n\r":
        return False
    return unicodedata.category(char).startswith("C")


def is_punctuation(char: str) -> bool:
    """True for every non-alphanumeric printable ASCII character and for Unicode P* characters."""
    code_point = ord(char)
    for low, high in _ASCII_PUNCTUATION_RANGES:
        if low <= code_point <= high:
            return True
    return unicodedata.category(char).startswith("P")


def is_cjk_character(code_point: int) -> bool:
    """True when the code point lies in one of the CJK ideograph blocks."""
    for low, high in _CJK_RANGES:
        if low <= code_point <= high:
            return True
    return False


class _CleaningTable(dict[int, str]):
    """A `str.translate` table that decides each code point's replacement on first sight.

    Dropped characters (NUL, U+FFFD, controls) map to "", whitespace to " ", CJK ideographs to
    " X " so they become words of their own; everything else maps to itself.
    """

    def __missing__(self, code_point: int) -> str:
        char = chr(code_point)
        if code_point == 0 or code_point == 0xFFFD or is_control(char):
            replacement = ""
        elif is_whitespace(char):
            replacement = " "
        elif is_cjk_character(code_point):
            replacement = f" {char} "
        else:
            replacement = char
        self[code_point] = replacement
        return replacement


class _PunctuationTable(dict[str, bool]):
    """Memoised `is_punctuation` keyed by character."""

    def __missing__(self, char: str) -> bool:
        result = is_punctuation(char)
        self[char] = result
        return result


_CLEANING_TABLE = _CleaningTable()
_PUNCTUATION_TABLE = _PunctuationTable()


def clean_text(text: str) -> str:
    """Drops NUL, U+FFFD and control characters, maps whitespace to " ", isolates CJK ideographs."""
    return text.translate(_CLEANING_TABLE)


def strip_accents(text: str) -> str:
    """Decomposes (NFD) and removes combining marks (Mn), so "é" becomes "e"."""
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFD", text)
    return "".join(char for char in decomposed if unicodedata.category(char) != "Mn")


def split_on_punctuation(text: str) -> list[str]:
    """Splits a word so that every punctuation character is a word of its own."""
    pieces: list[str] = []
    current: list[str] = []
    for char in text:
        if _PUNCTUATION_TABLE[char]:
            if current:
                pieces.append("".join(current))
                current = []
            pieces.append(char)
        else:
            current.append(char)
    if current:
        pieces.append("".join(current))
    return pieces


def to_unicode(text: str | bytes) -> str:
    """Returns `text` as str; bytes are read as UTF-8, dropping invalid sequences like BERT does."""
    if isinstance(text, str):
        return text
    if isinstance(text, bytes):
        return text.decode("utf-8", "ignore")
    raise TypeError(f"text must be str or bytes, got {type(text).__name__}")


class BasicTokenizer:
    """Splits text into words and punctuation, ready for WordPiece.

    `split_into_words` does the text-level steps (cleaning, CJK, NFC, whitespace split);
    `normalize_word` does the per-word steps (lower-casing, accents, punctuation). The split lets a
    caller memoise the per-word part, which is where the time goes.
    """

    def __init__(self, do_lower_case: bool = True) -> None:
        self.do_lower_case = do_lower_case

    def split_into_words(self, text: str | bytes) -> list[str]:
        """Whitespace-separated words of the cleaned text, before lower-casing and punctuation."""
        text = clean_text(to_unicode(text))
        # Hugging Face's BertTokenizer composes (NFC) here so that "e" + U+0301 and "é" agree
        # even without lower-casing; google-research's does not. We follow Hugging Face.
        if not text.isascii():
            text = unicodedata.normalize("NFC", text)
        return text.split()

    def normalize_word(self, word: str) -> list[str]:
        """Lower-cases and strips accents (when enabled), then splits off punctuation."""
        if self.do_lower_case:
            word = strip_accents(word.lower())
        return split_on_punctuation(word)

    def tokenize(self, text: str | bytes) -> list[str]:
        """Words and punctuation marks of `text`, in order."""
        tokens: list[str] = []
        for word in self.split_into_words(text):
            tokens.extend(self.normalize_word(word))
        return tokens
