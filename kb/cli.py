"""The `kb` command, all verbs in one click group: build, ask, serve, eligible (and add, from kb/ingest).

Each verb is a thin shell over the library. User errors are the library's typed exceptions; kb/errors.py
turns them into one stderr line and exit status 2, for every verb.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

import click

from kb.config import Settings, check_admin_token, load_settings
from kb.errors import USER_ERRORS, KbCommand, KbGroup, UserError
from kb.search import Filters, SearchOptions

__all__ = ["USER_ERRORS", "UserError", "cli", "main"]


class Progress:
    """Progress on a terminal: stage, counts and rate on one line; silent when not a TTY."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.stage = None
        self.t0 = time.perf_counter()
        self.last = 0.0

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if stage != self.stage:
            if self.stage is not None:
                click.echo("", err=True)
            self.stage, self.t0 = stage, now
        if now - self.last < 0.1 and done < total:
            return
        self.last = now
        rate = done / max(now - self.t0, 1e-6)
        width = 28
        filled = int(width * done / total) if total else width
        click.echo(f"\r{stage:8s} [{'#' * filled}{'.' * (width - filled)}] {done}/{total} {rate:,.0f}/s ",
                   nl=False, err=True)

    def close(self) -> None:
        if self.enabled and self.stage is not None:
            click.echo("", err=True)


def _as_of(text: str | None) -> date:
    """Return the reference date of --as-of (today when not given); a bad date is a user error."""
    if not text:
        return date.today()
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise UserError(f"--as-of must be a date written YYYY-MM-DD, not {text[:20]!r}") from None


def _settings(ctx: click.Context, **overrides) -> Settings:
    base: Settings = ctx.obj
    return base.with_overrides(**overrides)


