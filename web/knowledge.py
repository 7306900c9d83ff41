"""The knowledge base as one request sees it (the flaskr `get_db` pattern): the published build is
pinned on `flask.g` the first time a request asks, so a build published meanwhile is seen by the next
request, never half-way through this one.
"""

from __future__ import annotations

from datetime import date

from flask import current_app, g, request

from kb.index import KnowledgeIndex
from kb.search import Searcher
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


def request_date() -> date:
    """Return the one date this request judges validity on (`as_of`, else KB_TODAY, else today); raises
    QueryError when `as_of` is malformed."""
    if "kb_as_of" not in g:
        from web.api import reference_date

        g.kb_as_of = reference_date(request.args)
    return g.kb_as_of


def validity(doc, as_of: date | None = None):
    """Return a document's validity in the pinned build on `as_of` (default: the request's date);
    the templates' `validity` global."""
    return get_searcher().validity(doc, as_of or request_date())
