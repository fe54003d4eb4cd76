"""Phrase grounding as an evaluation task (beyond the paper): "locate <phrase>" -> box(es).

Items come from MS-CXR phrases of test patients (``test/grounding.jsonl`` of the data build, task
``grounding``); their reference is the true box text in the model's frame (``[x1, y1, x2, y2]``,
one per box) and their ground truth carries the same boxes. A prediction is scored by the best
box it writes anywhere (the reasoning's boxes, then the final answer's): its IoU with the closest
true box. Reported: mean and median best IoU, IoU@0.5 (the share of items whose best box reaches
0.5), the share of items with any box, each with a bootstrap 95% interval.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rewards.boxes import box_iou, parse_boxes

TASK = "grounding"
IMPLEMENTATION = "best predicted box (reasoning, then answer) vs the closest true box: IoU (rewards.boxes.box_iou)"


def true_boxes(row: dict[str, Any]) -> list[tuple[float, ...]]:
    reference = row["reference"] if isinstance(row["reference"], str) else " ".join(row["reference"])
    return parse_boxes(reference)


def predicted_boxes(row: dict[str, Any]) -> list[tuple[float, ...]]:
    """Every well-formed box of the prediction: the reasoning's (``boxes``), then the answer's."""
    boxes = [tuple(float(v) for v in box) for box in row.get("boxes") or [] if len(box) == 4]
    boxes += parse_boxes(row.get("prediction") or "")
    return [box for box in boxes if box[0] < box[2] and box[1] < box[3]]


def best_iou(row: dict[str, Any]) -> float:
    """IoU of the prediction's best box with its closest true box (0 without a box)."""
    truth = true_boxes(row)
    if not truth:
        raise ValueError(f"grounding item {row.get('id')!r}: its reference holds no box ({row['reference']!r})")
    return max((box_iou(p, t) for p in predicted_boxes(row) for t in truth), default=0.0)


def score_grounding(rows: list[dict[str, Any]], rounds: int, seed: int) -> dict[str, Any]:
    """Mean / median best IoU, IoU@0.5 and box rate over ``rows``, with bootstrap intervals."""
    from eval.score import bootstrap, with_intervals

    ious = np.array([best_iou(row) for row in rows])
    with_box = np.array([float(bool(predicted_boxes(row))) for row in rows])

    def statistic(picked):
        i, b = (ious, with_box) if picked is None else (ious[picked], with_box[picked])
        return {"mean_IoU": float(i.mean()), "median_IoU": float(np.median(i)),
                "IoU@0.5": float((i >= 0.5).mean()), "with_box": float(b.mean())}

    result = with_intervals(statistic(None), bootstrap(statistic, len(rows), rounds, seed))
    result["n"] = len(rows)
    return result
