"""Tests of packing token ids into BERT encoder inputs."""

import numpy as np
import pytest

from tokenization import pack_inputs, truncate_pair

CLS, SEP, PAD = 101, 102, 0


def pack(first, second=None, **options):
    options.setdefault("max_seq_length", 8)
    return pack_inputs(first, second, cls_id=CLS, sep_id=SEP, **options)


def google_research_truncate(first, second, max_tokens):
    """The original one-token-at-a-time loop, as the specification of truncate_pair."""
    first, second = list(first), list(second)
    while len(first) + len(second) > max_tokens:
        if len(first) > len(second):
            first.pop()
        else:
            second.pop()
    return first, second


def test_single_segments_are_packed_and_padded_to_the_longest_row():
    packed = pack([[5, 6, 7], [8]])
    assert set(packed) == {"input_word_ids", "input_mask", "input_type_ids"}
    np.testing.assert_array_equal(packed["input_word_ids"], [[CLS, 5, 6, 7, SEP], [CLS, 8, SEP, PAD, PAD]])
    np.testing.assert_array_equal(packed["input_mask"], [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    np.testing.assert_array_equal(packed["input_type_ids"], np.zeros((2, 5)))
    for array in packed.values():
        assert array.dtype == np.int32
        assert array.shape == (2, 5)


def test_pad_to_max_length_and_pad_id():
    packed = pack([[5], [6, 7]], max_seq_length=6, pad_to_max_length=True, pad_id=9)
    np.testing.assert_array_equal(packed["input_word_ids"], [[CLS, 5, SEP, 9, 9, 9], [CLS, 6, 7, SEP, 9, 9]])
    np.testing.assert_array_equal(packed["input_mask"], [[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 0, 0]])


def test_single_segment_is_truncated_at_the_end():
    packed = pack([list(range(1, 11)), []], max_seq_length=5)
    np.testing.assert_array_equal(packed["input_word_ids"], [[CLS, 1, 2, 3, SEP], [CLS, SEP, PAD, PAD, PAD]])
    np.testing.assert_array_equal(packed["input_mask"], [[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]])


def test_pairs_get_segment_ids_and_longest_first_truncation():
    packed = pack([[1, 2], [1, 2, 3, 4, 5, 6]], [[7], [7, 8, 9]], max_seq_length=8)
    np.testing.assert_array_equal(
        packed["input_word_ids"],
        [[CLS, 1, 2, SEP, 7, SEP, PAD, PAD], [CLS, 1, 2, 3, SEP, 7, 8, SEP]],
    )
    np.testing.assert_array_equal(
        packed["input_type_ids"], [[0, 0, 0, 0, 1, 1, 0, 0], [0, 0, 0, 0, 0, 1, 1, 1]]
    )
    np.testing.assert_array_equal(packed["input_mask"], [[1, 1, 1, 1, 1, 1, 0, 0], [1] * 8])


def test_truncate_pair_equals_the_one_at_a_time_loop():
    for first_length in range(9):
        for second_length in range(9):
            for max_tokens in range(14):
                first, second = list(range(first_length)), list(range(100, 100 + second_length))
                expected = google_research_truncate(first, second, max_tokens)
                actual = truncate_pair(first, second, max_tokens)
                assert actual == expected, (first_length, second_length, max_tokens)


def test_inputs_are_not_changed():
    first, second = [[1, 2, 3, 4, 5]], [[6, 7, 8, 9]]
    pack(first, second, max_seq_length=5)
    truncate_pair(first[0], second[0], 2)
    assert first == [[1, 2, 3, 4, 5]] and second == [[6, 7, 8, 9]]


def test_numpy_rows_and_empty_batches():
    packed = pack([np.array([5, 6], dtype=np.int64)])
    np.testing.assert_array_equal(packed["input_word_ids"], [[CLS, 5, 6, SEP]])
    assert pack([])["input_word_ids"].shape == (0, 0)
    assert pack([], pad_to_max_length=True)["input_mask"].shape == (0, 8)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: pack([[1]], max_seq_length=2), "max_seq_length must be at least 3, got 2"),
        (lambda: pack([[1]], [[2]], max_seq_length=3), "max_seq_length must be at least 4, got 3"),
        (lambda: pack([[1]], max_seq_length=True), "max_seq_length must be an integer, got True"),
        (lambda: pack([[1]], max_seq_length=8.0), "max_seq_length must be an integer, got 8.0"),
        (lambda: pack([1, 2, 3]), "first_segments must be a batch"),
        (lambda: pack([[1]], [2]), "second_segments must be a batch"),
        (lambda: pack("hello"), "got a string; tokenize it first"),
        (lambda: pack([[1], [2]], [[3]]), "same batch size, got 2 and 1"),
        (lambda: truncate_pair([1], [2], -1), "max_tokens must be at least 0, got -1"),
    ],
)
def test_bad_input_raises_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()
