"""What the viewer shows: evaluation items joined with one or two models' predictions, the
reasoning split into steps with their boxes, and the seeded, blinded annotation sample."""

from __future__ import annotations

import hashlib
import math
import random
import re
from dataclasses import dataclass
from pathlib import Path

from eval.jsonl import read_items
from eval.predictions import extract_answer, read_predictions
from eval.score import holds_whole_response
from rewards.boxes import parse_boxes
from rewards.response import last_boxed

_STEP_MARK = re.compile(r"(?:^|\s)(?=Step\s*\d+\s*[:.)])", re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[.;!?])\s+(?=[A-Z\[(])")


def reasoning_steps(reasoning: str) -> list[dict]:
    """Steps of a reasoning trace: its "Step N:" parts if it has them, else its sentences, each with
    the boxes it writes. A box with a coordinate past float range (``[1e999, ...]`` parses as
    infinity) has no place on the image, nor in the page's JSON: it stays in the step's text and is
    counted in ``unplaceable_boxes``."""
    text = reasoning.strip()
    if not text:
        return []
    parts = [p.strip() for p in _STEP_MARK.split(text) if p.strip()]
    if len(parts) <= 1:
        parts = [p.strip() for p in _SENTENCE_END.split(text) if p.strip()]
    steps = []
    for i, part in enumerate(parts):
        boxes = parse_boxes(part)
        placeable = [list(b) for b in boxes if all(math.isfinite(value) for value in b)]
        steps.append({"index": i, "text": part, "boxes": placeable, "unplaceable_boxes": len(boxes) - len(placeable)})
    return steps


@dataclass(frozen=True)
class ViewItem:
    index: int
    item: dict  # the evaluation item (prompt, answer, images, frame)
    image: Path
    models: tuple[str, ...]  # in display order: left, right
    predictions: tuple[dict, ...]


def with_reasoning(row: dict) -> dict:
    """A row whose ``prediction`` holds a whole response (another tool's output): its reasoning, to show
    as steps, and its final answer read as ``eval.score`` scores it (the last ``\\boxed{}``)."""
    if row.get("reasoning") or not holds_whole_response(row["prediction"]):
        return row
    return {**row, "reasoning": extract_answer(row["prediction"])["reasoning"], "raw_output": row["prediction"],
            "prediction": last_boxed(row["prediction"]) or ""}


def load_view_items(items_file: Path, predictions: dict[str, Path], size: int | None, seed: int,
                    blind: bool, problems: list[str] | None = None) -> list[ViewItem]:
    """The items every model answered. Lines of the items or predictions files that cannot be
    shown (bad JSON, invalid rows, repeated ids: the first is shown) are appended to ``problems``."""
    problems = [] if problems is None else problems
    content = read_items(Path(items_file))
    problems += content.problems()
    items = {item["id"]: item for item in content.rows}
    by_model = {}
    for name, path in predictions.items():
        rows, duplicates = read_predictions(Path(path))
        problems += rows.problems() + [f"{path}:{bad.line}: {bad.reason}" for bad in duplicates]
        by_model[name] = {row["id"]: with_reasoning(row) for row in rows.rows}
    shared = sorted(set(items).intersection(*(set(rows) for rows in by_model.values())))
    if size is not None and size < len(shared):
        shared = sorted(random.Random(seed).sample(shared, size))
    names = list(predictions)
    view = []
    for index, item_id in enumerate(shared):
        order = list(names)
        if blind and len(order) == 2:  # a random side per item, fixed by the seed
            if hashlib.sha256(f"{seed}:{item_id}".encode()).digest()[0] % 2:
                order.reverse()
        image = Path(items_file).parent.parent / items[item_id]["images"][0]
        view.append(ViewItem(index, items[item_id], image, tuple(order),
                             tuple(by_model[name][item_id] for name in order)))
    return view
