"""The knowledge base as one request sees it (the flaskr `get_db` pattern): the published build is
pinned on `flask.g` the first time a request asks, so a build published meanwhile is seen by the next
request, never half-way through this one; and the one date the request judges validity on.
"""

from __future__ import annotations

from datetime import date

from flask import current_app, g, request

from kb.index import KnowledgeIndex
from kb.search import QueryError, Searcher
from kb.service import KnowledgeBase


def knowledge_base() -> KnowledgeBase:
    """Return the app's knowledge base (settings, rebuilds); for reading a build use `get_searcher()`."""
    return current_app.extensions["kb"]


def get_searcher() -> Searcher:
    """Return the searcher over the build this request pinned; raises IndexMissing or IndexMismatch."""
    if "kb_searcher" not in g:
        g.kb_searcher = knowledge_base().searcher()
    return g.kb_searcher


def get_index() -> KnowledgeIndex:
    """Return the build this request pinned (the one `get_searcher()` reads)."""
    return get_searcher().index


def today() -> date:
    """Return the date validity is judged against (app.config["KB_TODAY"] or the clock)."""
    value = current_app.config.get("KB_TODAY")
    if isinstance(value, date):
        return value
    if isinstance(value, str) and value:
        return date.fromisoformat(value)
    return date.today()


def reference_date(args) -> date:
    """Return the one date validity is judged on: the `as_of` argument, else KB_TODAY, else today."""
    raw = str(args.get("as_of", "") or "").strip()
    if raw:
        try:
            return date.fromisoformat(raw)
        except ValueError:
            raise QueryError(f"as_of must be a date written YYYY-MM-DD, not {raw[:20]!r}") from None
    return today()


def request_date() -> date:
    """Return the one date this request judges validity on (`as_of`, else KB_TODAY, else today); raises
    QueryError when `as_of` is malformed."""
    if "kb_as_of" not in g:
        g.kb_as_of = reference_date(request.args)
    return g.kb_as_of


def validity(doc, as_of: date | None = None):
    """Return a document's validity in the pinned build on `as_of` (default: the request's date);
    the templates' `validity` global."""
    return get_searcher().validity(doc, as_of or request_date())
