"""Our word-level BLEU and ROUGE-L equal nltk's and rouge-score's on the same texts."""

import random

import pytest
from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu
from rouge_score import rouge_scorer

from rewards.text_overlap import lcs_length, prepare_reference, rouge_l_f1, sentence_bleu_scores, word_tokens

VOCABULARY = (
    "the heart size is normal lungs are clear no pleural effusion or pneumothorax mild "
    "cardiomegaly left lower lobe opacity atelectasis stable compared to prior 2 cm"
).split()


def random_report(rng: random.Random, max_words: int = 60) -> str:
    words = [rng.choice(VOCABULARY) for _ in range(rng.randint(0, max_words))]
    punctuation = [".", ",", "", "", "", " -", ";"]
    return " ".join(w.capitalize() + rng.choice(punctuation) if rng.random() < 0.2 else w for w in words)


def report_pairs(n: int, seed: int = 0):
    rng = random.Random(seed)
    return [(random_report(rng), random_report(rng)) for _ in range(n)]


@pytest.mark.parametrize("candidate, reference", report_pairs(300))
def test_bleu_equals_nltk_method2(candidate, reference):
    hyp, ref = list(word_tokens(candidate)), list(word_tokens(reference))
    smoothing = SmoothingFunction().method2
    expected_1 = sentence_bleu([ref], hyp, weights=(1, 0, 0, 0), smoothing_function=smoothing)
    expected_4 = sentence_bleu([ref], hyp, weights=(0.25,) * 4, smoothing_function=smoothing)
    bleu_1, bleu_4 = sentence_bleu_scores(tuple(hyp), prepare_reference(reference), orders=(1, 4))
    assert bleu_1 == pytest.approx(float(expected_1), abs=1e-12)
    assert bleu_4 == pytest.approx(float(expected_4), abs=1e-12)


@pytest.mark.parametrize("candidate, reference", report_pairs(300, seed=1))
def test_rouge_l_equals_rouge_score(candidate, reference):
    expected = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False).score(reference, candidate)["rougeL"].fmeasure
    assert rouge_l_f1(word_tokens(candidate), prepare_reference(reference)) == pytest.approx(expected, abs=1e-12)


def _lcs_table(a, b):
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i, x in enumerate(a, 1):
        for j, y in enumerate(b, 1):
            table[i][j] = table[i - 1][j - 1] + 1 if x == y else max(table[i - 1][j], table[i][j - 1])
    return table[-1][-1]


def test_bit_parallel_lcs_equals_dynamic_programming():
    rng = random.Random(7)
    for _ in range(500):
        a = tuple(rng.choice("abcde") for _ in range(rng.randint(0, 90)))
        b = tuple(rng.choice("abcde") for _ in range(rng.randint(0, 90)))
        assert lcs_length(a, b) == _lcs_table(a, b)


def test_tokens_are_words_not_characters():
    assert word_tokens("No pleural effusion.") == ("no", "pleural", "effusion")
    # Character n-grams (the released reward) would give this pair a high score; words do not.
    assert rouge_l_f1(word_tokens("effusion"), prepare_reference("fusion")) == 0.0


def test_empty_texts_score_zero():
    assert sentence_bleu_scores((), prepare_reference("a b c")) == (0.0, 0.0)
    assert rouge_l_f1((), prepare_reference("a b c")) == 0.0
    assert rouge_l_f1(("a",), prepare_reference("")) == 0.0
