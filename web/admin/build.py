"""The admin's background rebuild: one job at a time across every worker, its progress and outcome
recorded in the shared state folder, and the pages that start it and show it.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from flask import abort, current_app, jsonify, redirect, render_template, url_for

from kb.corpus import CorpusError
from kb.index import BuildBusy, IndexMismatch, read_current
from web.admin import admin_state, bp
from web.admin_state import SharedState
from web.errors import wants_json
from web.knowledge import knowledge_base

STAGE_LABELS = {"parse": "解析条款", "segment": "分词", "embed": "计算向量"}
STATE_LABELS = {"idle": "本次运行以来还没有重建", "starting": "正在启动", "running": "正在重建",
                "done": "重建完成，新索引已发布", "up_to_date": "索引已是最新，无需重建", "failed": "重建失败"}


@dataclass
class BuildJob:
    """One background rebuild: its progress and outcome (read by the status page and JSON).

    The job is recorded in the shared state folder on every change, so every worker process
    shows the same status; only the process that runs it holds the live object.
    """

    job_id: str
    started: float = field(default_factory=time.time)
    state: str = "starting"  # starting | running | done | up_to_date | failed
    stage: str = ""
    done: int = 0
    total: int = 0
    finished: float | None = None
    message: str = ""
    busy: bool = False
    report: dict | None = None
    pid: int = field(default_factory=os.getpid)
    shared: object = field(default=None, repr=False)  # the SharedState it is recorded in
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _settled: threading.Event = field(default_factory=threading.Event, repr=False)
    _saved: float = field(default=0.0, repr=False)

    RECORD_FIELDS = ("job_id", "started", "state", "stage", "done", "total", "finished", "message", "busy", "report",
                     "pid")

    @property
    def running(self) -> bool:
        return self.state in ("starting", "running")

    @classmethod
    def from_record(cls, record: dict) -> "BuildJob":
        """Return the job a record describes; a running job whose process is gone is shown as interrupted."""
        job = cls(**{k: record[k] for k in cls.RECORD_FIELDS if k in record})
        if job.running and not _process_alive(job.pid):
            job.state, job.finished = "failed", job.finished or time.time()
            job.message = "重建被中断（运行它的服务进程已退出），请重新开始重建。"
        return job

    def record(self) -> dict:
        return {k: getattr(self, k) for k in self.RECORD_FIELDS}

    def save(self, force: bool = True) -> None:
        """Record the job for every worker (progress at most a few times a second)."""
        if self.shared is None:
            return
        now = time.monotonic()
        if not force and now - self._saved < 0.5:
            return
        self._saved = now
        with self._lock:
            record = self.record()
        try:
            self.shared.write_build(record)
        except OSError:  # the status is a convenience: a full disk must not stop the build
            pass

    def progress(self, stage: str, done: int, total: int) -> None:
        with self._lock:
            changed = stage != self.stage or self.state != "running"
            self.state, self.stage, self.done, self.total = "running", stage, done, total
        self.save(force=changed or done == total)
        self._settled.set()

    def run(self, kb, logger) -> None:
        """Run the build (in its own thread) and record how it ended."""
        try:
            report = kb.build(progress=self.progress)
        except BuildBusy as exc:
            self._finish("failed", f"另一个重建正在运行（可能是命令行的 kb build），请等它结束后再试。({exc})", busy=True)
        except (CorpusError, IndexMismatch, OSError, ValueError) as exc:
            self._finish("failed", f"重建失败：{exc}")
        except Exception as exc:  # a bug: keep the site up, say so, log the traceback
            logger.exception("admin rebuild failed")
            self._finish("failed", f"重建失败（程序错误，详情见服务器日志）：{type(exc).__name__}: {exc}")
        else:
            summary = {
                "build_name": report.build_name, "documents": report.documents, "clauses": report.clauses,
                "chunks": report.chunks, "embedded": report.embedded, "seconds": round(report.seconds, 2),
                "changed_documents": list(report.changed_documents),
                "removed_documents": list(report.removed_documents),
            }
            self._finish("up_to_date" if report.up_to_date else "done", "", report=summary)

    def _finish(self, state: str, message: str, *, busy: bool = False, report: dict | None = None) -> None:
        with self._lock:
            self.state, self.message, self.busy, self.report = state, message, busy, report
            self.finished = time.time()
        self.save()
        self._settled.set()

    def wait_settled(self, seconds: float) -> None:
        """Wait until the build reports progress or ends (a held lock shows at once)."""
        self._settled.wait(seconds)

    def as_dict(self) -> dict:
        with self._lock:
            end = self.finished or time.time()
            return {
                "job_id": self.job_id, "state": self.state, "state_label": STATE_LABELS[self.state],
                "running": self.running,
                "stage": self.stage, "stage_label": STAGE_LABELS.get(self.stage, self.stage),
                "done": self.done, "total": self.total,
                "percent": round(100 * self.done / self.total, 1) if self.total else None,
                "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started)),
                "elapsed": round(end - self.started, 1), "message": self.message, "report": self.report,
            }


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


class AdminState:
    """The admin's state: shared by every worker on disk (SharedState), plus the build this process runs."""

    def __init__(self, shared: SharedState) -> None:
        self._lock = threading.Lock()
        self.shared = shared
        self._local_job: BuildJob | None = None

    @property
    def job(self) -> BuildJob | None:
        """The last rebuild any worker started (the live object when this process runs it)."""
        record = self.shared.read_build()
        if record is None:
            return None
        local = self._local_job
        if local is not None and local.job_id == record.get("job_id"):
            return local
        return BuildJob.from_record(record)

    def start_build(self, kb, logger) -> tuple[BuildJob, bool]:
        """Start a rebuild thread unless one runs in any worker; returns (job, started)."""
        with self._lock, self.shared.build_lock():
            current = self.job
            if current is not None and current.running:
                return current, False
            job = BuildJob(job_id=secrets.token_hex(6), shared=self.shared)
            job.save()
            self._local_job = job
        threading.Thread(target=job.run, args=(kb, logger), daemon=True, name="kb-admin-build").start()
        return job, True


@bp.post("/build")
def build_start():
    """Start a rebuild in a background thread (one at a time) and show its progress."""
    job, started = admin_state().start_build(knowledge_base(), current_app.logger)
    if not started:
        abort(409, description="已有一个重建正在运行，请等待它结束。")
    job.wait_settled(3.0)
    if job.busy:
        abort(409, description=job.message)
    if wants_json():
        return jsonify(job.as_dict()), 202
    return redirect(url_for("admin.build_status"), code=303)


def _build_view() -> dict:
    job = admin_state().job
    view = job.as_dict() if job else {"state": "idle", "state_label": STATE_LABELS["idle"], "running": False}
    view["current_build"] = read_current(Path(knowledge_base().settings.index_dir))
    return view


@bp.get("/build")
def build_status():
    """Progress of the last rebuild; refreshes itself (admin.js, or a meta refresh without JS)."""
    return render_template("admin/build.html", job=_build_view(), stage_labels=STAGE_LABELS)


@bp.get("/build/status.json")
def build_status_json():
    """Progress of the last rebuild as JSON (polled by admin.js)."""
    return jsonify(_build_view())
