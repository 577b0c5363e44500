"""In-graph BERT tokenizer: a tf.Module that turns a batch of strings into packed encoder inputs.

It runs inside `tf.function`s and SavedModels (the exported model takes raw strings), using
tensorflow-text's WordPiece op for speed. The feature cache is built with the pure-Python
`tokenization.FullTokenizer`, the reference; this module reproduces it, and its known
differences are listed in docs/tokenization.md (the tests pin that list).

Why not `tensorflow_text.BertTokenizer` as it is: its `lower_case=True` applies NFKC case
folding, which changes "ß", fullwidth letters, ligatures, superscripts and "…"; it keeps
control and zero-width characters; and it counts its word-length limit in bytes, not
characters. So the same steps are spelled out here with core string ops, `regex_split` and
tensorflow-text's WordPiece (the pieces `BertTokenizer` is made of).
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf
import tensorflow_text

from tokenization.packing import SPECIAL_TOKENS_PAIR, SPECIAL_TOKENS_SINGLE
from tokenization.wordpiece import CONTINUATION_PREFIX, MAX_CHARS_PER_WORD, UNKNOWN_TOKEN, load_vocab

# Characters BERT deletes: C0/C1 controls (except tab, newline, return), format characters such as
# zero-width spaces and joiners, private use, surrogates, U+FFFD (NUL is a C0 control) ...
_DELETED_CHARACTERS = r"[\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F\p{Cf}\p{Co}\p{Cs}\x{FFFD}]"
# ... and unassigned code points (category Cn), which RE2 has no name for: whatever is in no
# other category. RE2's Unicode tables may be newer than Python's; see docs/tokenization.md.
_UNASSIGNED_CHARACTERS = r"[^\p{L}\p{M}\p{N}\p{P}\p{S}\p{Z}\p{C}]"
# BERT maps Zs, tab, newline and return to a space, and Python's str.split(), which it uses
# next, also splits on the line and paragraph separators (Zl, Zp).
_WORD_SEPARATORS = r"[\t\n\r\p{Z}]"
_COMBINING_MARKS = r"\p{Mn}"
# Punctuation (all non-alphanumeric printable ASCII, and Unicode P*) and CJK ideographs are
# words of their own; spaces only separate words.
_KEPT_DELIMITERS = (
    r"[!-/:-@\[-`{-~]|\p{P}"
    r"|[\x{4E00}-\x{9FFF}\x{3400}-\x{4DBF}\x{20000}-\x{2A6DF}\x{2A700}-\x{2B73F}"
    r"\x{2B740}-\x{2B81F}\x{2B820}-\x{2CEAF}\x{F900}-\x{FAFF}\x{2F800}-\x{2FA1F}]"
)
_DELIMITERS = r" +|" + _KEPT_DELIMITERS
# The longest UTF-8 encoding of a character; the byte limit of the WordPiece op is set so that it
# never fires before the character limit, which is applied here.
_MAX_BYTES_PER_CHARACTER = 4


class GraphTokenizer(tf.Module):
    """Strings in, `input_word_ids`, `input_mask`, `input_type_ids` (int32, [batch, length]) out.

    Rows are `[CLS] text [SEP]` (or `[CLS] a [SEP] b [SEP]` for pairs), truncated to
    `max_seq_length` like `tokenization.pack_inputs`, and padded to the batch's longest row
    (or to `max_seq_length` with `pad_to_max_length`). The vocabulary file becomes a SavedModel
    asset when a model holding this module is saved.
    """

    def __init__(self, vocab_file: Any, do_lower_case: Any, *, max_seq_length: int = 128, pad_to_max_length: bool = False,
                 name: str | None = None):
        super().__init__(name=name)
        vocab_file = _python_path(vocab_file)
        do_lower_case = _python_value(do_lower_case)
        if do_lower_case not in (True, False) or isinstance(do_lower_case, str):
            raise ValueError(f"do_lower_case must be True or False, got {do_lower_case!r}")
        minimum_length = SPECIAL_TOKENS_SINGLE + 1
        is_integer = isinstance(max_seq_length, int) and not isinstance(max_seq_length, bool)
        if not is_integer or max_seq_length < minimum_length:
            raise ValueError(
                f"max_seq_length must be an integer of at least {minimum_length}, got {max_seq_length!r}"
            )
        vocab = load_vocab(vocab_file)  # validates the file and gives the special-token ids
        for token in (UNKNOWN_TOKEN, "[CLS]", "[SEP]", "[PAD]"):
            if token not in vocab:
                raise ValueError(f"vocabulary {vocab_file!r} has no {token} token; is it a BERT vocab.txt?")
        if max(vocab.values()) != len(vocab) - 1:
            raise ValueError(f"vocabulary {vocab_file!r} lists a token twice; ids would be ambiguous")
        self.do_lower_case = bool(do_lower_case)
        self.max_seq_length = max_seq_length
        self.pad_to_max_length = bool(pad_to_max_length)
        self.cls_id = vocab["[CLS]"]
        self.sep_id = vocab["[SEP]"]
        self.pad_id = vocab["[PAD]"]
        self.vocab_size = len(vocab)
        # Tracked so that a SavedModel holding this module carries the vocabulary as an asset.
        self.vocab_file = tf.saved_model.Asset(vocab_file)
        # FastWordpieceTokenizer gives the same ids as WordpieceTokenizer over a lookup table
        # (checked on the reference cases and random text) at about twice the speed; it keeps
        # the vocabulary compiled into a model buffer that is saved with the module.
        self.wordpiece_tokenizer = tensorflow_text.FastWordpieceTokenizer(
            vocab=sorted(vocab, key=lambda token: vocab[token]),
            suffix_indicator=CONTINUATION_PREFIX,
            max_bytes_per_word=MAX_CHARS_PER_WORD * _MAX_BYTES_PER_CHARACTER,
            token_out_type=tf.int32,
            unknown_token=UNKNOWN_TOKEN,
            no_pretokenization=True,  # words come from `words`, split the BERT way
        )

    def normalize(self, texts: tf.Tensor) -> tf.Tensor:
        """BERT's text-level steps: clean, unify word separators, lower-case + strip accents or NFC."""
        # Invalid UTF-8 becomes U+FFFD, which is then deleted, like bytes.decode(errors="ignore").
        texts = tf.strings.unicode_transcode(
            texts, input_encoding="UTF-8", output_encoding="UTF-8", errors="replace", replacement_char=0xFFFD
        )
        texts = tf.strings.regex_replace(texts, _DELETED_CHARACTERS, "")
        texts = tf.strings.regex_replace(texts, _UNASSIGNED_CHARACTERS, "")
        texts = tf.strings.regex_replace(texts, _WORD_SEPARATORS, " ")
        if self.do_lower_case:
            # Full lower-casing like str.lower() (İ -> i + dot, final sigma), not case folding.
            texts = tf.strings.lower(texts, encoding="utf-8")
            texts = tensorflow_text.normalize_utf8(texts, "NFD")
            return tf.strings.regex_replace(texts, _COMBINING_MARKS, "")
        return tensorflow_text.normalize_utf8(texts, "NFC")

    def words(self, texts: tf.Tensor) -> tf.RaggedTensor:
        """Ragged [batch, words] strings: the input of WordPiece, over-long words already [UNK]."""
        words = tensorflow_text.regex_split(self.normalize(texts), _DELIMITERS, _KEPT_DELIMITERS)
        return tf.ragged.map_flat_values(_unknown_if_too_long, words)

    def token_ids(self, texts: Any) -> tf.RaggedTensor:
        """Ragged [batch, tokens] int32 WordPiece ids of a 1-D string tensor, no special tokens."""
        texts = tf.convert_to_tensor(texts, dtype=tf.string)
        if texts.shape.rank not in (None, 1):
            raise ValueError(f"texts must be a 1-D string tensor (a batch), got shape {texts.shape}")
        return self.wordpiece_tokenizer.tokenize(self.words(texts)).merge_dims(-2, -1)

    def __call__(self, texts: Any, second_texts: Any = None) -> dict[str, tf.Tensor]:
        """Packed encoder inputs for a 1-D batch of texts, or of text pairs."""
        first_ids = self.token_ids(texts)
        if second_texts is None:
            segments = [first_ids[:, : self.max_seq_length - SPECIAL_TOKENS_SINGLE]]
        else:
            if self.max_seq_length < SPECIAL_TOKENS_PAIR + 1:
                raise ValueError(
                    f"max_seq_length must be at least {SPECIAL_TOKENS_PAIR + 1} for text pairs, "
                    f"got {self.max_seq_length}"
                )
            second_ids = self.token_ids(second_texts)
            segments = _truncate_pair(first_ids, second_ids, self.max_seq_length - SPECIAL_TOKENS_PAIR)
        word_ids, type_ids = tensorflow_text.combine_segments(
            segments, start_of_sequence_id=self.cls_id, end_of_segment_id=self.sep_id
        )
        shape = [None, self.max_seq_length] if self.pad_to_max_length else None
        return {
            "input_word_ids": word_ids.to_tensor(default_value=self.pad_id, shape=shape),
            "input_mask": tf.ones_like(word_ids).to_tensor(default_value=0, shape=shape),
            "input_type_ids": tf.cast(type_ids, tf.int32).to_tensor(default_value=0, shape=shape),
        }


