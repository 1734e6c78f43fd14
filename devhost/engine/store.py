"""SQLite persistence for the engine: instances, histories, pending messages (incl. timers), activity work.

One WAL-mode database under the work dir, one connection guarded by a lock. Every state
transition is one transaction: an episode's outcome (``EpisodeCommit``) or an activity's
completion is written atomically, so a process killed at any point restarts from a consistent
state: an unconsumed message is delivered again and an activity without a recorded completion
runs again (at-least-once, like the real host).

Tables:
- ``instances``: one row per instance (current execution, status, input/output/custom status as
  JSON text, parent link for sub-orchestrations, ``state``: the engine's per-execution bookkeeping).
- ``history``: the recorded events, per instance and execution, in order.
- ``actions``: the flattened actions already turned into history (for replay checks and cancels).
- ``messages``: events not yet delivered to an orchestrator; timers are messages visible at FireAt.
- ``activities``: scheduled activity executions whose completion is not yet recorded.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS instances (
    instance_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    execution_id TEXT NOT NULL,
    runtime_status TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    input TEXT,
    output TEXT,
    custom_status TEXT,
    parent_instance_id TEXT,
    parent_execution_id TEXT,
    parent_task_id INTEGER,
    parent_name TEXT,
    state TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS instances_created ON instances(created_at);
CREATE TABLE IF NOT EXISTS history (
    instance_id TEXT NOT NULL,
    execution_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    event TEXT NOT NULL,
    PRIMARY KEY (instance_id, execution_id, seq)
);
CREATE TABLE IF NOT EXISTS actions (
    instance_id TEXT NOT NULL,
    execution_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    sig TEXT NOT NULL,
    PRIMARY KEY (instance_id, execution_id, idx)
);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id TEXT NOT NULL,
    execution_id TEXT,
    visible_at REAL NOT NULL,
    kind TEXT NOT NULL,
    task_id INTEGER,
    event TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_due ON messages(instance_id, visible_at);
CREATE TABLE IF NOT EXISTS activities (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id TEXT NOT NULL,
    execution_id TEXT NOT NULL,
    task_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    input TEXT,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS activities_instance ON activities(instance_id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

TERMINAL = ("Completed", "Failed", "Terminated")
ACTIVE = ("Pending", "Running", "ContinuedAsNew", "Suspended")

INSTANCE_COLUMNS = (
    "instance_id, name, execution_id, runtime_status, created_at, updated_at, input, output, "
    "custom_status, parent_instance_id, parent_execution_id, parent_task_id, parent_name, state"
)


@dataclass
class InstanceRow:
    instance_id: str
    name: str
    execution_id: str
    runtime_status: str
    created_at: float
    updated_at: float
    input: str | None = None
    output: str | None = None
    custom_status: str | None = None
    parent_instance_id: str | None = None
    parent_execution_id: str | None = None
    parent_task_id: int | None = None
    parent_name: str | None = None
    state: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_db(cls, row: tuple[Any, ...]) -> InstanceRow:
        values = list(row)
        values[-1] = json.loads(values[-1] or "{}")
        return cls(*values)

    def to_db(self) -> tuple[Any, ...]:
        return (
            self.instance_id,
            self.name,
            self.execution_id,
            self.runtime_status,
            self.created_at,
            self.updated_at,
            self.input,
            self.output,
            self.custom_status,
            self.parent_instance_id,
            self.parent_execution_id,
            self.parent_task_id,
            self.parent_name,
            json.dumps(self.state),
        )


@dataclass
class Message:
    id: int
    instance_id: str
    execution_id: str | None
    visible_at: float
    kind: str
    task_id: int | None
    event: dict[str, Any]


@dataclass
class NewMessage:
    instance_id: str
    execution_id: str | None
    visible_at: float
    event: dict[str, Any]
    kind: str = ""
    task_id: int | None = None


@dataclass
class ActivityItem:
    id: int
    instance_id: str
    execution_id: str
    task_id: int
    name: str
    input: str | None


@dataclass
class NewActivity:
    instance_id: str
    execution_id: str
    task_id: int
    name: str
    input: str | None


@dataclass
class EpisodeCommit:
    """Everything one episode (or one management operation) changes, written in one transaction."""

    instance: InstanceRow
    consumed_message_id: int | None = None
    history: list[tuple[str, str]] = field(default_factory=list)  # (execution_id, event JSON)
    actions: list[tuple[str, int, str]] = field(default_factory=list)  # (execution_id, idx, sig JSON)
    messages: list[NewMessage] = field(default_factory=list)
    activities: list[NewActivity] = field(default_factory=list)
    new_instances: list[InstanceRow] = field(default_factory=list)
    cancel_timers: list[int] = field(default_factory=list)  # TimerIds of this execution
    clear_pending: bool = False  # drop this instance's undelivered messages and unstarted activities
    keep_event_messages: bool = False  # with clear_pending: keep EventRaised messages (continue-as-new)
    drop_executions_except: tuple[str, ...] | None = None  # history/actions of other executions go


class Store:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.RLock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL is durable against a killed process (the WAL is in the OS cache); only an OS
        # crash or power loss can lose the last transactions, which a dev host may accept.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def read(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # --- meta -------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        rows = self.read("SELECT value FROM meta WHERE key=?", (key,))
        return rows[0][0] if rows else None

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    # --- instances --------------------------------------------------------------------------
    def get_instance(self, instance_id: str) -> InstanceRow | None:
        rows = self.read(f"SELECT {INSTANCE_COLUMNS} FROM instances WHERE instance_id=?", (instance_id,))
        return InstanceRow.from_db(rows[0]) if rows else None

    def query_instances(self, where: str, args: tuple[Any, ...], limit: int | None) -> list[InstanceRow]:
        sql = f"SELECT {INSTANCE_COLUMNS} FROM instances {where} ORDER BY created_at, instance_id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [InstanceRow.from_db(r) for r in self.read(sql, args)]

    def create_instance(self, row: InstanceRow, start: NewMessage) -> None:
        """Insert (or replace a finished) instance with its ExecutionStarted message."""
        with self.transaction() as db:
            self._replace_instance(db, row)
            self._insert_message(db, start)

    def _replace_instance(self, db: sqlite3.Connection, row: InstanceRow) -> None:
        self._delete_instance_data(db, row.instance_id)
        db.execute(f"INSERT INTO instances({INSTANCE_COLUMNS}) VALUES ({','.join('?' * 14)})", row.to_db())

    @staticmethod
    def _delete_instance_data(db: sqlite3.Connection, instance_id: str) -> None:
        for table in ("instances", "history", "actions", "messages", "activities"):
            db.execute(f"DELETE FROM {table} WHERE instance_id=?", (instance_id,))

    def delete_instances(self, instance_ids: list[str]) -> int:
        with self.transaction() as db:
            for iid in instance_ids:
                self._delete_instance_data(db, iid)
        return len(instance_ids)

    def enqueue(self, message: NewMessage) -> int:
        with self.transaction() as db:
            return self._insert_message(db, message)

    @staticmethod
    def _insert_message(db: sqlite3.Connection, m: NewMessage) -> int:
        kind = m.kind or str(m.event.get("EventType"))
        cur = db.execute(
            "INSERT INTO messages(instance_id, execution_id, visible_at, kind, task_id, event) VALUES (?,?,?,?,?,?)",
            (m.instance_id, m.execution_id, m.visible_at, kind, m.task_id, json.dumps(m.event)),
        )
        return int(cur.lastrowid or 0)

    # --- histories --------------------------------------------------------------------------
    def history_texts(self, instance_id: str, execution_id: str) -> list[str]:
        rows = self.read(
            "SELECT event FROM history WHERE instance_id=? AND execution_id=? ORDER BY seq",
            (instance_id, execution_id),
        )
        return [r[0] for r in rows]

    def action_sigs(self, instance_id: str, execution_id: str) -> list[str]:
        rows = self.read(
            "SELECT sig FROM actions WHERE instance_id=? AND execution_id=? ORDER BY idx",
            (instance_id, execution_id),
        )
        return [r[0] for r in rows]

    def history_count(self, instance_id: str, execution_id: str) -> int:
        rows = self.read(
            "SELECT COUNT(*) FROM history WHERE instance_id=? AND execution_id=?", (instance_id, execution_id)
        )
        return int(rows[0][0])

    # --- messages ---------------------------------------------------------------------------
    def next_message(self, instance_id: str, now: float) -> Message | None:
        # A termination jumps the queue (the extension does not run the orchestrator for it), and an
        # ExecutionStarted comes before events carried over from the previous execution.
        rows = self.read(
            "SELECT id, instance_id, execution_id, visible_at, kind, task_id, event FROM messages "
            "WHERE instance_id=? AND visible_at<=? ORDER BY (kind='terminate') DESC, (kind='0') DESC, visible_at, id LIMIT 1",
            (instance_id, now),
        )
        if not rows:
            return None
        r = rows[0]
        return Message(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6]))

    def next_due(self, instance_id: str) -> float | None:
        rows = self.read("SELECT MIN(visible_at) FROM messages WHERE instance_id=?", (instance_id,))
        return rows[0][0] if rows and rows[0][0] is not None else None

    def all_due(self) -> list[tuple[str, float]]:
        return [
            (r[0], r[1])
            for r in self.read("SELECT instance_id, MIN(visible_at) FROM messages GROUP BY instance_id")
        ]

    def drop_message(self, message_id: int) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM messages WHERE id=?", (message_id,))

    # --- activities -------------------------------------------------------------------------
    def pending_activities(self) -> list[ActivityItem]:
        rows = self.read(
            "SELECT id, instance_id, execution_id, task_id, name, input FROM activities ORDER BY id"
        )
        return [ActivityItem(*r) for r in rows]

    def complete_activity(self, item_id: int, message: NewMessage) -> bool:
        """Record an activity's completion as a message for its orchestrator, atomically.

        Returns False (and records nothing) when the work item is gone: its instance finished,
        was terminated or purged meanwhile.
        """
        with self.transaction() as db:
            cur = db.execute("DELETE FROM activities WHERE id=?", (item_id,))
            if cur.rowcount != 1:
                return False
            self._insert_message(db, message)
            return True

    # --- episodes ---------------------------------------------------------------------------
    def commit_episode(self, c: EpisodeCommit) -> list[ActivityItem]:
        """Write one episode's outcome; return the activity work items it created (with ids)."""
        created: list[ActivityItem] = []
        inst = c.instance
        with self.transaction() as db:
            if c.consumed_message_id is not None:
                db.execute("DELETE FROM messages WHERE id=?", (c.consumed_message_id,))
            if c.clear_pending:
                if c.keep_event_messages:
                    db.execute(
                        "DELETE FROM messages WHERE instance_id=? AND kind NOT IN ('15', 'terminate')",
                        (inst.instance_id,),
                    )
                else:
                    db.execute("DELETE FROM messages WHERE instance_id=?", (inst.instance_id,))
                db.execute("DELETE FROM activities WHERE instance_id=?", (inst.instance_id,))
            if c.drop_executions_except is not None:
                marks = ",".join("?" * len(c.drop_executions_except))
                for table in ("history", "actions"):
                    db.execute(
                        f"DELETE FROM {table} WHERE instance_id=? AND execution_id NOT IN ({marks})",
                        (inst.instance_id, *c.drop_executions_except),
                    )
            for timer_id in c.cancel_timers:
                db.execute(
                    "DELETE FROM messages WHERE instance_id=? AND execution_id=? AND kind='11' AND task_id=?",
                    (inst.instance_id, inst.execution_id, timer_id),
                )
            if c.history:
                execs = {e for e, _ in c.history}
                base: dict[str, int] = {}
                for e in execs:
                    row = db.execute(
                        "SELECT COALESCE(MAX(seq), -1) FROM history WHERE instance_id=? AND execution_id=?",
                        (inst.instance_id, e),
                    ).fetchone()
                    base[e] = int(row[0]) + 1
                rows = []
                for e, text in c.history:
                    rows.append((inst.instance_id, e, base[e], text))
                    base[e] += 1
                db.executemany(
                    "INSERT INTO history(instance_id, execution_id, seq, event) VALUES (?,?,?,?)", rows
                )
            if c.actions:
                db.executemany(
                    "INSERT OR REPLACE INTO actions(instance_id, execution_id, idx, sig) VALUES (?,?,?,?)",
                    [(inst.instance_id, e, i, s) for e, i, s in c.actions],
                )
            for child in c.new_instances:
                self._replace_instance(db, child)
            db.execute(
                "UPDATE instances SET name=?, execution_id=?, runtime_status=?, created_at=?, updated_at=?, "
                "input=?, output=?, custom_status=?, parent_instance_id=?, parent_execution_id=?, "
                "parent_task_id=?, parent_name=?, state=? WHERE instance_id=?",
                (*inst.to_db()[1:], inst.instance_id),
            )
            for m in c.messages:
                self._insert_message(db, m)
            for a in c.activities:
                cur = db.execute(
                    "INSERT INTO activities(instance_id, execution_id, task_id, name, input, created_at) "
                    "VALUES (?,?,?,?,?,?)",
                    (a.instance_id, a.execution_id, a.task_id, a.name, a.input, inst.updated_at),
                )
                created.append(
                    ActivityItem(
                        int(cur.lastrowid or 0), a.instance_id, a.execution_id, a.task_id, a.name, a.input
                    )
                )
        return created
