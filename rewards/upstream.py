"""The ``upstream`` preset: the reward exactly as the authors released it (``compute_xray_score``).

Reimplemented from its observed behaviour so that ablations can compare it with the paper's
reward on the same data. Where it departs from the paper (see the README's reward section):
- every response is first rewritten with ``re.sub(r"\\s*(<|>|/)\\s*", r"\\1", ...)``;
- format: ``<think>.*</think>.*\\boxed{.*}.*`` anywhere-match, so empty or repeated parts pass;
- answer: last ``\\boxed{}`` (``"None"`` without one, a space if empty), typed from the ground-truth
  string alone; closed answers compare lower-cased strings; multi-object F1 counts duplicates
  against precision; open-ended answers use nltk BLEU on raw strings (character n-grams, smoothing
  method2) and rouge-score ROUGE-1 with stemming, not ROUGE-L;
- coordinate: boxes of the first think block only (no spaces inside the brackets), +0.05 each or
  -0.2 when any coordinate exceeds the constant 512, the sum capped at 0.15 with no lower bound.

A ground truth in our JSON schema is first turned into the plain string the released code would
have been given, then typed by the released rules. That string is written as the project writes
every answer (``rewards.normalize.written_answer``: list items joined by ``|``, the empty list as
``none``), with the released response rewrite (no spaces around ``<``, ``>``, ``/``) applied to it
too: so a response that states the reference answer verbatim earns the full answer score, as it
does under the ``paper`` preset. The released function itself is unchanged.
"""

from __future__ import annotations

import re

from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu
from rouge_score import rouge_scorer

from rewards.ground_truth import GroundTruth
from rewards.normalize import written_answer
from rewards.response import first_reasoning, last_boxed

RESOLUTION = 512
_TAG_SPACING = re.compile(r"\s*(<|>|/)\s*")
_FORMAT = re.compile(r"<think>.*</think>.*\\boxed\{.*\}.*", re.DOTALL)
_BOX = re.compile(r"\[([-+]?\d*\.?\d+(?:,\s*[-+]?\d*\.?\d+){3})\]")
_SMOOTHING = SmoothingFunction().method2
_ROUGE_1 = rouge_scorer.RougeScorer(["rouge1"], use_stemmer=True)


def plain_answer(truth: GroundTruth) -> str:
    """The ground truth as the released code's dataset string (see the module docstring)."""
    text = written_answer(truth.answer)
    return text if truth.frame is None else _TAG_SPACING.sub(r"\1", text)  # plain strings: not rewritten


def format_score(response: str) -> float:
    return 1.0 if _FORMAT.fullmatch(response) else 0.0


def answer_score(response: str, ground_truth: str) -> float:
    """Includes the factor 1.5, as the released function does."""
    answer = last_boxed(response)
    answer = "None" if answer is None else (answer or " ")
    if "|" in ground_truth and len(ground_truth.strip().split()) <= 20:
        expected = [item.strip().lower() for item in ground_truth.strip().split("|")]
        predicted = [item.strip().lower() for item in answer.strip().split("|")]
        matched = len(set(expected) & set(predicted))
        precision, recall = matched / len(predicted), matched / len(expected)
        return 1.5 * (2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    if len(ground_truth.strip().split()) <= 2:
        return 1.5 if answer.lower() == ground_truth.lower() else 0.0
    bleu_1 = sentence_bleu([ground_truth], answer, weights=(1, 0, 0, 0), smoothing_function=_SMOOTHING)
    bleu_4 = sentence_bleu([ground_truth], answer, weights=(0.25,) * 4, smoothing_function=_SMOOTHING)
    rouge_1 = _ROUGE_1.score(answer, ground_truth)["rouge1"].fmeasure
    return 1.5 * (bleu_1 + bleu_4 + rouge_1) / 3


def coordinate_boxes(response: str) -> list[list[float]]:
    # The released regex searches only a *closed* first think block, as first_reasoning does.
    return [[float(v) for v in match.split(",")] for match in _BOX.findall(first_reasoning(response))]


def coordinate_score(boxes: list[list[float]]) -> float:
    value = sum((-0.2 if max(box) > RESOLUTION else 0.05 for box in boxes), 0.0)
    return min(value, 0.15)


def score(response: str, truth: GroundTruth, format_weight: float = 0.1) -> dict[str, float]:
    """The released ``compute_xray_score`` for one response, with our logged key names."""
    response = _TAG_SPACING.sub(r"\1", response)
    form = format_score(response)
    answer = answer_score(response, plain_answer(truth))
    boxes = coordinate_boxes(response)
    coordinate = coordinate_score(boxes)
    return {
        "overall": (1 - format_weight) * answer + format_weight * form + coordinate,
        "answer": answer,
        "format": form,
        "coordinate": coordinate,
        "grounding": 0.0,
        "boxes": float(sum(max(box) <= RESOLUTION for box in boxes)),
        "out_of_frame": float(any(max(box) > RESOLUTION for box in boxes)),
    }
