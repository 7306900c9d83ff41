"""Admin state every worker process of `kb serve` shares, on disk beside the index (`<index>.admin/`):
sessions and login failures in a small SQLite file, pending uploads in a folder, and the status of the
last rebuild in a JSON file written atomically under a file lock.

Nothing here is needed to answer searches; deleting the folder logs every admin out and forgets
previews nobody committed.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path

STATE_SUFFIX = ".admin"


def default_state_dir(index_dir: Path) -> Path:
    """Return the folder beside `index_dir` that holds the admin's shared state."""
    index_dir = Path(index_dir)
    return index_dir.parent / f"{index_dir.name}{STATE_SUFFIX}"


class SharedState:
    """The admin state in `folder` (created private, mode 0700), safe for several processes and threads."""

    def __init__(self, folder: Path, pending_dir: Path | None = None) -> None:
        self.folder = Path(folder)
        self._pending_dir = Path(pending_dir) if pending_dir else self.folder / "pending"
        self._ready = False

    # ---- files

    def _prepare(self) -> None:
        if self._ready:
            return
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        with self._db() as db:
            db.execute("CREATE TABLE IF NOT EXISTS sessions (sid TEXT PRIMARY KEY, created REAL NOT NULL)")
            db.execute("CREATE TABLE IF NOT EXISTS failures (client TEXT NOT NULL, at REAL NOT NULL)")
            db.execute("CREATE INDEX IF NOT EXISTS failures_client ON failures (client, at)")
        self._ready = True

    @contextmanager
    def _db(self):
        db = sqlite3.connect(self.folder / "admin.sqlite", timeout=10, isolation_level=None)
        try:
            db.execute("BEGIN IMMEDIATE")
            yield db
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        finally:
            db.close()

    def pending_dir(self) -> Path:
        """Return the folder of pending uploads (private)."""
        self._pending_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        return self._pending_dir

    def clear_pending(self) -> None:
        """Forget every pending upload (the server is stopping)."""
        if self._pending_dir.is_dir():
            for entry in self._pending_dir.iterdir():
                shutil.rmtree(entry, ignore_errors=True)

    # ---- sessions: a server-side id per login, so logout revokes the cookie

    def add_session(self, sid: str, max_age: float) -> None:
        self._prepare()
        now = time.time()
        with self._db() as db:
            db.execute("DELETE FROM sessions WHERE created < ?", (now - max_age,))
            db.execute("INSERT OR REPLACE INTO sessions (sid, created) VALUES (?, ?)", (sid, now))

    def session_alive(self, sid: str, max_age: float) -> bool:
        self._prepare()
        with self._db() as db:
            row = db.execute("SELECT created FROM sessions WHERE sid = ?", (sid,)).fetchone()
        return row is not None and 0 <= time.time() - row[0] < max_age

    def drop_session(self, sid: str) -> None:
        self._prepare()
        with self._db() as db:
            db.execute("DELETE FROM sessions WHERE sid = ?", (sid,))

    # ---- failed token attempts per client address, counted across workers

    def failures(self, client: str, window: float) -> int:
        """Return how many wrong tokens `client` sent within the last `window` seconds."""
        self._prepare()
        with self._db() as db:
            return db.execute("SELECT COUNT(*) FROM failures WHERE client = ? AND at > ?",
                              (client, time.time() - window)).fetchone()[0]

    def record_failure(self, client: str, window: float) -> int:
        """Record a wrong token from `client`; return how many it sent before this one within `window`."""
        self._prepare()
        now = time.time()
        with self._db() as db:
            db.execute("DELETE FROM failures WHERE at <= ?", (now - window,))
            before = db.execute("SELECT COUNT(*) FROM failures WHERE client = ?", (client,)).fetchone()[0]
            db.execute("INSERT INTO failures (client, at) VALUES (?, ?)", (client, now))
        return before

    # ---- the last rebuild

    @contextmanager
    def build_lock(self):
        """Hold the lock that orders starting and recording rebuilds across workers."""
        self._prepare()
        with open(self.folder / "build.lock", "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def read_build(self) -> dict | None:
        """Return the record of the last rebuild (see web.admin.build.BuildJob), or None."""
        try:
            return json.loads((self.folder / "build.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def write_build(self, record: dict) -> None:
        """Replace the record of the last rebuild atomically."""
        self._prepare()
        tmp = self.folder / f".build.json.{os.getpid()}.{threading.get_ident()}.tmp"
        tmp.write_text(json.dumps(record, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, self.folder / "build.json")
