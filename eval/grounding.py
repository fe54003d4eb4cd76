"""Phrase grounding as an evaluation task (beyond the paper): "locate <phrase>" -> box(es).

Items come from MS-CXR phrases of test patients (``test/grounding.jsonl`` of the data build, task
``grounding``); their reference is the true box text in the model's frame (``[x1, y1, x2, y2]``,
one per box) and their ground truth carries the same boxes. A prediction is scored by the best
box it writes anywhere (the reasoning's boxes, then the final answer's): its IoU with the closest
true box. Reported: mean and median best IoU, IoU@0.5 (the share of items whose best box reaches
0.5), the share of items with any box, each with a bootstrap 95% interval; and the same IoU for the
final answer's boxes alone (the box a reader is given and the reward scores), since a reasoning
that examines a few coarse regions reaches some IoU whatever the image shows. ``region_iou`` is
that image-blind floor: the best of the coarse anatomical regions, picked with hindsight.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from data_prep.cold_start import anatomy_regions
from rewards.boxes import box_iou, parse_boxes
from rewards.frame import Frame

TASK = "grounding"
IMPLEMENTATION = ("best predicted box (reasoning, then answer) vs the closest true box: IoU (rewards.boxes.box_iou); "
                  "answer IoU: the final answer's boxes alone")


def true_boxes(row: dict[str, Any]) -> list[tuple[float, ...]]:
    reference = row["reference"] if isinstance(row["reference"], str) else " ".join(row["reference"])
    return parse_boxes(reference)


def well_formed(boxes: list[tuple[float, ...]]) -> list[tuple[float, ...]]:
    return [box for box in boxes if box[0] < box[2] and box[1] < box[3]]


def answer_boxes(row: dict[str, Any]) -> list[tuple[float, ...]]:
    """The well-formed boxes of the final answer."""
    return well_formed(parse_boxes(row.get("prediction") or ""))


def predicted_boxes(row: dict[str, Any]) -> list[tuple[float, ...]]:
    """Every well-formed box of the prediction: the reasoning's (``boxes``), then the answer's."""
    reasoning = [tuple(float(v) for v in box) for box in row.get("boxes") or [] if len(box) == 4]
    return well_formed(reasoning) + answer_boxes(row)


def iou_with_truth(row: dict[str, Any], boxes: list[tuple[float, ...]]) -> float:
    """IoU of the best of ``boxes`` with its closest true box of ``row`` (0 without a box)."""
    truth = true_boxes(row)
    if not truth:
        raise ValueError(f"grounding item {row.get('id')!r}: its reference holds no box ({row['reference']!r})")
    return max((box_iou(p, t) for p in boxes for t in truth), default=0.0)


def best_iou(row: dict[str, Any]) -> float:
    """IoU of the prediction's best box, reasoning or answer, with its closest true box."""
    return iou_with_truth(row, predicted_boxes(row))


def answer_iou(row: dict[str, Any]) -> float:
    """IoU of the final answer's best box with its closest true box."""
    return iou_with_truth(row, answer_boxes(row))


def region_iou(row: dict[str, Any], frame: Frame) -> float:
    """The image-blind floor: the best coarse anatomical region of ``frame`` (the cold-start
    template's regions: lungs, costophrenic angles, heart, mediastinum) against the true box."""
    regions = [tuple(float(v) for v in box) for box in anatomy_regions(frame.width, frame.height).values()]
    return iou_with_truth(row, regions)


def score_grounding(rows: list[dict[str, Any]], rounds: int, seed: int) -> dict[str, Any]:
    """Mean / median best IoU, IoU@0.5, box rate and the answer's own IoU over ``rows``, with bootstrap intervals."""
    from eval.score import bootstrap, with_intervals

    ious = np.array([best_iou(row) for row in rows])
    answers = np.array([answer_iou(row) for row in rows])
    with_box = np.array([float(bool(predicted_boxes(row))) for row in rows])

    def statistic(picked):
        i, a, b = (ious, answers, with_box) if picked is None else (ious[picked], answers[picked], with_box[picked])
        return {"mean_IoU": float(i.mean()), "median_IoU": float(np.median(i)),
                "IoU@0.5": float((i >= 0.5).mean()), "with_box": float(b.mean()),
                "answer_mean_IoU": float(a.mean()), "answer_median_IoU": float(np.median(a))}

    result = with_intervals(statistic(None), bootstrap(statistic, len(rows), rounds, seed))
    result["n"] = len(rows)
    return result
