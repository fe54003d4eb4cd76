"""The batch reward's fast paths give exactly what the plain definitions give, on adversarial inputs.

Each test states a definition the straightforward way (a regex without possessive quantifiers,
``judge_box`` one box at a time, nltk and rouge-score per sentence, n-grams counted with a
Counter, the format rules checked one tag search each) and compares it with the fast path
bit for bit: ``==`` on floats, not ``approx``.
"""

import json
import math
import random
import re
import warnings
from collections import Counter

import numpy as np
import pytest
from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu
from rouge_score import rouge_scorer

from rewards.boxes import judge_box, judge_boxes, parse_boxes, parse_boxes_batch
from rewards.components import count_reasoning_boxes, judge_reasoning_boxes
from rewards.deepmedix import RewardConfig, compute_score, score_batch, score_response
from rewards.frame import Frame
from rewards.ground_truth import encode_ground_truth, ground_truth_from_dict
from rewards.response import (
    BOXED_OPEN,
    THINK_CLOSE,
    THINK_OPEN,
    boxed_content,
    parse_response,
)
from rewards.text_overlap import (
    LANE_BITS,
    TAIL_LANES,
    OverlapBatch,
    lcs_length,
    prepare_reference,
    word_tokens,
)

_PLAIN_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
PLAIN_BOX = re.compile(rf"\[\s*({_PLAIN_NUMBER})\s*,\s*({_PLAIN_NUMBER})\s*,\s*({_PLAIN_NUMBER})\s*,\s*({_PLAIN_NUMBER})\s*\]")
BOX_PIECES = ["[", "]", ",", " ", "  ", "1", "20", "300", "-", "+", ".", "5", "e", "E", "e4", "1e400", "nan", "inf",
              "\u2003", "\x1c", "\xa0", "\x85", "\u0663", "\u00b2", "[10, 20, 100, 200]", "[0,0,448,532]",
              "[-0.0, 0, 9, 9]", "[0.0, 0.0, 9, 9]", "[1,2,3]", "[1,2,3,4,5]", "a", "\n", "[ 7 , 8 , 90 , 95 ]"]


def random_texts(pieces: list[str], count: int, seed: int, most: int = 14) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(pieces) for _ in range(rng.randint(0, most))) for _ in range(count)]


def test_box_pattern_reads_what_the_plain_pattern_reads():
    for text in random_texts(BOX_PIECES, 20_000, seed=0):
        expected = [tuple(float(v) for v in match) for match in PLAIN_BOX.findall(text)]
        assert repr(parse_boxes(text)) == repr(expected), text  # repr: nan and -0.0 compared too


def test_judge_boxes_equals_judge_box():
    rng = random.Random(1)
    values = [0.0, -0.0, 0.5, 1.0, 1.5, 9.0, 10.0, 300.0, 447.5, 448.0, 449.0, 531.0, 532.0, -1.0, math.inf,
              -math.inf, math.nan, 1e308, 5e-324]
    frames = [Frame(448, 532), Frame(28, 28), Frame(1000, 900)]
    boxes, widths, heights, expected = [], [], [], []
    for _ in range(20_000):
        box = tuple(rng.choice(values) if rng.random() < 0.5 else rng.uniform(-5, 600) for _ in range(4))
        frame = rng.choice(frames)
        boxes.append(box)
        widths.append(frame.width)
        heights.append(frame.height)
        expected.append(judge_box(box, frame))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        valid, outside = judge_boxes(np.array(boxes), np.array(widths), np.array(heights))
    assert valid.tolist() == [verdict.value == "valid" for verdict in expected]
    assert outside.tolist() == [verdict.value == "outside_frame" for verdict in expected]


ASCII_BOX_PIECES = [piece for piece in BOX_PIECES if piece.isascii()]
LOOSE_NUMBERS = ["[1e, 2, 3, 4]", "[1.2.3, 4, 5, 6]", "[+, 1, 2, 3]", "[--1,2,3,4]", "[.,1,2,3]", "[e5,1,2,3]"]
BATCHES = {  # which way parse_boxes_batch reads a batch
    "ascii, loose pattern": ASCII_BOX_PIECES,
    "ascii, loose pattern refused": ASCII_BOX_PIECES + LOOSE_NUMBERS,
    "not ascii, strict pattern": BOX_PIECES,
}


@pytest.mark.parametrize("pieces", BATCHES.values(), ids=BATCHES.keys())
def test_batch_box_reading_equals_reading_each_text(pieces):
    texts = random_texts(pieces, 3000, seed=len(pieces)) + ["", "no boxes", "[10, 20, 100, 200]" * 3]
    boxes, owner = parse_boxes_batch(texts)
    by_text = [[] for _ in texts]
    for index, box in zip(owner.tolist(), boxes.tolist()):
        by_text[index].append(tuple(box))
    assert repr(by_text) == repr([parse_boxes(text) for text in texts])
    assert [b.size for b in parse_boxes_batch([])] == [0, 0]


