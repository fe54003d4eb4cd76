"""The reward's components (paper eq. 4-6), each a small pure function of already-parsed parts.

``rewards.deepmedix`` parses a response once and combines these; custom rewards can reuse them.
"""

from __future__ import annotations

import numpy as np

from rewards.boxes import (
    Box,
    BoxVerdict,
    box_iou,
    judge_box,
    judge_boxes,
    parse_boxes,
    parse_boxes_batch,
)
from rewards.frame import Frame
from rewards.ground_truth import GroundTruth
from rewards.normalize import answer_items, normalize_answer
from rewards.response import format_problem
from rewards.text_overlap import OverlapBatch, prepare_reference, word_tokens


def closed_answer_score(answer: str | None, reference: str) -> float:
    """1 if the normalised answer equals the normalised reference (see rewards.normalize), else 0."""
    if answer is None:
        return 0.0
    return 1.0 if normalize_answer(answer) == normalize_answer(reference) else 0.0


def multi_object_f1(answer: str | None, reference: tuple[str, ...]) -> float:
    """F1 between the answer's item set and the reference's; repeating an item earns nothing.

    Both empty (the question's answer is "none") scores 1.
    """
    if answer is None:
        return 0.0
    return items_f1(answer_items(answer), answer_items(list(reference)))


def items_f1(predicted: frozenset[str], expected: frozenset[str]) -> float:
    """``multi_object_f1`` of already normalised item sets."""
    if not predicted and not expected:
        return 1.0
    matched = len(predicted & expected)
    if matched == 0:
        return 0.0
    precision, recall = matched / len(predicted), matched / len(expected)
    return 2 * precision * recall / (precision + recall)


def open_ended_overlaps(answers: list[str | None], references: list[str]) -> list[float]:
    """Mean of word-level BLEU-1, BLEU-4 (sentence-level, smoothed) and ROUGE-L F1, per pair.

    Batched because BLEU counts a whole batch's n-grams at once (rewards.text_overlap).
    """
    candidates = [() if answer is None else word_tokens(answer) for answer in answers]
    batch = OverlapBatch(candidates, [prepare_reference(reference) for reference in references])
    bleu = batch.bleu((1, 4))
    return ((bleu[:, 0] + bleu[:, 1] + batch.rouge_l_f1()) / 3).tolist()  # IEEE steps: as in Python


def open_ended_overlap(answer: str | None, reference: str) -> float:
    return open_ended_overlaps([answer], [reference])[0]


def answer_scores(answers: list[str | None], truths: list[GroundTruth]) -> list[float]:
    """Unweighted answer scores in [0, 1] by task (eq. 4 without the factor 1.5), for a batch.

    Each distinct (task, answer, reference) of the batch is scored once: a GRPO batch holds n
    rollouts of every prompt, so references repeat n times and short VQA answers ("yes", "no", a
    few organs) repeat across a group. What is shared lives for this call only.
    """
    slot_of: dict[tuple, int] = {}
    distinct: list[tuple[str, str | None, str | tuple[str, ...]]] = []
    slots = []
    for answer, truth in zip(answers, truths, strict=True):
        key = (truth.task, answer, truth.answer)
        slot = slot_of.get(key)
        if slot is None:
            slot = slot_of[key] = len(distinct)
            distinct.append(key)
        slots.append(slot)
    normalized: dict[str, str] = {}  # each text normalised once: answers and references repeat
    items: dict[str | tuple[str, ...], frozenset[str]] = {}

    def normal(text: str) -> str:
        value = normalized.get(text)
        if value is None:
            value = normalized[text] = normalize_answer(text)
        return value

    def item_set(answer: str | tuple[str, ...]) -> frozenset[str]:
        value = items.get(answer)
        if value is None:
            value = items[answer] = answer_items(answer if isinstance(answer, str) else list(answer))
        return value

    scores = [0.0] * len(distinct)
    open_ended = []
    for slot, (task, answer, reference) in enumerate(distinct):
        if answer is None:
            continue  # no boxed answer: 0 (closed_answer_score, multi_object_f1, the overlap alike)
        if task == "closed":
            scores[slot] = 1.0 if normal(answer) == normal(reference) else 0.0  # closed_answer_score
        elif task == "multi_object":
            scores[slot] = items_f1(item_set(answer), item_set(reference))  # multi_object_f1
        else:
            open_ended.append(slot)
    overlaps = open_ended_overlaps([distinct[s][1] for s in open_ended], [distinct[s][2] for s in open_ended])
    for slot, overlap in zip(open_ended, overlaps):
        scores[slot] = overlap
    return [scores[slot] for slot in slots]


def answer_score(answer: str | None, truth: GroundTruth) -> float:
    return answer_scores([answer], [truth])[0]