@click.group(cls=KbGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kb-policy", prog_name="kb")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Policy knowledge base: build the index, ask questions, serve the site."""
    ctx.obj = load_settings()


def _build(settings: Settings, force: bool, quiet: bool) -> None:
    from kb.service import KnowledgeBase

    progress = Progress(enabled=not quiet and sys.stderr.isatty())
    report = KnowledgeBase(settings).build(force=force, progress=progress)
    progress.close()
    if quiet:
        return
    if report.up_to_date:
        click.echo(f"index up to date: {report.documents} documents, {report.chunks} chunks ({report.seconds:.2f}s)")
        return
    click.echo(
        f"built {report.build_name}: {report.documents} documents, {report.clauses} clauses, {report.chunks} chunks; "
        f"embedded {report.embedded} new passages in {report.seconds:.1f}s"
        + (f"; {report.situations} everyday situations ({report.embedded_situations} embedded now)"
           if report.situations else "")
    )
    if report.changed_documents:
        shown = ", ".join(report.changed_documents[:8]) + (" …" if len(report.changed_documents) > 8 else "")
        click.echo(f"  new or changed: {len(report.changed_documents)} ({shown})")
    if report.removed_documents:
        click.echo(f"  removed: {', '.join(report.removed_documents)}")


@cli.command()
@click.option("--corpus", "corpus_dirs", multiple=True, type=click.Path(path_type=Path),
              help="corpus folder (repeatable; default ./corpus)")
@click.option("--index", "index_dir", type=click.Path(path_type=Path), help="index folder (default ./index)")
@click.option("--force", is_flag=True, help="rebuild even when nothing changed")
@click.option("--quiet", "-q", is_flag=True, help="print nothing on success")
@click.pass_context
def build(ctx, corpus_dirs, index_dir, force, quiet):
    """Build or update the index (only new or changed documents are embedded)."""
    _build(_settings(ctx, corpus_dirs=corpus_dirs, index_dir=index_dir), force, quiet)


def _filters(level, region, issuer, doc_type, status, year_from, year_to) -> Filters:
    return Filters(level=tuple(level), region=region or "", issuer=issuer or "", doc_type=doc_type or "",
                   status=tuple(status), year_from=year_from, year_to=year_to)


def filter_options(fn):
    """Add the metadata filter options shared by `ask` (and the API's query parameters)."""
    for opt in reversed([
        click.option("--level", multiple=True, help="national/provincial/municipal/county (repeatable)"),
        click.option("--region", help="region contains this text"),
        click.option("--issuer", help="issuer contains this text"),
        click.option("--doc-type", help="exact doc_type"),
        click.option("--status", multiple=True, help="effective/draft/… (repeatable)"),
        click.option("--year-from", type=int, help="published in or after this year"),
        click.option("--year-to", type=int, help="published in or before this year"),
    ]):
        fn = opt(fn)
    return fn


@cli.command()
@click.argument("question", nargs=-1, required=True)
@click.option("--index", "index_dir", type=click.Path(path_type=Path), help="index folder (default ./index)")
@click.option("-k", "k", default="5", show_default=True, help="number of clauses to return (1-100)")
@click.option("--json", "as_json", is_flag=True, help="print the search result JSON")
@click.option("--mode", type=click.Choice(["hybrid", "lexical", "dense"]), default="hybrid", show_default=True)
@click.option("--active-only", is_flag=True, help="hide expired, superseded and repealed documents")
@click.option("--no-expand", is_flag=True, help="do not add thesaurus expansions to the question")
@click.option("--as-of", "as_of_text", help="judge validity on this date, YYYY-MM-DD (default: today)")
@filter_options
@click.pass_context
def ask(ctx, question, index_dir, k, as_json, mode, active_only, no_expand, as_of_text, level, region, issuer,
        doc_type, status, year_from, year_to):
    """Answer QUESTION with the cited clauses."""
    from kb.present import result_to_json, search_text, to_text
    from kb.search import check_k
    from kb.service import KnowledgeBase

    settings = _settings(ctx, index_dir=index_dir)
    query = " ".join(question)
    filters = replace(_filters(level, region, issuer, doc_type, status, year_from, year_to), active_only=active_only)
    as_of = _as_of(as_of_text)
    options = SearchOptions(k=check_k(k), mode=mode, filters=filters, expand=not no_expand, as_of=as_of)
    kb = KnowledgeBase(settings)
    searcher = kb.searcher()
    result = searcher.search(query, options)

    def validity(doc):
        return searcher.validity(doc, as_of)

    if as_json:
        click.echo(to_text(result_to_json(result, validity, as_of)))
    else:
        click.echo(search_text(query, result, validity))


@cli.command()
@click.option("--index", "index_dir", type=click.Path(path_type=Path), help="index folder (default ./index)")
@click.option("--corpus", "corpus_dirs", multiple=True, type=click.Path(path_type=Path),
              help="corpus to build from when there is no index yet (default ./corpus)")
@click.option("--host", default=None, help="address to listen on (default 127.0.0.1)")
@click.option("--port", default=None, type=click.IntRange(1, 65535), help="port (default 5000)")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="worker processes (more than 1 runs gunicorn; each worker loads the index)")
@click.option("--threads", default=8, show_default=True, type=click.IntRange(1, 256), help="threads per worker")
@click.pass_context
def serve(ctx, index_dir, corpus_dirs, host, port, workers, threads):
    """Serve the site and the JSON API (builds the index first if there is none)."""
    from kb.service import KnowledgeBase

    settings = _settings(ctx, index_dir=index_dir, corpus_dirs=corpus_dirs, host=host, port=port)
    check_admin_token(settings.admin_token)
    if workers > 1 and settings.backend == "milvus" and "://" not in settings.milvus_uri:
        raise UserError("a milvus-lite file is open in one process at a time: serve it with --workers 1 "
                        "(--threads for concurrency), or point KB_MILVUS_URI at a Milvus server")
    kb = KnowledgeBase(settings)
    if not kb.has_index():
        click.echo(f"no index in {settings.index_dir}: building it from {', '.join(map(str, settings.corpus_dirs))} …",
                   err=True)
        _build(settings, force=False, quiet=False)
    kb.index()  # fail now, not on the first request, if the index cannot be opened
    click.echo(f"serving on http://{settings.host}:{settings.port}/ with {workers} worker(s) × {threads} threads "
               "(Ctrl+C to stop)", err=True)
    # SIGTERM ends the server like Ctrl+C does, so the cleanup below runs (by default it would not)
    signal.signal(signal.SIGTERM, _exit_on_signal)
    main_pid = os.getpid()
    try:
        if workers == 1:
            from waitress import serve as waitress_serve

            app = _ready_app(settings, kb)
            try:  # refuse bodies over the app's limit before reading them (waitress would spool up to 1 GB first)
                waitress_serve(app, host=settings.host, port=settings.port, threads=threads, ident="kb",
                               max_request_body_size=app.config["MAX_CONTENT_LENGTH"])
            except ValueError as exc:  # waitress: an address it cannot parse
                raise UserError(f"cannot listen on {settings.host}:{settings.port}: {exc}") from None
        else:
            _serve_gunicorn(settings, workers, threads)
    finally:
        if settings.admin_token and os.getpid() == main_pid:  # not in a gunicorn worker that ends
            # uploads previewed but never committed do not outlive the server
            from web.admin_state import SharedState, default_state_dir

            SharedState(default_state_dir(settings.index_dir)).clear_pending()