@pytest.mark.parametrize("pieces", BATCHES.values(), ids=BATCHES.keys())
def test_count_reasoning_boxes_equals_judge_reasoning_boxes(pieces):
    rng = random.Random(2)
    frames = [Frame(448, 532), Frame(28, 56), Frame(1000, 900)]
    reasonings = random_texts(pieces, 3000, seed=3) + ["", "no boxes", "[10, 20, 100, 200]" * 3]
    reasonings.append(" ".join(f"[{rng.randint(0, 9)}, {rng.randint(0, 9)}, {rng.randint(10, 19)}, 19]" for _ in range(60)))
    chosen = [rng.choice(frames) for _ in reasonings]
    counts, left = count_reasoning_boxes(reasonings, chosen)
    expected = [judge_reasoning_boxes(text, frame) for text, frame in zip(reasonings, chosen)]
    assert counts == [len(boxes) for boxes, _ in expected]
    assert left == [left_frame for _, left_frame in expected]
    assert count_reasoning_boxes([], []) == ([], [])


def test_word_tokens_equal_the_regex_on_any_text():
    pieces = [chr(c) for c in range(128)] + ["é", "İ", "\u212a", "ß", "\u0663", "²", "Ⅻ", "ﬁ", "Σ", "\u2003", "🙂"]
    for text in random_texts(pieces, 20_000, seed=4, most=20) + ["No pleural EFFUSION.", "", "   "]:
        assert word_tokens(text) == tuple(re.findall(r"[a-z0-9]+", text.lower())), repr(text)


WORDS = ["the", "heart", "is", "normal", "no", "pleural", "effusion", "left", "lower", "lobe", "a", "b"]


def random_report(rng: random.Random, most: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, most)))


def test_bleu_is_nltk_bit_for_bit():
    rng = random.Random(5)
    references = [prepare_reference(random_report(rng, 40)) for _ in range(30)]
    pairs = [(word_tokens(random_report(rng, 50)), rng.choice(references)) for _ in range(1500)]
    pairs += [((), references[0]), (("a",), prepare_reference("")), (("the", "the", "the"), prepare_reference("the")),
              (references[1].tokens, references[1])]
    scores = OverlapBatch([c for c, _ in pairs], [r for _, r in pairs]).bleu((1, 2, 3, 4))
    smoothing = SmoothingFunction().method2
    for (candidate, reference), row in zip(pairs, scores.tolist()):
        expected = [sentence_bleu([list(reference.tokens)], list(candidate), weights=weights,
                                  smoothing_function=smoothing)
                    for weights in [(1, 0, 0, 0), (0.5, 0.5), (1 / 3,) * 3, (0.25,) * 4]]
        assert row == [float(value) for value in expected], (candidate, reference.tokens)


def _clipped_by_counter(candidate, reference, order):
    grams = Counter(zip(*(candidate[i:] for i in range(order))))
    reference_grams = Counter(zip(*(reference[i:] for i in range(order))))
    return sum(min(count, reference_grams[gram]) for gram, count in grams.items())


def test_clipped_matches_equal_counting_by_hand():
    rng = random.Random(6)
    references = [prepare_reference(" ".join(rng.choice("abc") for _ in range(rng.randint(0, 30)))) for _ in range(9)]
    candidates = [tuple(rng.choice("abcd") for _ in range(rng.randint(0, 40))) for _ in range(800)]
    chosen = [rng.choice(references) for _ in candidates]
    matches = OverlapBatch(candidates, chosen).clipped_matches(5).tolist()
    for candidate, reference, row in zip(candidates, chosen, matches):
        assert row == [_clipped_by_counter(candidate, reference.tokens, n) for n in range(1, 6)]


def _lcs_table(a, b):
    row = [0] * (len(b) + 1)
    for x in a:
        previous, row = row, [0]
        for j, y in enumerate(b, 1):
            row.append(previous[j - 1] + 1 if x == y else max(previous[j], row[j - 1]))
    return row[-1]


@pytest.mark.parametrize("reference_lengths", [(1, 5, 63), (LANE_BITS, LANE_BITS + 1), (10, 64, 200)],
                         ids=["short", "at-the-lane-edge", "mixed"])
def test_rouge_l_is_rouge_score_bit_for_bit(reference_lengths):
    # Enough candidates that the 64-bit lanes run, long ones that finish on Python integers, and
    # references too long for a lane.
    rng = random.Random(sum(reference_lengths))
    references = [prepare_reference(" ".join(rng.choice("abcdefgh") for _ in range(n))) for n in reference_lengths]
    candidates = [tuple(rng.choice("abcdefghij") for _ in range(rng.randint(0, 90))) for _ in range(TAIL_LANES * 6)]
    candidates += [tuple(rng.choice("abcdefgh") for _ in range(300)) for _ in range(3)]
    chosen = [rng.choice(references) for _ in candidates]
    batch = OverlapBatch(candidates, chosen)
    assert batch.lcs_lengths().tolist() == [_lcs_table(r.tokens, c) for c, r in zip(candidates, chosen)]
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    expected = [scorer.score(" ".join(r.tokens), " ".join(c))["rougeL"].fmeasure for c, r in zip(candidates, chosen)]
    assert batch.rouge_l_f1().tolist() == expected
    assert [lcs_length(r.tokens, c) for c, r in zip(candidates, chosen)] == batch.lcs_lengths().tolist()


