"""Annotation labels in one SQLite file (WAL), one row per (annotator, item, target, step, dimension).

Every write is its own committed transaction with ``synchronous=FULL``, so nothing submitted is lost
if the browser or the server dies; concurrent annotators write through separate connections with a
busy timeout, so no write is lost to another; an annotator reads and edits only their own rows.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone
from pathlib import Path

BINARY = ("relevance", "correctness", "completeness")
PREFERENCE = ("grounded_preference", "overall_preference")
PER_STEP = ("relevance", "correctness")

SCHEMA = """
CREATE TABLE IF NOT EXISTS labels (
    annotator TEXT NOT NULL, grp TEXT NOT NULL, item_id TEXT NOT NULL, target TEXT NOT NULL,
    model TEXT, step INTEGER NOT NULL, dimension TEXT NOT NULL, value TEXT NOT NULL, updated_at TEXT NOT NULL,
    PRIMARY KEY (annotator, item_id, target, step, dimension)
)
"""


class LabelStore:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(SCHEMA)

    def connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA busy_timeout=30000")
        return db

    def save(self, annotator: str, group: str, item_id: str, labels: list[dict]) -> int:
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        rows = [(annotator, group, item_id, label["target"], label.get("model"),
                 -1 if label.get("step") is None else int(label["step"]), label["dimension"], str(label["value"]), now)
                for label in labels]
        db = self.connect()
        try:
            db.execute("BEGIN IMMEDIATE")
            db.executemany(
                "INSERT INTO labels VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(annotator, item_id, target, step, "
                "dimension) DO UPDATE SET value = excluded.value, model = excluded.model, updated_at = excluded.updated_at",
                rows)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        finally:
            db.close()
        return len(rows)

    def labels_of(self, annotator: str, item_id: str) -> list[dict]:
        db = self.connect()
        try:
            rows = db.execute("SELECT target, step, dimension, value FROM labels WHERE annotator = ? AND item_id = ? "
                              "ORDER BY target, step, dimension", (annotator, item_id)).fetchall()
        finally:
            db.close()
        return [{"target": t, "step": None if s < 0 else s, "dimension": d,
                 "value": int(v) if d in BINARY else v} for t, s, d, v in rows]

    def all_rows(self) -> list[dict]:
        db = self.connect()
        try:
            rows = db.execute("SELECT annotator, grp, item_id, target, model, step, dimension, value, updated_at "
                              "FROM labels ORDER BY item_id, annotator, target, step, dimension").fetchall()
        finally:
            db.close()
        keys = ("annotator", "group", "item_id", "target", "model", "step", "dimension", "value", "updated_at")
        return [dict(zip(keys, row)) for row in rows]
