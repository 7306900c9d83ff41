"""The `kb eligible` command: which support measures fit an enterprise profile (a JSON file).

Registered by kb/cli.py with `cli.add_command(eligible)`. User errors exit 2 with one line.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import click

_VERDICTS = {"met": "满足", "not_met": "不满足", "unknown": "未知"}


def _fail(message: str):
    from kb.cli import UserError

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


@click.command("eligible")
@click.option("--profile", "profile_path", required=True, type=click.Path(path_type=Path),
              help="JSON file with the enterprise profile (fields as POST /api/eligibility).")
@click.option("--index", "index_dir", type=click.Path(path_type=Path), help="index folder (default ./index)")
@click.option("--json", "as_json", is_flag=True, help="print the /api/eligibility JSON")
@click.option("--today", "today_text", help="judge validity as of this date, YYYY-MM-DD (default: today)")
@click.option("--per-kind", default=6, show_default=True, type=click.IntRange(1, 50),
              help="measures listed per kind of support")
@click.pass_context
def eligible(ctx, profile_path, index_dir, as_json, today_text, per_kind):
    """List the support measures that fit the enterprise in --profile, grouped by kind of support."""
    from kb.cli import USER_ERRORS, UserError
    from kb.config import ConfigError, load_settings
    from kb.eligibility import answer_to_json, match
    from kb.service import KnowledgeBase

    profile = _read_profile(profile_path)
    try:
        today = date.fromisoformat(today_text) if today_text else date.today()
    except ValueError:
        _fail(f"--today must be a date like 2026-11-26, not {today_text!r}")
    try:
        settings = ctx.obj if ctx.obj is not None else load_settings()
        settings = settings.with_overrides(index_dir=index_dir)
        answer = match(KnowledgeBase(settings).searcher(), profile, today, per_kind=per_kind)
    except (ConfigError, *USER_ERRORS) as exc:
        raise UserError(str(exc)) from None
    data = answer_to_json(answer)
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=1))
        return
    _print_text(data)


def _print_text(data: dict) -> None:
    if data["message"]:
        click.secho(data["message"], bold=True)
    if data["region_note"]:
        click.echo(data["region_note"])
    for group in data["groups"]:
        click.secho(f"\n== {group['label']}（{len(group['items'])} 条）", bold=True)
        if group["note"]:
            click.echo("   " + group["note"])
        for n, item in enumerate(group["items"], start=1):
            click.secho(f"[{n}] {item['title']}  " + " > ".join(item["clause_path"]), bold=True)
            click.echo(f"    {item['role_label']} · {item['validity']}")
            for line in item["text"].splitlines():
                click.echo("    " + line)
            click.echo(f"    为何列出：{item['why']}")
            for c in item["conditions"]:
                click.echo(f"    条件：{c['quote'] or c['text']} → {_VERDICTS[c['verdict']]}（{c['reason']}）")
            click.echo(f"    -> {item['url']}")
