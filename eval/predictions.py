"""The predictions file: one JSON object per line, written by ``eval.infer`` or by your own code.

Required fields (``eval.score`` needs only these, so outputs of any model can be scored)::

    id           the evaluation item's id
    dataset      "mimic-cxr", "openi", "mimic-ext-vqa", "medical-cxr-vqa", ...
    task         "findings", "impression" or "vqa"
    prediction   the final answer as text (for reports: the report)
    reference    the reference answer: a string, or a list of strings for multi-object VQA

Optional: ``question_type`` (VQA), ``answer_kind`` ("closed" / "multi_object" / "open_ended"),
``reasoning`` (the ``<think>`` text), ``boxes`` (the reasoning's boxes, model frame), ``raw_output``
(the full generation), ``model``.

Writing is append-only, one whole line per ``os.write``; a run killed mid-line leaves a partial
last line, which ``read_finished`` drops (and truncates away), so a resumed run neither duplicates
nor loses an item.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable

from rewards.boxes import parse_boxes
from rewards.response import THINK_CLOSE, first_reasoning, last_boxed

REQUIRED = ("id", "dataset", "task", "prediction", "reference")


def extract_answer(raw_output: str) -> dict[str, Any]:
    """The final answer (last ``\\boxed{}``, else the text after ``</think>``, else everything),
    the reasoning and its boxes."""
    boxed = last_boxed(raw_output)
    if boxed is not None:
        answer = boxed
    elif THINK_CLOSE in raw_output:
        answer = raw_output.rsplit(THINK_CLOSE, 1)[1].strip()
    else:
        answer = raw_output.strip()
    reasoning = first_reasoning(raw_output).strip()
    return {"prediction": answer, "reasoning": reasoning, "boxes": [list(b) for b in parse_boxes(reasoning)]}


def read_finished(path: Path, repair: bool = False) -> list[dict[str, Any]]:
    """Complete rows of a predictions file. A torn last line (a killed run) is ignored, and with
    ``repair`` (a resuming run) cut off the file so the next append starts on a clean line."""
    if not path.exists():
        return []
    data = path.read_bytes()
    rows, keep = [], 0
    for line in data.splitlines(keepends=True):
        if not line.endswith(b"\n"):
            break
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break
        keep += len(line)
    if repair and keep != len(data):
        with path.open("r+b") as handle:
            handle.truncate(keep)
    return rows


class PredictionWriter:
    """Appends rows, one ``os.write`` per line, fsync'd, so each line is either whole or absent."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def write(self, rows: Iterable[dict[str, Any]]) -> None:
        for row in rows:
            os.write(self.descriptor, (json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8"))
        os.fsync(self.descriptor)

    def close(self) -> None:
        os.close(self.descriptor)


def load_predictions(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows with every required field, and a problem line for each row without."""
    rows, problems = [], []
    for number, row in enumerate(read_finished(path), start=1):
        missing = [field for field in REQUIRED if field not in row]
        if missing:
            problems.append(f"{path}:{number}: missing {missing}")
        elif not isinstance(row["prediction"], str):
            problems.append(f"{path}:{number}: prediction must be a string")
        else:
            rows.append(row)
    return rows, problems
