"""Flask site and JSON API over the knowledge base: app factory, blueprints, security headers."""

from __future__ import annotations

import math

from flask import Flask
from flask.json.provider import DefaultJSONProvider

from kb.config import Settings, check_admin_token, load_settings


def _finite(value):
    """Return `value` with every non-finite float replaced by None (JSON has no Infinity or NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


class StrictJSONProvider(DefaultJSONProvider):
    """Flask's JSON, but always strict: a non-finite number is written as null, never as Infinity or NaN."""

    def dumps(self, obj, **kwargs) -> str:
        kwargs.setdefault("allow_nan", False)
        try:
            return super().dumps(obj, **kwargs)
        except ValueError:  # "Out of range float values are not JSON compliant"
            return super().dumps(_finite(obj), **kwargs)


def create_app(settings: Settings | None = None, kb=None, test_config: dict | None = None) -> Flask:
    """Return the Flask app serving `kb` (a kb.service.KnowledgeBase built from settings if not given)."""
    from kb.service import KnowledgeBase

    app = Flask(__name__)
    app.json = StrictJSONProvider(app)
    app.config.update(MAX_CONTENT_LENGTH=60 * 2**20, JSON_AS_ASCII=False, KB_ADMIN_MAX_FILE_BYTES=20 * 2**20)
    if test_config:
        app.config.update(test_config)
    settings = settings or load_settings()
    check_admin_token(settings.admin_token)
    if settings.trust_proxy:  # the client address (login throttling) and scheme as the proxies saw them
        from werkzeug.middleware.proxy_fix import ProxyFix

        n = settings.trust_proxy
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)
    app.extensions["kb"] = kb or KnowledgeBase(settings)
    app.extensions["kb_settings"] = settings
    app.json.ensure_ascii = False

    from web import admin, api, eligibility, errors, knowledge, pages

    errors.register(app)
    app.register_blueprint(pages.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(eligibility.bp)
    app.register_blueprint(admin.bp)
    from kb.query import NEEDS

    app.jinja_env.filters["highlight"] = pages.highlight
    app.jinja_env.globals.update(
        status_label=pages.status_label,
        level_label=lambda level: pages.LEVEL_LABELS.get(level, level),
        need_label=lambda need: NEEDS.get(need, need),
        citation=pages.citation_text,
        page_link=pages.page_link,
        validity=knowledge.validity,  # the build this request pinned, judged on the request's date
        has_endpoint=lambda name: name in app.view_functions,
    )

    @app.after_request
    def security_headers(response):
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "object-src 'none'; frame-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        )
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response

    return app
