"""A data-build output as the later stages read it: one the build left empty is refused, naming the build.

A small or partial release can leave an output of ``data_prep.build`` without rows (no training
patient with a report, no test split...). The build says so: a warning, and ``empty_outputs`` in
its ``manifest.json`` with the reason. A partial build is legitimate (stage-1 data from MIMIC-CXR
alone, say), so the build itself does not fail; instead every stage that reads an output calls
``require_rows`` first, and an empty file stops it with the build's folder and the reason rather
than failing deep inside a trainer (an empty GRPO set, an evaluation over nothing).
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq


class EmptyOutputError(ValueError):
    """A data-build output with no rows, read by a stage that needs rows."""


def row_count(path: Path) -> int:
    """Rows of a Parquet file (from its footer) or non-blank lines of a JSON-lines file."""
    path = Path(path)
    if path.suffix == ".parquet":
        return pq.ParquetFile(path).metadata.num_rows
    with path.open("rb") as handle:
        return sum(1 for line in handle if line.strip())


def require_rows(path: Path, rows: int | None = None) -> int:
    """The number of rows of ``path`` (``rows`` when the caller has counted them); raises
    ``EmptyOutputError`` naming the build and its reason when there are none."""
    count = row_count(path) if rows is None else rows
    if count == 0:
        raise EmptyOutputError(empty_output_message(Path(path)))
    return count


def empty_output_message(path: Path) -> str:
    path = path.resolve()
    for build_dir in (path.parent, path.parent.parent):
        manifest = build_dir / "manifest.json"
        try:
            payload = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        name = path.relative_to(build_dir).as_posix()
        if name in payload.get("outputs", {}):
            reason = payload.get("empty_outputs", {}).get(name, "no reason recorded")
            return (f"{path} has no rows: the data build in {build_dir} left {name} empty ({reason}; see "
                    f"{manifest}). Rebuild with the releases it lacks or other sizes before running this stage.")
    return f"{path} has no rows (no data-build manifest.json beside it lists it as an output)"
