"""Our word-level BLEU and ROUGE-L equal nltk's and rouge-score's on the same texts."""

import random

import pytest
from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu
from rouge_score import rouge_scorer

from rewards.text_overlap import bleu_scores, lcs_length, prepare_reference, rouge_l_f1, word_tokens

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


def nltk_bleu(candidate: str, reference: str) -> tuple[float, float]:
    hyp, ref = list(word_tokens(candidate)), list(word_tokens(reference))
    smoothing = SmoothingFunction().method2
    return (
        float(sentence_bleu([ref], hyp, weights=(1, 0, 0, 0), smoothing_function=smoothing)),
        float(sentence_bleu([ref], hyp, weights=(0.25,) * 4, smoothing_function=smoothing)),
    )


def test_batch_bleu_equals_nltk_method2_per_sentence():
    # One batch, as in a GRPO step: several candidates share each reference.
    pairs = report_pairs(400)
    pairs += [(candidate, pairs[i % 7][1]) for i, (candidate, _) in enumerate(report_pairs(200, seed=3))]
    pairs += [("", "a b c"), ("a b c", ""), ("the the the the", "the"), ("a b c d e", "a b c d e")]
    ours = bleu_scores([word_tokens(c) for c, _ in pairs], [prepare_reference(r) for _, r in pairs], orders=(1, 4))
    for (candidate, reference), (bleu_1, bleu_4) in zip(pairs, ours.tolist()):
        expected_1, expected_4 = nltk_bleu(candidate, reference)
        assert bleu_1 == pytest.approx(expected_1, abs=1e-12), (candidate, reference)
        assert bleu_4 == pytest.approx(expected_4, abs=1e-12), (candidate, reference)


def test_batch_bleu_does_not_depend_on_batch_composition():
    pairs = report_pairs(50, seed=5)
    candidates, references = [word_tokens(c) for c, _ in pairs], [prepare_reference(r) for _, r in pairs]
    together = bleu_scores(candidates, references)
    alone = [bleu_scores([c], [r])[0] for c, r in zip(candidates, references)]
    assert together.tolist() == [a.tolist() for a in alone]


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
    assert bleu_scores([()], [prepare_reference("a b c")]).tolist() == [[0.0, 0.0]]
    assert bleu_scores([], []).shape == (0, 2)
    assert rouge_l_f1((), prepare_reference("a b c")) == 0.0
    assert rouge_l_f1(("a",), prepare_reference("")) == 0.0


def test_batch_bleu_stays_exact_with_a_huge_vocabulary():
    # 60,000 distinct words: 4-gram ids would overflow int64 unless renumbered densely.
    rng = random.Random(11)
    words = [f"w{i}" for i in range(60_000)]
    reference = " ".join(words)
    candidate = " ".join(words[:20_000] + rng.sample(words, 20_000))
    (ours,) = bleu_scores([word_tokens(candidate)], [prepare_reference(reference)]).tolist()
    assert ours == pytest.approx(list(nltk_bleu(candidate, reference)), abs=1e-12)
