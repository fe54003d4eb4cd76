"""The ground-truth schema: everything the reward needs, packed into the answer column.

EasyR1 hands a reward function only ``response``, ``response_length`` and ``ground_truth`` (the
dataset's answer column): not the prompt, not the image, not other columns. So data_prep writes
the answer column as one JSON object per sample::

    {"task": "closed",                     # closed | multi_object | open_ended
     "answer": "yes",                      # str; a list of str for multi_object
     "frame": {"width": 448, "height": 532},   # image size in the model's resized frame
     "boxes": [[112.0, 56.0, 224.0, 168.0]],   # optional: ground-truth boxes, in that frame
     "source": "mimic-ext-vqa",            # optional provenance, ignored by the reward
     "sample_id": "..."}                   # optional, names the sample in error messages

``encode_ground_truth`` writes it (validated), ``parse_ground_truth`` reads it back. A plain string
that is not a JSON object is an upstream-style answer and is typed the way the released reward
types it (see ``legacy_ground_truth``), so datasets written for the released code still train.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from rewards.boxes import Box
from rewards.frame import Frame

TASKS = ("closed", "multi_object", "open_ended")
_KNOWN_KEYS = frozenset({"task", "answer", "frame", "boxes", "source", "sample_id"})


class GroundTruthError(ValueError):
    """A ground truth that does not follow the schema; the message names the sample and the field."""


@dataclass(frozen=True)
class GroundTruth:
    task: str
    answer: str | tuple[str, ...]
    frame: Frame | None = None  # None only for upstream-style plain strings
    boxes: tuple[Box, ...] = ()
    source: str | None = None
    sample_id: str | None = None

    def to_json(self) -> str:
        payload: dict[str, Any] = {
            "task": self.task,
            "answer": list(self.answer) if isinstance(self.answer, tuple) else self.answer,
        }
        if self.frame is not None:
            payload["frame"] = {"width": self.frame.width, "height": self.frame.height}
        if self.boxes:
            payload["boxes"] = [list(box) for box in self.boxes]
        for key in ("source", "sample_id"):
            if getattr(self, key) is not None:
                payload[key] = getattr(self, key)
        return json.dumps(payload, ensure_ascii=False, sort_keys=True)


def legacy_ground_truth(text: str) -> GroundTruth:
    """Type a plain answer string as the released reward does, from the string alone.

    ``|`` and at most 20 words: multi-object (items split on ``|``); at most 2 words: closed;
    otherwise open-ended. There is no frame: the coordinate score falls back to its default frame.
    """
    words = len(text.split())
    if "|" in text and words <= 20:
        return GroundTruth("multi_object", tuple(item.strip() for item in text.split("|")))
    if words <= 2:
        return GroundTruth("closed", text)
    return GroundTruth("open_ended", text)


def _finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def ground_truth_from_dict(payload: dict[str, Any]) -> GroundTruth:
    """Validate a decoded ground-truth object; raises GroundTruthError naming what is wrong."""
    sample = payload.get("sample_id")
    where = f"ground truth of sample {sample!r}" if sample is not None else "ground truth"

    def fail(message: str) -> GroundTruthError:
        return GroundTruthError(f"{where}: {message}")

    unknown = sorted(set(payload) - _KNOWN_KEYS)
    if unknown:
        raise fail(f"unknown keys {unknown}; allowed: {sorted(_KNOWN_KEYS)}")
    task = payload.get("task")
    if task not in TASKS:
        raise fail(f"'task' must be one of {list(TASKS)}, got {task!r}")

    answer = payload.get("answer")
    if task == "multi_object":
        if not isinstance(answer, list) or not all(isinstance(item, str) for item in answer):
            raise fail("'answer' of a multi_object task must be a list of strings (possibly empty)")
        answer = tuple(answer)
    elif not isinstance(answer, str) or not answer.strip():
        raise fail(f"'answer' of a {task} task must be a non-empty string, got {answer!r}")

    frame_payload = payload.get("frame")
    if not isinstance(frame_payload, dict) or set(frame_payload) != {"width", "height"}:
        raise fail("'frame' must be {\"width\": int, \"height\": int} in the model's resized frame")
    try:
        frame = Frame(frame_payload["width"], frame_payload["height"])
    except ValueError as error:
        raise fail(str(error)) from None

    boxes_payload = payload.get("boxes", [])
    if not isinstance(boxes_payload, list):
        raise fail("'boxes' must be a list of [x_min, y_min, x_max, y_max]")
    boxes = []
    for index, box in enumerate(boxes_payload):
        if not (isinstance(box, list) and len(box) == 4 and all(_finite_number(v) for v in box)):
            raise fail(f"box {index} must be four finite numbers, got {box!r}")
        x1, y1, x2, y2 = (float(v) for v in box)
        if not (0 <= x1 < x2 <= frame.width and 0 <= y1 < y2 <= frame.height):
            raise fail(f"box {index} {box} is not a box inside the {frame.width}x{frame.height} frame")
        boxes.append((x1, y1, x2, y2))

    for key in ("source", "sample_id"):
        if key in payload and not isinstance(payload[key], str):
            raise fail(f"'{key}' must be a string")
    return GroundTruth(task, answer, frame, tuple(boxes), payload.get("source"), sample)


def parse_ground_truth(raw: str) -> GroundTruth:
    """Read the answer column. A JSON object must follow the schema (else GroundTruthError);
    any other string is an upstream-style plain answer."""
    if not isinstance(raw, str):
        raise GroundTruthError(f"ground truth must be a string, got {type(raw).__name__}")
    return _parse_ground_truth_text(raw)


@lru_cache(maxsize=8192)  # a GRPO group of n responses shares one ground truth
def _parse_ground_truth_text(raw: str) -> GroundTruth:
    stripped = raw.strip()
    if stripped.startswith("{"):
        try:
            payload = json.loads(stripped)
        except json.JSONDecodeError as error:
            raise GroundTruthError(f"ground truth looks like JSON but does not parse: {error}") from None
        if isinstance(payload, dict):
            return ground_truth_from_dict(payload)
    return legacy_ground_truth(raw)


def encode_ground_truth(
    task: str,
    answer: str | list[str],
    frame: Frame,
    boxes: list[Box] | None = None,
    source: str | None = None,
    sample_id: str | None = None,
) -> str:
    """The answer-column string for one sample; raises GroundTruthError if it would not validate."""
    payload: dict[str, Any] = {
        "task": task,
        "answer": answer,
        "frame": {"width": frame.width, "height": frame.height},
    }
    if boxes:
        payload["boxes"] = [[float(v) for v in box] for box in boxes]
    if source is not None:
        payload["source"] = source
    if sample_id is not None:
        payload["sample_id"] = sample_id
    return ground_truth_from_dict(payload).to_json()