FORMAT_PIECES = ["<think>", "</think>", "\\boxed{", "{", "}", " yes", "No.", " ", "\n", "\u2003", "\x1c",
                 "[10, 20, 100, 200]", "The answer is:", "\\boxed{}", "x"]


def _format_rules_one_by_one(text):
    """format_problem's rules as stated, each tag searched for on its own."""
    opens, closes = text.count(THINK_OPEN), text.count(THINK_CLOSE)
    if opens == 0 or closes == 0:
        return "missing_think"
    if opens > 1 or closes > 1:
        return "several_think_blocks"
    start, end = text.find(THINK_OPEN), text.find(THINK_CLOSE)
    if end < start:
        return "think_tags_out_of_order"
    if text[:start].strip():
        return "text_before_think"
    if not text[start + len(THINK_OPEN) : end].strip():
        return "empty_think"
    boxes = text.count(BOXED_OPEN)
    if boxes == 0:
        return "missing_boxed"
    if boxes > 1:
        return "several_boxed"
    box_start = text.find(BOXED_OPEN)
    if box_start < end:
        return "boxed_inside_think"
    content = boxed_content(text, box_start)
    if content is None:
        return "unbalanced_boxed"
    if not content.strip():
        return "empty_boxed"
    return None


def test_parse_response_applies_the_format_rules_one_by_one():
    for text in random_texts(FORMAT_PIECES, 30_000, seed=7) + ["", " <think>a</think>\\boxed{b}", "\x1c<think>a</think>\\boxed{b}"]:
        assert parse_response(text).format_problem == _format_rules_one_by_one(text), repr(text)


def _per_sample_reference(response, ground_truth):
    """The paper reward for one response with nltk and rouge-score (benchmarks' baseline)."""
    truth = ground_truth_from_dict(json.loads(ground_truth))
    part = parse_response(response)
    if part.answer is None:
        raw = 0.0
    elif truth.task == "open_ended":
        hyp, ref = list(word_tokens(part.answer)), list(word_tokens(truth.answer))
        smoothing = SmoothingFunction().method2
        bleu_1 = sentence_bleu([ref], hyp, weights=(1, 0, 0, 0), smoothing_function=smoothing)
        bleu_4 = sentence_bleu([ref], hyp, weights=(0.25,) * 4, smoothing_function=smoothing)
        rouge_l = rouge_scorer.RougeScorer(["rougeL"]).score(truth.answer, part.answer)["rougeL"].fmeasure
        raw = (bleu_1 + bleu_4 + rouge_l) / 3
    else:
        raw = score_response(response, ground_truth, RewardConfig())["answer"] / 1.5
    boxes, left = judge_reasoning_boxes(part.reasoning, truth.frame)
    coordinate = min(len(boxes) * 0.05, 0.15) + (-0.2 if left else 0.0)
    return 0.9 * (1.5 * raw) + 0.1 * (0.0 if part.format_problem else 1.0) + coordinate


def test_report_scores_equal_the_per_sample_reference_exactly():
    rng = random.Random(8)
    sentences = ["The heart size is normal.", "No pleural effusion.", "Mild cardiomegaly.", "The lungs are clear.",
                 "Left lower lobe atelectasis.", "No pneumothorax is seen."]
    inputs = []
    for prompt in range(60):
        truth = encode_ground_truth("open_ended", " ".join(rng.sample(sentences, rng.randint(2, 5))), Frame(448, 532))
        for _ in range(8):
            answer = " ".join(rng.choice(sentences) for _ in range(rng.randint(0, 6)))
            box = f"[{rng.randint(0, 300)}, {rng.randint(0, 300)}, {rng.randint(301, 600)}, {rng.randint(301, 600)}]"
            inputs.append({"response": f"<think>{box}</think> \\boxed{{{answer}}}", "ground_truth": truth})
    ours = [result["overall"] for result in compute_score(inputs)]
    assert ours == [_per_sample_reference(item["response"], item["ground_truth"]) for item in inputs]


def test_huge_weights_overflow_to_zero_without_warnings():
    truth = encode_ground_truth("closed", "yes", Frame(448, 532), boxes=[(10, 20, 100, 200)])
    responses = ["<think>[10, 20, 100, 200]</think>\\boxed{yes}", "<think>a</think>\\boxed{yes}"] * 3
    config = RewardConfig(answer_weight=1.7e308, grounding_weight=1.7e308, format_weight=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        batch = score_batch(responses, [truth] * len(responses), config)
    assert batch == [score_response(response, truth, config) for response in responses]
    assert [result["overall"] for result in batch][:2] == [0.0, 1.7e308]  # inf is logged as 0