def format_score(response: str) -> float:
    """Eq. 6: 1 if the response follows the reasoning format (rewards.response), else 0."""
    return 0.0 if format_problem(response) else 1.0


_VALID, _OUTSIDE_FRAME = BoxVerdict.VALID, BoxVerdict.OUTSIDE_FRAME


def judge_reasoning_boxes(reasoning: str, frame: Frame) -> tuple[tuple[Box, ...], bool]:
    """(distinct valid boxes in order of appearance, whether any box leaves the frame)."""
    if "[" not in reasoning:  # no box written: nothing to parse
        return (), False
    valid: dict[Box, None] = {}
    left_frame = False
    for box in parse_boxes(reasoning):
        verdict = judge_box(box, frame)
        if verdict is _VALID:
            valid.setdefault(box)
        elif verdict is _OUTSIDE_FRAME:
            left_frame = True
    return tuple(valid), left_frame


def count_reasoning_boxes(reasonings: list[str], frames: list[Frame]) -> tuple[list[int], list[bool]]:
    """``judge_reasoning_boxes`` of each (reasoning, frame) of a batch, as counts: (number of distinct
    valid boxes, whether any box leaves the frame). The batch's boxes are read, judged and told
    apart all at once (``boxes.parse_boxes_batch``, ``boxes.judge_boxes``), which is what a GRPO
    batch of thousands of responses, each citing a few boxes, spends its time on otherwise."""
    count = len(reasonings)
    boxes, owner = parse_boxes_batch(reasonings)
    if owner.size == 0:
        return [0] * count, [False] * count
    per_reasoning = np.bincount(owner, minlength=count)
    cited = np.flatnonzero(per_reasoning)
    widths, heights = np.zeros(count, dtype=np.int64), np.zeros(count, dtype=np.int64)
    widths[cited] = [frames[i].width for i in cited.tolist()]
    heights[cited] = [frames[i].height for i in cited.tolist()]
    valid, outside = judge_boxes(boxes, widths[owner], heights[owner])
    left_frame = np.zeros(count, dtype=bool)
    left_frame[owner[outside]] = True
    owner, boxes = owner[valid], boxes[valid]
    # Distinct valid boxes: a box equal (==, as dict keys compare) to an earlier one of the same
    # reasoning is not counted again. Sorted, equal boxes of a reasoning are neighbours.
    order = np.lexsort((boxes[:, 3], boxes[:, 2], boxes[:, 1], boxes[:, 0], owner))
    owner, boxes = owner[order], boxes[order]
    repeated = (owner[1:] == owner[:-1]) & (boxes[1:] == boxes[:-1]).all(axis=1)
    distinct = np.bincount(owner, minlength=count) - np.bincount(owner[1:][repeated], minlength=count)
    return distinct.tolist(), left_frame.tolist()


def coordinate_score(
    valid_boxes: int,
    left_frame: bool,
    per_box: float = 0.05,
    cap: float = 0.15,
    out_of_frame_penalty: float = -0.2,
) -> float:
    """Eq. 5: ``per_box`` for each distinct valid box, at most ``cap``, plus the penalty phi once
    when any box leaves the image.

    The paper writes ``max(N * 0.05 + phi, 0.15)``. Read literally, every response would score at
    least 0.15 and the term would be a constant that GRPO's group-normalised advantage cancels:
    it could not "focus the model's awareness" on regions as the paper intends. The released code
    caps instead (``min``), and so do we. We apply the cap to the box credit before adding phi,
    so that citing more valid boxes cannot cancel the penalty for a box outside the image
    (with the cap last, 7 valid boxes and one outside would still earn the full 0.15).
    """
    return min(valid_boxes * per_box, cap) + (out_of_frame_penalty if left_frame else 0.0)


def grounding_score(predicted: tuple[Box, ...], expected: tuple[Box, ...], iou_threshold: float = 0.5) -> float:
    """Beyond the paper (opt-in): how well the reasoning's boxes find the ground-truth boxes.

    Boxes are matched one to one, greedily by IoU (pairs below ``iou_threshold`` never match), and
    the score is the matched IoU summed over ``max(len(predicted), len(expected))``: a missed box
    and a surplus box both cost, and repeating a box earns nothing. 0 when there is nothing to find.
    """
    if not expected or not predicted:
        return 0.0
    pairs = sorted(
        ((box_iou(p, e), i, j) for i, p in enumerate(predicted) for j, e in enumerate(expected)),
        reverse=True,
    )
    used_predicted, used_expected, total = set(), set(), 0.0
    for iou, i, j in pairs:
        if iou < iou_threshold:
            break
        if i in used_predicted or j in used_expected:
            continue
        used_predicted.add(i)
        used_expected.add(j)
        total += iou
    return total / max(len(predicted), len(expected))
