"""The one JSONL reader of the evaluation (items, predictions), and the evaluation items file.

Every reader of a JSONL file under ``eval/`` goes through ``read_jsonl``, so they all behave alike:

- a blank (whitespace-only) line is skipped;
- a line that is not UTF-8, not standard JSON (``NaN`` included), nested too deeply or not a JSON
  object is a *bad line*: counted and named (``path:line: reason``), never a traceback, and every
  line after it is still read;
- a last line without its newline is kept if it parses (a file written by another tool), and is
  a *torn last line* if it does not (a writer killed mid-line);
- the file is never written to: only ``eval.predictions.read_finished(repair=True)`` (a resuming
  ``eval.infer``) may cut a torn last line, and nothing else.

What a bad line means is the caller's decision: ``eval.infer`` refuses to start on any (naming
them); ``eval.score``, ``eval.report``, the arena and the viewer count and name them and go on
with every good row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class JsonlError(ValueError):
    """A JSONL file that cannot be used as it is; the message names the file and its lines."""


@dataclass(frozen=True)
class BadLine:
    line: int  # 1-based
    reason: str


@dataclass
class JsonlContent:
    """What a JSONL file holds: its good rows (with their line numbers) and every line it could not use."""

    path: Path
    rows: list[dict[str, Any]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)  # line number of each row
    bad: list[BadLine] = field(default_factory=list)
    blank: int = 0  # blank lines skipped
    torn_offset: int | None = None  # byte offset where a torn last line starts
    missing_final_newline: bool = False  # the last line parsed but has no newline

    def problems(self) -> list[str]:
        return [f"{self.path}:{bad.line}: {bad.reason}" for bad in self.bad]

    def refuse_bad(self, what: str, shown: int = 10) -> None:
        """Raise ``JsonlError`` naming the bad lines (the first ``shown``), if there are any."""
        if self.bad:
            listed = "\n  ".join(self.problems()[:shown])
            more = f"\n  ... and {len(self.bad) - shown} more" if len(self.bad) > shown else ""
            raise JsonlError(f"{self.path}: {len(self.bad)} bad line(s) in the {what}; nothing was changed:\n  "
                             f"{listed}{more}")


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not standard JSON")


def parse_json_object(text: str | bytes) -> tuple[dict[str, Any] | None, str | None]:
    """(object, None) or (None, why not): strict UTF-8, standard JSON, an object at the top."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as error:
            return None, f"not UTF-8 (byte {error.start})"
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        return None, "JSON nested too deeply"
    except ValueError as error:  # JSONDecodeError included
        return None, f"not valid JSON ({error})"
    if not isinstance(value, dict):
        return None, f"not a JSON object (a JSON {type(value).__name__ if value is not None else 'null'})"
    return value, None


def read_jsonl(path: Path) -> JsonlContent:
    """Every JSON object of ``path``, with every line that is not one counted and named (see the
    module docstring). A missing file reads as empty; the file is never modified."""
    path = Path(path)
    content = JsonlContent(path)
    if not path.exists():
        return content
    if not path.is_file():  # a directory, a FIFO (which would block): a clear error, not an OSError
        raise JsonlError(f"{path} is not a regular file")
    data = path.read_bytes()
    parts = data.split(b"\n")
    offset = 0
    for number, raw in enumerate(parts, start=1):
        last = number == len(parts)
        if last and raw == b"":  # the file ends with a newline
            break
        start, offset = offset, offset + len(raw) + 1
        if not raw.strip():
            content.blank += 1
            continue
        row, reason = parse_json_object(raw)
        if last and reason is not None and not reason.startswith("not a JSON object"):
            content.torn_offset = start
            reason = f"torn last line (no newline at the end of the file; an interrupted write?): {reason}"
        if reason is not None:
            content.bad.append(BadLine(number, reason))
            continue
        content.rows.append(row)
        content.lines.append(number)
        content.missing_final_newline = last
    return content


def _string_list(value: Any, allow_empty: bool = False) -> bool:
    return isinstance(value, list) and (allow_empty or bool(value)) and all(isinstance(v, str) for v in value)


def item_problem(item: dict[str, Any]) -> str | None:
    """Why an evaluation item (``data_prep``'s test schema) cannot be used; None if it can."""
    missing = [key for key in ("id", "task", "images", "prompt", "answer") if key not in item]
    if missing:
        return f"missing {missing}"
    if not isinstance(item["id"], str) or not item["id"]:
        return f"id must be a non-empty string, got {item['id']!r}"
    if not isinstance(item["task"], str) or not item["task"].strip():
        return f"task must be a non-empty string, got {item['task']!r}"
    if not _string_list(item["images"]):
        return "images must be a non-empty list of paths"
    if not isinstance(item["prompt"], str):
        return "prompt must be a string"
    if not (isinstance(item["answer"], str) or _string_list(item["answer"], allow_empty=True)):  # []: "none of them"
        return f"answer must be a string or a list of strings, got {item['answer']!r:.80}"
    return None


def read_items(path: Path) -> JsonlContent:
    """The evaluation items of ``path``: bad lines, invalid items and repeated ids are counted and
    named in ``bad`` (a repeated id keeps its first item). A missing file is an error."""
    path = Path(path)
    if not path.is_file():
        raise JsonlError(f"{path}: the evaluation items file does not exist")
    content = read_jsonl(path)
    rows, lines, first_seen = [], [], {}
    for row, line in zip(content.rows, content.lines):
        problem = item_problem(row)
        if problem is None and row["id"] in first_seen:
            problem = f"duplicate id {row['id']!r} (first on line {first_seen[row['id']]})"
        if problem is not None:
            content.bad.append(BadLine(line, problem))
            continue
        first_seen[row["id"]] = line
        rows.append(row)
        lines.append(line)
    content.rows, content.lines = rows, lines
    content.bad.sort(key=lambda bad: bad.line)
    return content
