"""The trainers' and the evaluation's file formats, written atomically and deterministically.

- Stage 1 (LLaMA-Factory): ``stage1/train.jsonl`` in sharegpt form, one conversation per line::

      {"messages": [{"role": "user", "content": "<image>prompt"},
                    {"role": "assistant", "content": "answer"}],
       "images": ["images/mimic-cxr/p10/p10000032/s50414267/<dicom>.jpg"]}

  registered in ``dataset_info.json`` (image paths are relative to the output folder, which is
  LLaMA-Factory's ``dataset_dir``).
- GRPO (EasyR1): ``grpo/train.parquet`` and ``grpo/val.parquet`` with ``prompt`` (one ``<image>``
  per image), ``images`` (list of paths, relative to the output folder: set ``data.image_dir``),
  ``answer`` (the reward's ground-truth JSON) and ``sample_id``.
- Cold-start candidates: ``cold_start/candidates.parquet``, the GRPO schema, read by
  ``data_prep.cold_start`` (a teacher writes reasoning traces for them).
- Evaluation: ``test/xraybench.jsonl``, one item per line::

      {"id", "source", "task", "subtype", "images": [...], "prompt", "answer" (str, or list for
       multi-object), "answer_kind", "ground_truth" (the reward's JSON), "frame": {"width", "height"}}
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable

import pyarrow as pa
import pyarrow.parquet as pq

STAGE1_DATASET = "deepmedix_stage1"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``path`` whole or not at all: a temporary beside it, renamed over it. A failed write
    (a full disk) removes its temporary and leaves ``path`` as it was."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_bytes(data)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    lines = [json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n" for row in rows]
    atomic_write_bytes(path, "".join(lines).encode("utf-8"))


def write_json(path: Path, payload: Any) -> None:
    atomic_write_bytes(path, (json.dumps(payload, ensure_ascii=False, indent=2, sort_keys=True) + "\n").encode("utf-8"))


def write_parquet(path: Path, rows: list[dict[str, Any]]) -> None:
    schema = pa.schema(
        [("prompt", pa.string()), ("images", pa.list_(pa.string())), ("answer", pa.string()), ("sample_id", pa.string())]
    )
    table = pa.Table.from_pylist(rows, schema=schema)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    atomic_write_bytes(path, sink.getvalue().to_pybytes())


def sharegpt_row(prompt: str, answer: str, images: list[str]) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "user", "content": "<image>" * len(images) + prompt},
            {"role": "assistant", "content": answer},
        ],
        "images": images,
    }


def dataset_info_entry(file_name: str) -> dict[str, Any]:
    return {
        "file_name": file_name,
        "formatting": "sharegpt",
        "columns": {"messages": "messages", "images": "images"},
        "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"},
    }


def update_dataset_info(out_dir: Path, name: str, entry: dict[str, Any]) -> None:
    """Add or replace one dataset in ``dataset_info.json``, keeping the others (cold start adds its own)."""
    path = out_dir / "dataset_info.json"
    info = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    info[name] = entry
    write_json(path, info)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ------------------------------------------------------------------ one writer per output folder

LOCK_FILE = ".build.lock"
TEMPORARY = re.compile(r"^\..+\.(\d+)\.tmp$")  # what atomic_write_bytes and data_prep.images write


class OutputLockedError(RuntimeError):
    """Another process is writing into the same output folder."""


@contextmanager
def output_lock(out_dir: Path) -> Iterator[None]:
    """Hold ``out_dir/.build.lock`` (``fcntl.flock``) while writing into ``out_dir``, or refuse.

    Two builds into one folder would interleave their outputs under one manifest. The kernel
    drops the lock when its holder dies, so a crashed build never blocks the next one. The file
    stays (deleting a lock file races with the next taker) and is left empty.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / LOCK_FILE
    handle = path.open("a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise OutputLockedError(
                f"{out_dir} is being written by {holder} (lock {path}); wait for it to finish or "
                "build into another out_dir") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} since {time.strftime('%Y-%m-%dT%H:%M:%S%z')}")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            handle.flush()
            fcntl.flock(handle, fcntl.LOCK_UN)
    finally:
        handle.close()


def remove_stale_temporaries(out_dir: Path) -> list[Path]:
    """Delete the half-written temporaries (``.<name>.<pid>.tmp``) that no running process owns.

    A write that failed (a full disk, a kill) leaves one behind; its writer's pid is in its name.
    Run under ``output_lock``; a temporary whose process still runs (not this one) is left alone.
    """
    removed = []
    for path in sorted(out_dir.rglob(".*.tmp")):
        match = TEMPORARY.match(path.name)
        if match is None or not path.is_file():
            continue
        pid = int(match.group(1))
        if pid != os.getpid() and _running(pid):
            continue
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True