def _exit_on_signal(signum, frame):
    raise SystemExit(0)


def _ready_app(settings: Settings, kb=None):
    """Return the Flask app with its index loaded and the encoder warmed up, so the first request is fast."""
    from kb.service import KnowledgeBase
    from web import create_app

    kb = kb or KnowledgeBase(settings)

    def warm(mode: str) -> None:
        try:
            kb.search("专精特新", SearchOptions(mode=mode))
        except USER_ERRORS:
            pass

    warm("lexical")  # jieba, the vocabulary and the index now, before the port opens
    if settings.dense:  # the encoder (torch and its weights, ~4 s) loads while the server already answers;
        # a question that needs it meanwhile waits for it (the encoder loads once, under a lock)
        threading.Thread(target=warm, args=("dense",), name="kb-warm-encoder", daemon=True).start()
    return create_app(settings=settings, kb=kb)


def _serve_gunicorn(settings: Settings, workers: int, threads: int) -> None:
    from gunicorn.app.base import BaseApplication

    class _App(BaseApplication):
        def load_config(self):
            for key, value in {"bind": f"{settings.host}:{settings.port}", "workers": workers, "threads": threads,
                               "worker_class": "gthread", "timeout": 120, "graceful_timeout": 10,
                               "accesslog": None, "loglevel": "warning"}.items():
                self.cfg.set(key, value)

        def load(self):
            return _ready_app(settings)  # in each worker: torch and FAISS are not shared across fork

    _App().run()


# --- kb eligible ------------------------------------------------------------------------------

def _fail(message: str):
    raise UserError(message)


def _read_profile(path: Path):
    from kb.eligibility import ProfileError, parse_profile

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        _fail(f"profile file not found: {path}")
    except IsADirectoryError:
        _fail(f"profile path is a folder, not a JSON file: {path}")
    except UnicodeDecodeError:
        _fail(f"{path}: not UTF-8 text; save the profile as UTF-8 JSON")
    except OSError as exc:
        _fail(f"{path}: cannot read ({exc.strerror})")

    def no_constants(name):
        raise ValueError(f"{name} is not a number")

    try:
        obj = json.loads(text, parse_constant=no_constants)
    except ValueError as exc:
        _fail(f"{path}: not valid JSON ({exc})")
    try:
        return parse_profile(obj)
    except ProfileError as exc:
        _fail(f"{path}: {exc}")


@cli.command("eligible")
@click.option("--profile", "profile_path", required=True, type=click.Path(path_type=Path),
              help="JSON file with the enterprise profile (fields as POST /api/eligibility).")
@click.option("--index", "index_dir", type=click.Path(path_type=Path), help="index folder (default ./index)")
@click.option("--json", "as_json", is_flag=True, help="print the /api/eligibility JSON")
@click.option("--as-of", "as_of_text", help="judge validity on this date, YYYY-MM-DD (default: today)")
@click.option("--today", "today_text", hidden=True, help="old name of --as-of")
@click.option("--per-kind", default=6, show_default=True, type=click.IntRange(1, 50),
              help="measures listed per kind of support")
@click.pass_context
def eligible(ctx, profile_path, index_dir, as_json, as_of_text, today_text, per_kind):
    """List the support measures that fit the enterprise in --profile, grouped by kind of support."""
    from kb.eligibility import match
    from kb.present import answer_to_json, eligibility_text, to_text
    from kb.service import KnowledgeBase

    profile = _read_profile(profile_path)
    today = _as_of(as_of_text or today_text)
    settings = (ctx.obj if ctx.obj is not None else load_settings()).with_overrides(index_dir=index_dir)
    answer = match(KnowledgeBase(settings).searcher(), profile, today, per_kind=per_kind)
    data = answer_to_json(answer)
    text = to_text(data) if as_json else eligibility_text(data)
    if text:
        click.echo(text)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="kb")


from kb.ingest.command import add as _add_command  # noqa: E402  (commands live with their stage)

cli.add_command(_add_command)

if __name__ == "__main__":
    main()
