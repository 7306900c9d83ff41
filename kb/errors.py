"""User errors of the `kb` command, handled in one place: a known exception becomes one stderr line and exit 2.

Library code raises its own typed exceptions (ConfigError, CorpusError, IngestError, ProfileError, …);
commands built with `KbCommand` (every verb of kb/cli.py and `kb add`) turn them into
`kb: error: <message>` on stderr with exit status 2. Nothing else prints errors.
"""

from __future__ import annotations

import sys

import click

from kb.backends import BackendError
from kb.config import ConfigError
from kb.corpus import CorpusError
from kb.embed import EncoderError
from kb.index import BuildBusy, IndexMismatch, IndexMissing
from kb.ingest.base import IngestError
from kb.search import QueryError

# every exception whose message is meant for the user (the library's typed errors)
USER_ERRORS: tuple[type[Exception], ...] = (ConfigError, CorpusError, EncoderError, BuildBusy, IndexMismatch,
                                            IndexMissing, QueryError, IngestError, BackendError)


def user_error_types() -> tuple[type[Exception], ...]:
    """Return USER_ERRORS plus the eligibility profile error (imported late: kb.eligibility is heavy)."""
    from kb.eligibility import ProfileError

    return (*USER_ERRORS, ProfileError)


class UserError(click.ClickException):
    """A problem the user can fix: one line `kb: error: …` on stderr, exit status 2."""

    exit_code = 2

    def show(self, file=None) -> None:
        click.echo(f"kb: error: {self.format_message()}", err=True)


def as_user_error(exc: BaseException) -> UserError | None:
    """Return the UserError for a known user-caused exception, or None for a bug."""
    if isinstance(exc, UserError):
        return exc
    if isinstance(exc, user_error_types()):
        return UserError(str(exc))
    if isinstance(exc, OSError):  # a path or address the user gave: not a folder, no permission, in use, disk full
        where = f"{exc.filename}: " if exc.filename else ""
        return UserError(f"{where}{exc.strerror or exc}")
    return None


def _invoke_reporting(invoke, ctx: click.Context):
    """Run `invoke(ctx)`; a known user error leaves as UserError, Ctrl+C as one line and status 130."""
    try:
        return invoke(ctx)
    except KeyboardInterrupt:
        click.echo("kb: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:
        error = as_user_error(exc)
        if error is None or error is exc:
            raise
        raise error from None


class KbCommand(click.Command):
    """A click command whose user errors end as one line and exit status 2 (the one place they are turned so)."""

    def invoke(self, ctx: click.Context):
        return _invoke_reporting(super().invoke, ctx)


class KbGroup(click.Group):
    """The `kb` group: its commands are KbCommands, and its own callback (loading the settings) reports the same way."""

    command_class = KbCommand

    def invoke(self, ctx: click.Context):
        return _invoke_reporting(super().invoke, ctx)
