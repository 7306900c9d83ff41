"""The `kb add` command: convert raw policy files and write them into a corpus folder.

Registered by kb/cli.py with `cli.add_command(add)`. Problems are raised as UserError (kb/errors.py
prints them: one line, exit status 2).
"""

from __future__ import annotations

import re
from pathlib import Path

import click

from kb.errors import KbCommand, UserError

_SHOWN = ("title", "doc_no", "published", "issuer", "level", "status")


@click.command("add", cls=KbCommand)
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--corpus", "corpus_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Corpus folder to write into (default: the first configured corpus, ./corpus).")
@click.option("--title", help="Document title (one FILE only).")
@click.option("--issuer", help="Issuing organ(s), e.g. 江苏省人民政府办公厅.")
@click.option("--doc-no", "doc_no", help="文号, e.g. 苏政办发〔2023〕1号 (one FILE only).")
@click.option("--level", help="Administrative level: national, provincial, municipal or county.")
@click.option("--region", help="Region the document applies to, e.g. 江苏省.")
@click.option("--published", help="Date signed/published: YYYY, YYYY-MM or YYYY-MM-DD (one FILE only).")
@click.option("--valid-from", "valid_from", help="Start of validity, YYYY[-MM[-DD]] (one FILE only).")
@click.option("--valid-until", "valid_until", help="End of validity, YYYY[-MM[-DD]] (one FILE only).")
@click.option("--status", help="effective, draft, expired, superseded, repealed or interpretation.")
@click.option("--doc-type", "doc_type", help="Kind of document, e.g. 通知, 办法, 政策解读.")
@click.option("--source", help="Where the document was published (URL) (one FILE only).")
@click.option("--overwrite", is_flag=True, help="Replace an existing corpus file with different content (the old one is kept in .trash/).")
@click.option("--dry-run", "dry_run", is_flag=True, help="Convert and report, but write nothing.")
@click.pass_context
def add(ctx: click.Context, files: tuple[Path, ...], corpus_dir: Path | None, overwrite: bool, dry_run: bool,
        **fields: str | None) -> None:
    """Convert FILE... (.txt .html .htm .docx .pdf .md) into corpus documents.

    Every file is converted before anything is written: if one fails, nothing is
    written. Metadata not given as options is looked for in the text; what is not
    found is reported, never invented. Run `kb build` afterwards to update the index.
    """
    from kb.ingest import IngestError, ingest_file, write_to_corpus
    from kb.ingest.pipeline import PER_FILE_KEYS, clean_overrides, same_source

    settings = ctx.obj  # kb.config.Settings when run as `kb add`
    if corpus_dir is None:
        corpus_dir = Path(settings.corpus_dirs[0]) if settings is not None else Path("corpus")

    overrides = {key: value for key, value in fields.items() if value}
    per_file = [key for key in PER_FILE_KEYS if key in overrides]
    if per_file and len(files) > 1:
        flags = ", ".join("--" + key.replace("_", "-") for key in per_file)
        _fail([f"{flags} describe one document; give a single FILE with them"])
    try:
        overrides = clean_overrides(overrides, "options")
    except IngestError as exc:
        _fail([str(exc)])

    results = []
    errors = []
    for path in files:
        try:
            results.append(ingest_file(path, overrides))
        except IngestError as exc:
            errors.append(str(exc))
    results = _separate_versions(results, corpus_dir)
    targets: dict[Path, Path] = {}
    for result in results:
        target = corpus_dir / f"{result.suggested_name}.md"
        if target in targets:
            errors.append(f"{result.source}: {targets[target]} would also be written to {target} (same 文号 or "
                          "title); add only one of them, or tell them apart with --doc-no or --title")
        targets[target] = result.source
        if not overwrite and target.is_file() and target.read_text("utf-8", errors="replace") != result.doc_text:
            errors.append(f"{result.source}: {target} already exists with different content; "
                          "use --overwrite to replace it")
    if errors:
        _fail(errors, "nothing was written")

    for result in results:
        if dry_run:
            target = corpus_dir / f"{result.suggested_name}.md"
            click.echo(f"would write {target}  (from {result.source})")
        else:
            target = write_to_corpus(result, corpus_dir, overwrite=overwrite)  # IngestError: a user error
            click.echo(f"wrote {target}  (from {result.source})")
        for key in _SHOWN:
            if result.meta.get(key):
                click.echo(f"  {key}: {result.meta[key]}")
        if result.missing:
            click.echo(f"  not found: {', '.join(result.missing)}")
        for warning in result.warnings:
            click.echo(f"  warning: {warning}")
        duplicate = same_source(corpus_dir, result)
        if duplicate:
            click.echo(f"  warning: the same source file is already in the corpus as {duplicate}")
    if dry_run:
        click.echo("dry run: nothing was written")
    else:
        click.echo("Run `kb build` to update the index.")


def _published_in(path: Path) -> str:
    """Return the `published` value of an existing corpus file ("" when unreadable or absent)."""
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            head = handle.read(4096)
    except OSError:
        return ""
    m = re.search(r"^published:\s*(.+)$", head, re.M)
    return m.group(1).strip() if m else ""


def _separate_versions(results: list, corpus_dir: Path) -> list:
    """Give a version its full-date name when another version of the same title takes its name.

    Two versions of one law share the slug and sometimes the year; a file that is the
    same version (same `published`) is left to the usual "already exists" check.
    """
    from dataclasses import replace

    by_name: dict[str, list] = {}
    for result in results:
        by_name.setdefault(result.suggested_name, []).append(result)
    out = []
    for result in results:
        name = result.suggested_name
        target = corpus_dir / f"{name}.md"
        published = result.meta.get("published", "")
        clash = any(other is not result and other.meta.get("published", "") != published
                    for other in by_name[name])
        if target.is_file() and _published_in(target) not in ("", published):
            clash = True
        if clash and result.alternate_name:
            result = replace(result, suggested_name=result.alternate_name)
        out.append(result)
    return out


def _fail(messages: list[str], footer: str = "") -> None:
    """Raise the problems as one UserError (one stderr line, exit status 2)."""
    raise UserError("; ".join(messages) + (f" ({footer})" if footer else ""))
