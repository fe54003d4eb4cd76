"""Our BLEU and ROUGE-L equal pycocoevalcap's on the same tokenised texts."""

import random

import pytest
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.rouge.rouge import Rouge

from eval.nlg import bleu_counts, ptb_tokenize, rouge_l_scores

WORDS = ("The heart size is normal . Lungs are clear ; no pleural effusion , pneumothorax . Mild "
         "cardiomegaly ( stable ) , left lower-lobe opacity 2.5 cm , unchanged since ___ .").split()


def pairs(n, seed):
    rng = random.Random(seed)
    return ([" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 50))) for _ in range(n)],
            [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 50))) for _ in range(n)])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_equal_to_pycocoevalcap(seed):
    hypotheses, references = pairs(400, seed)
    tokens_h, tokens_r = ptb_tokenize(hypotheses), ptb_tokenize(references)
    gts = {i: [r] for i, r in enumerate(tokens_r)}
    res = {i: [h] for i, h in enumerate(tokens_h)}
    expected_bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    expected_rouge, _ = Rouge().compute_score(gts, res)
    assert bleu_counts(tokens_h, tokens_r).score() == pytest.approx(expected_bleu, abs=1e-9)
    assert rouge_l_scores(tokens_h, tokens_r).mean() == pytest.approx(expected_rouge, abs=1e-9)


def test_subsets_score_like_their_own_corpus():
    hypotheses, references = pairs(50, 5)
    tokens_h, tokens_r = ptb_tokenize(hypotheses), ptb_tokenize(references)
    counts = bleu_counts(tokens_h, tokens_r)
    import numpy as np

    rows = np.array([3, 3, 7, 10])
    subset = bleu_counts([tokens_h[i] for i in rows], [tokens_r[i] for i in rows]).score()
    assert counts.score(rows) == pytest.approx(subset)
