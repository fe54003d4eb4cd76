"""What every source parser yields: one ``Sample`` per (image, task) and a ``SkipLog`` of what it dropped.

Sources differ in everything else; from here on the build treats them alike.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from rewards.boxes import Box

# Task families: report sections, visual question answering, phrase grounding.
TASKS = ("findings", "impression", "vqa", "grounding")
# Splits as we name them (MIMIC's own names; other sources are mapped onto them).
SPLITS = ("train", "validate", "test")
# How releases spell them (Ext-VQA's files train/valid/test, Medical-CXR-VQA's train/val/test, ...).
SPLIT_NAMES = {"train": "train", "training": "train", "valid": "validate", "val": "validate",
               "validate": "validate", "validation": "validate", "dev": "validate", "test": "test", "testing": "test"}


@dataclass(frozen=True, slots=True)  # slots: a full build holds ~1.5M of these
class Sample:
    sample_id: str  # unique and stable across builds, e.g. "mimic-cxr/findings/s50414267"
    source: str  # "mimic-cxr", "openi", "ms-cxr", "mimic-ext-vqa", "medical-cxr-vqa"
    task: str  # one of TASKS
    subtype: str  # question type, report section or grounding category
    split: str  # one of SPLITS
    subject: str  # patient identifier used by the leakage check ("mimic:10000032", "openi:12")
    image: Path  # the original image file
    answer: str | tuple[str, ...]
    answer_kind: str  # the reward's task type: "closed", "multi_object" or "open_ended"
    question: str | None = None  # VQA question or grounding phrase
    boxes: tuple[Box, ...] = ()  # ground-truth boxes in ORIGINAL image pixels, x1 y1 x2 y2
    image_size: tuple[int, int] | None = None  # original (width, height) when the release states it


@dataclass
class SkipLog:
    """Every row a parser could not use, with its reason: counted, never silently lost.

    ``warnings`` are rows that were kept but changed on the way in (text that was not UTF-8 and
    was decoded with a fallback): counted the same way, so that nothing is altered silently.
    """

    rows: list[dict] = field(default_factory=list)
    warnings: list[dict] = field(default_factory=list)

    def skip(self, source: str, reason: str, item: str, detail: str = "") -> None:
        self.rows.append({"source": source, "reason": reason, "item": item, "detail": detail[:300]})

    def warn(self, source: str, reason: str, item: str, detail: str = "") -> None:
        self.warnings.append({"source": source, "reason": reason, "item": item, "detail": detail[:300]})

    def counts(self, rows: list[dict] | None = None) -> dict[str, dict[str, int]]:
        """{source: {reason: count}} of the skipped rows (or of ``rows``, e.g. the warnings)."""
        by_source: dict[str, Counter] = {}
        for row in self.rows if rows is None else rows:
            by_source.setdefault(row["source"], Counter())[row["reason"]] += 1
        return {source: dict(sorted(counter.items())) for source, counter in sorted(by_source.items())}


class SourceMissingError(FileNotFoundError):
    """A source folder exists but lacks a file the release always ships."""


_WHITESPACE = re.compile(r"\s+")


def clean_text(text: str, placeholder: str) -> str:
    """Collapse whitespace (reports are hard-wrapped) and rewrite de-identification placeholders.

    MIMIC writes removed PHI as ``___`` and Open-I as ``XXXX`` (even mid-word: ``x-XXXX``); both
    become ``placeholder`` so the model sees one convention. An empty placeholder drops them.
    """
    text = re.sub(r"_{3,}|X{4,}", placeholder, text)
    return _WHITESPACE.sub(" ", text).strip()


def section_samples(
    source: str,
    study: str,
    sections: dict[str, str],
    common: dict,
    placeholder: str,
    skips: SkipLog,
) -> list[Sample]:
    """Findings and impression samples of one report; a missing or empty section is skipped,
    counted as ``no_<section>_section``. ``common`` holds the Sample fields both share."""
    samples = []
    for task in ("findings", "impression"):
        text = clean_text(sections.get(task, ""), placeholder)
        if not re.search(r"[A-Za-z]", text):
            skips.skip(source, f"no_{task}_section", study)
            continue
        samples.append(Sample(sample_id=f"{source}/{task}/{study}", source=source, task=task, subtype=task,
                              answer=text, answer_kind="open_ended", **common))
    return samples
