"""XrayBench, the paper's evaluation set: rebuilt from the sources' test splits, or read locally.

Rebuild: for every (source, task, subtype) of the paper's composition (Fig. 1b; ``composition`` in
the build config) draw that many test-split samples, deterministically under the seed; where a
source has fewer, all are taken and the shortfall is reported.

Local: the hub dataset (``Qika/xraybench``) has no published schema, so a local copy is read
through a column mapping (``columns``: images, prompt, answer, and optionally task and subject).
Its patients must be known for the leakage check: from the ``subject`` column, or from MIMIC paths
(``p10/p10000032/...``) in the image column; an item whose patient cannot be found is an error.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from data_prep import readers
from data_prep.mixtures import draw
from data_prep.records import Sample, SourceMissingError

MIMIC_SUBJECT_IN_PATH = re.compile(r"(?:^|/)p\d{2}/p(\d{8})/")


def compose(
    test_samples: list[Sample], composition: list[dict[str, Any]], scale: float, seed: int
) -> tuple[list[Sample], list[dict[str, Any]]]:
    """The rebuilt benchmark and, per composition row that fell short, {source, task, subtype, target, drawn}."""
    chosen, shortfalls = [], []
    for row in composition:
        pool = [
            s for s in test_samples
            if (s.source, s.task, s.subtype) == (row["source"], row["task"], row["subtype"]) and s.split == "test"
        ]
        target = int(round(row["count"] * scale))
        picked = draw(pool, target, seed, f"xraybench/{row['source']}/{row['task']}/{row['subtype']}")
        if len(picked) < target:
            shortfalls.append({**{k: row[k] for k in ("source", "task", "subtype")}, "target": target, "drawn": len(picked)})
        chosen.extend(picked)
    return chosen, shortfalls


@dataclass(frozen=True)
class LocalItem:
    item_id: str
    images: tuple[Path, ...]
    prompt: str
    answer: str | tuple[str, ...]
    task: str | None
    subject: str


def _rows(path: Path) -> list[dict[str, Any]]:
    """Every item of the local copy; strict (``skips=None``): a bad line or record refuses the file,
    since a skipped item would silently change the benchmark."""
    if path.suffix == ".jsonl":
        return [row for _, row in readers.json_lines(path, "xraybench", None)]
    if path.suffix == ".json":
        return [row for _, _, row in readers.json_records(path, "xraybench", None)]
    if path.suffix == ".parquet":
        return readers.parquet_rows(path)
    raise ValueError(f"{path}: local XrayBench must be .jsonl, .json or .parquet")


def _mapped(row: dict[str, Any], where: str, columns: dict[str, str | None], name: str) -> Any:
    """The value of our field ``name`` in ``row``, through the column mapping (None if unmapped)."""
    key = columns.get(name)
    if key is None:
        return None
    if key not in row:
        raise ValueError(f"{where}: no column {key!r} (mapped from {name!r}); has {sorted(row)}")
    return row[key]


def load_local(folder: Path, file: str, columns: dict[str, str | None]) -> list[LocalItem]:
    path = folder / file
    if not path.exists():
        raise SourceMissingError(f"xraybench.mode=local but {path} does not exist")
    items = []
    for number, row in enumerate(_rows(path)):
        column = functools.partial(_mapped, row, f"{path} row {number}", columns)
        raw_images = column("images")
        images = raw_images if isinstance(raw_images, list) else [raw_images]
        if not all(isinstance(image, str) for image in images):
            raise ValueError(f"{path} row {number}: images must be paths (strings); map them or export them first")
        subject = column("subject")
        if subject is None:
            found = {m.group(1) for image in images if (m := MIMIC_SUBJECT_IN_PATH.search(image))}
            if len(found) != 1:
                raise ValueError(
                    f"{path} row {number}: cannot tell its patient for the leakage check (no 'subject' column "
                    f"mapped and no MIMIC path in {images}); map xraybench.local.columns.subject"
                )
            subject = found.pop()
        subject = str(subject)
        if re.fullmatch(r"1\d{7}", subject):  # a bare MIMIC subject_id
            subject = f"mimic:{subject}"
        answer = column("answer")
        items.append(
            LocalItem(
                item_id=f"xraybench/{number}",
                images=tuple(folder / image for image in images),
                prompt=str(column("prompt")).replace("<image>", "").strip(),
                answer=tuple(answer) if isinstance(answer, list) else str(answer),
                task=column("task"),
                subject=subject,
            )
        )
    return items