def _unknown_if_too_long(words: tf.Tensor) -> tf.Tensor:
    """The reference limits words by characters; the WordPiece op can only count bytes."""
    too_long = tf.strings.length(words, unit="UTF8_CHAR") > MAX_CHARS_PER_WORD
    return tf.where(too_long, tf.constant(UNKNOWN_TOKEN), words)


def _truncate_pair(first_ids: tf.RaggedTensor, second_ids: tf.RaggedTensor, max_tokens: int) -> list[tf.RaggedTensor]:
    """Longest-first truncation of two ragged batches: the closed form of `truncate_pair`."""
    first_lengths = first_ids.row_lengths()
    second_lengths = second_ids.row_lengths()
    max_tokens = tf.constant(max_tokens, dtype=first_lengths.dtype)
    first_kept = tf.minimum(first_lengths, tf.maximum(max_tokens - second_lengths, (max_tokens + 1) // 2))
    second_kept = tf.minimum(second_lengths, max_tokens - first_kept)
    return [_keep_leading(first_ids, first_kept), _keep_leading(second_ids, second_kept)]


def _keep_leading(ragged_ids: tf.RaggedTensor, kept_lengths: tf.Tensor) -> tf.RaggedTensor:
    """Keeps the first kept_lengths[i] values of row i."""
    positions = tf.ragged.range(ragged_ids.row_lengths(), dtype=kept_lengths.dtype)
    return tf.ragged.boolean_mask(ragged_ids, positions < tf.expand_dims(kept_lengths, 1))


def _python_value(value: Any) -> Any:
    """A TF-Hub model gives `do_lower_case` as a variable; take its value."""
    return value.numpy() if hasattr(value, "numpy") else value


def _python_path(vocab_file: Any) -> str:
    """Accepts a path, bytes, a string tensor, or a SavedModel asset (`resolved_object.vocab_file`)."""
    if hasattr(vocab_file, "asset_path"):
        vocab_file = vocab_file.asset_path
    vocab_file = _python_value(vocab_file)
    if isinstance(vocab_file, bytes):
        vocab_file = vocab_file.decode("utf-8")
    return str(vocab_file)


def make_graph_tokenizer(vocab_file: Any, do_lower_case: Any, *, max_seq_length: int = 128,
                         pad_to_max_length: bool = False) -> GraphTokenizer:
    """A `GraphTokenizer` over a BERT vocab.txt (take both from the encoder's SavedModel)."""
    return GraphTokenizer(
        vocab_file, do_lower_case, max_seq_length=max_seq_length, pad_to_max_length=pad_to_max_length
    )
