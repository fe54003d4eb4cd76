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

``eval.infer`` adds ``provenance``: what produced the row (model, backend, the items file's sha256,
sampling, the format prompt); a resume into a file another setup produced is refused.

Reading (``eval.jsonl.read_jsonl``, for every reader): blank lines are skipped, a bad line is counted
and named and every line after it is read, and the file is never written. ``read_predictions``
also checks each row (the fields above: string id, a known task, case-normalised, string
prediction, string or list reference; a bad row is counted with its reason) and counts repeated
ids. Writing is append-only, one whole line per ``os.write``; a run killed mid-line leaves a torn
last line, which a resuming run (``read_finished(repair=True)``) cuts, and only that: any other bad
line stops the resume with an error that names it and changes nothing.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import Any, Iterable

from eval.jsonl import BadLine, JsonlContent, JsonlError, read_jsonl
from rewards.boxes import parse_boxes
from rewards.response import THINK_CLOSE, first_reasoning, last_boxed

REQUIRED = ("id", "dataset", "task", "prediction", "reference")
TASKS = ("findings", "impression", "vqa", "grounding")  # grounding: phrase -> box (eval.grounding)


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


class PredictionsFileError(JsonlError):
    """A predictions file that cannot be resumed or scored as it is (the message says why and where)."""


def read_finished(path: Path, repair: bool = False) -> list[dict[str, Any]]:
    """The rows a resuming run can trust. A torn last line (a killed run) is ignored, and with
    ``repair`` cut off the file; a valid last line without its newline gets one. Any other bad
    line, or a row without a string ``id``, raises ``PredictionsFileError`` naming it, and the file is
    left as it was: a resume never deletes a prediction."""
    content = read_jsonl(path)
    damaged = content.bad[:-1] if content.torn_offset is not None else list(content.bad)  # the torn line is last
    damaged += [BadLine(line, f"id must be a non-empty string, got {row.get('id')!r:.60}")
                for row, line in zip(content.rows, content.lines) if not (isinstance(row.get("id"), str) and row["id"])]
    if damaged:
        content.bad = sorted(damaged, key=lambda bad: bad.line)
        try:
            content.refuse_bad("predictions file")
        except JsonlError as error:
            raise PredictionsFileError(f"{error}\nRepair or remove these lines by hand, or write to another out.") from None
    if repair and content.torn_offset is not None:
        with path.open("r+b") as handle:
            handle.truncate(content.torn_offset)
    elif repair and content.missing_final_newline:
        with path.open("ab") as handle:
            handle.write(b"\n")
    return content.rows


def prediction_problem(row: dict[str, Any]) -> str | None:
    """Why a predictions row cannot be scored; None if it can. Normalises ``task`` in place
    (``Findings`` -> ``findings``)."""
    missing = [field for field in REQUIRED if field not in row]
    if missing:
        return f"missing {missing}"
    if not isinstance(row["id"], str) or not row["id"]:
        return f"id must be a non-empty string, got {row['id']!r:.60}"
    if not isinstance(row["dataset"], str) or not row["dataset"]:
        return f"dataset must be a non-empty string, got {row['dataset']!r:.60}"
    task = row["task"].strip().lower() if isinstance(row["task"], str) else row["task"]
    if task not in TASKS:
        return f"unknown task {row['task']!r:.60} (expected one of {', '.join(TASKS)})"
    row["task"] = task
    if not isinstance(row["prediction"], str):
        return f"prediction must be a string, got {row['prediction']!r:.60}"
    reference = row["reference"]  # an empty list: a multi-object question whose answer is "none"
    if not (isinstance(reference, str) or (isinstance(reference, list) and all(isinstance(r, str) for r in reference))):
        return f"reference must be a string or a list of strings, got {reference!r:.60}"
    if row.get("question_type") is not None and not isinstance(row["question_type"], str):
        return f"question_type must be a string, got {row['question_type']!r:.60}"
    return None


def read_predictions(path: Path) -> tuple[JsonlContent, list[BadLine]]:
    """Scorable rows (``JsonlContent.rows``; bad lines and invalid rows in ``.bad`` with their
    reason) and the rows whose id repeats an earlier row's (left out, listed second)."""
    content = read_jsonl(path)
    rows, lines, duplicates, first_seen = [], [], [], {}
    for row, line in zip(content.rows, content.lines):
        problem = prediction_problem(row)
        if problem is not None:
            content.bad.append(BadLine(line, problem))
        elif row["id"] in first_seen:
            duplicates.append(BadLine(line, f"duplicate id {row['id']!r} (first on line {first_seen[row['id']]})"))
        else:
            first_seen[row["id"]] = line
            rows.append(row)
            lines.append(line)
    content.rows, content.lines = rows, lines
    content.bad.sort(key=lambda bad: bad.line)
    return content, duplicates


def refuse_if_being_written(path: Path) -> None:
    """``PredictionsFileError`` if a ``PredictionWriter`` (another run) holds ``path`` now."""
    if not path.exists():
        return
    descriptor = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise PredictionsFileError(f"{path}: another run is writing to this file now; wait for it to end, "
                                   "or write to another out") from None
    finally:
        os.close(descriptor)  # releases the probe's lock


class PredictionWriter:
    """Appends rows, one ``os.write`` per line, fsync'd, so each line is either whole or absent.
    Holds an exclusive lock on the file while open: a second writer is refused, not interleaved."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            fcntl.flock(self.descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.descriptor)
            raise PredictionsFileError(f"{path}: another run is writing to this file now; wait for it to end, "
                                       "or write to another out") from None

    def write(self, rows: Iterable[dict[str, Any]]) -> None:
        for row in rows:
            os.write(self.descriptor, (json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8"))
        os.fsync(self.descriptor)

    def close(self) -> None:
        os.close(self.descriptor)


def load_predictions(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Scorable rows, and a ``path:line: reason`` for every line left out. Repeated ids raise
    ``PredictionsFileError`` (a question or report counted twice would change the numbers), and so
    does a missing file (which would otherwise read as one with no rows)."""
    if not Path(path).exists():
        raise PredictionsFileError(f"{path}: the predictions file does not exist")
    try:
        content, duplicates = read_predictions(path)
    except JsonlError as error:
        raise PredictionsFileError(str(error)) from None
    if duplicates:
        shown = "\n  ".join(f"{path}:{bad.line}: {bad.reason}" for bad in duplicates[:10])
        raise PredictionsFileError(f"{path}: {len(duplicates)} row(s) repeat an earlier id; each item must be "
                                   f"scored once:\n  {shown}")
    return content.rows, content.problems()
