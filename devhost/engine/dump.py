"""A devhost work dir's durable state as JSON, and back: for fixtures of recorded instances.

``dump_store`` reads every table of the engine's SQLite store (``store.SCHEMA``) of a stopped
devhost into plain rows; ``load_store`` writes such rows into the store of a work dir no devhost
runs on yet. Together they model a deployment over running instances: stop the host, keep its
store, start the new code on it. The rows are the store's own columns, the history events the
JSON text devhost recorded (nothing is re-encoded), so a loaded instance resumes exactly where it
was recorded.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from devhost.engine.store import Store

TABLES = ("instances", "history", "actions", "messages", "activities", "meta")


def dump_store(db_path: Path) -> dict[str, list[dict[str, Any]]]:
    """Every row of the store at ``db_path`` (a stopped devhost's ``durable.sqlite3``), per table."""
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        out: dict[str, list[dict[str, Any]]] = {}
        for table in TABLES:
            cursor = db.execute(f"SELECT * FROM {table} ORDER BY rowid")
            columns = [c[0] for c in cursor.description]
            out[table] = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
        return out
    finally:
        db.close()


def load_store(db_path: Path, tables: dict[str, list[dict[str, Any]]]) -> None:
    """Write ``tables`` (as ``dump_store`` returns them) into a new store at ``db_path``."""
    if db_path.exists():
        raise FileExistsError(f"{db_path} exists: load a recorded store only into a fresh work dir")
    store = Store(db_path)
    try:
        with store.transaction() as db:
            for table in TABLES:
                for row in tables.get(table, []):
                    names = ", ".join(row)
                    marks = ", ".join("?" * len(row))
                    db.execute(f"INSERT INTO {table} ({names}) VALUES ({marks})", tuple(row.values()))
    finally:
        store.close()


__all__ = ["TABLES", "dump_store", "load_store"]
