"""dr-panel: case review for drug-related deaths and non-fatal overdoses."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from pathlib import Path
from typing import Any

from flask import Flask
from flask_openapi3 import OpenAPI
from sqlalchemy import event
from sqlalchemy.engine import Engine

from config import PROJECT_ROOT, Config, load_config, retention_problem, serving_problem
from dr_panel import retry
from dr_panel.crypto import KeyConfigError, KeyRing
from dr_panel.errors import StartupError
from dr_panel.extensions import csrf, db, migrate
from dr_panel.version import __version__

__all__ = ["StartupError", "__version__", "create_app"]
log = logging.getLogger("dr_panel")


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    if isinstance(dbapi_connection, sqlite3.Connection):
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=5000")
        # Readers never block the writer: the development server serves requests in threads.
        cur.execute("PRAGMA journal_mode=WAL")
        cur.close()


def create_app(config: Config | str | None = None, **overrides: Any) -> Flask:
    if not isinstance(config, Config):
        config = load_config(config, **overrides)
    from dr_panel.webapi import Problem, on_invalid

    # flask-openapi3's Flask: the JSON API's operations validate their pydantic models and the
    # OpenAPI document is generated from them (dr_panel.api.v1); its own document pages are off.
    app = OpenAPI(
        __name__,
        instance_path=config.INSTANCE_PATH,
        template_folder=str(PROJECT_ROOT / "templates"),
        static_folder=str(PROJECT_ROOT / "static"),
        doc_ui=False,
        validation_error_status=400,
        validation_error_model=Problem,
        validation_error_callback=on_invalid,
    )
    app.config.from_mapping(config.as_flask_mapping())
    Path(app.instance_path).mkdir(mode=0o700, parents=True, exist_ok=True)
    _configure_logging(app)
    _load_keys(app, config)

    db.init_app(app)
    migrate.init_app(app, db, directory=str(PROJECT_ROOT / "migrations"))
    csrf.init_app(app)
    from dr_panel import throttling

    throttling.init_app(app)  # Redis when configured; production refuses unsafe storage
    retry.init_app(app)  # every channel's retry schedule, checked once
    from dr_panel.runtime import web as runtime_web

    runtime_web.init_app(app)  # the trusted proxy's client address, one log line per request

    from dr_panel import (
        auth,
        models,  # noqa: F401  every table, for migrations
        security,
    )
    from dr_panel.admin.routes import bp as admin_bp
    from dr_panel.audit.routes import bp as audit_bp
    from dr_panel.auth.token_routes import bp as tokens_bp
    from dr_panel.cases.imports import bp as imports_bp
    from dr_panel.cases.routes import bp as cases_bp
    from dr_panel.main.routes import bp as main_bp
    from dr_panel.reviews.routes import bp as reviews_bp

    security.init_app(app)
    auth.init_app(app)
    from dr_panel.trends import aggregates as trend_counts

    trend_counts.init_app(app)  # keeps the trend counts in step with the cases
    from dr_panel.cases import intake
    from dr_panel.reviews.actions import alert_plan_leads

    # What a new case sets off in other domains (cases cannot import them: they import cases).
    intake.init_app(
        app, intake.Effects(counts=trend_counts.BulkCounts, on_linked_nfo=[alert_plan_leads])
    )
    from dr_panel.mail import worker as mail_worker

    mail_worker.init_app(app)  # checks the mail settings; delivers after a request that queued
    app.register_blueprint(main_bp)
    app.register_blueprint(admin_bp)
    app.register_blueprint(audit_bp)
    app.register_blueprint(cases_bp)
    app.register_blueprint(reviews_bp)
    app.register_blueprint(imports_bp)
    from dr_panel.api import v1 as api_v1

    api_v1.register(app)  # /api/v1: every domain's API and the generated OpenAPI document
    app.register_blueprint(tokens_bp)
    from dr_panel.alerts.routes import bp as alerts_bp
    from dr_panel.alerts.routes import public_bp as drug_concern_bp

    app.register_blueprint(alerts_bp)  # /ldis: signals, reports, assessment, drafting, broadcast
    app.register_blueprint(drug_concern_bp)  # the public "report a drug concern" form
    from dr_panel.trends.routes import bp as trends_bp

    app.register_blueprint(trends_bp)
    from dr_panel.trends.downloads import bp as trends_files_bp

    app.register_blueprint(trends_files_bp)  # charts, exports and the extract
    from dr_panel.alerts.feeds import bp as feeds_bp

    app.register_blueprint(feeds_bp)  # the Atom feed and CAP documents of issued alerts
    from dr_panel.retention.routes import bp as retention_bp

    app.register_blueprint(retention_bp)  # the subject-access export
    app.jinja_env.globals["app_version"] = __version__

    @app.context_processor
    def _today() -> dict[str, Any]:
        from dr_panel.dbtypes import utcnow

        return {"today": utcnow().date()}

    app.jinja_env.filters["fromjson"] = lambda text: json.loads(text) if text else {}
    return app


BANK_HOLIDAY_REGIONS = ("ENG", "WLS", "SCT", "NIR")


def _load_keys(app: Flask, config: Config) -> None:
    production = config.ENV_NAME == "production"
    try:
        keys = KeyRing.load(
            Path(config.KEYS_FILE),
            generate=config.GENERATE_KEYS and not production,
            strict_permissions=production,
        )
    except KeyConfigError as err:
        raise StartupError(f"dr-panel cannot start: {err}. See 'Keys' in README.md.") from None
    if production and config.DEBUG:
        raise StartupError("dr-panel cannot start: DEBUG must be off in production.")
    if production and config.WEBHOOK_ALLOW_LOOPBACK:
        raise StartupError(
            "dr-panel cannot start: WEBHOOK_ALLOW_LOOPBACK must be off in production (webhooks "
            "go only to public https endpoints)."
        )
    if config.BANK_HOLIDAY_REGION not in BANK_HOLIDAY_REGIONS:
        raise StartupError(
            "dr-panel cannot start: BANK_HOLIDAY_REGION must be one of "
            f"{', '.join(BANK_HOLIDAY_REGIONS)} (England, Wales, Scotland, Northern Ireland)."
        )
    if (problem := retention_problem(config)) is not None:
        raise StartupError(f"dr-panel cannot start: {problem}")
    if (problem := serving_problem(config)) is not None:
        raise StartupError(f"dr-panel cannot start: {problem}")
    app.extensions["dr_panel.keys"] = keys
    app.secret_key = keys.session
    app.config["WTF_CSRF_SECRET_KEY"] = keys.csrf
    app.extensions["dr_panel.keys_mtime"] = _mtime(Path(config.KEYS_FILE))
    app.before_request(_follow_key_file)


def _mtime(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


def _follow_key_file() -> None:
    """Pick up a changed key file (a field key added or retired by `dr-panel keys`) in every
    running worker without a restart: ``dr_panel.crypto.current``, the one function that every
    reader outside a request calls too."""
    from flask import current_app

    from dr_panel.crypto import current

    current(current_app._get_current_object())  # type: ignore[attr-defined]


def _configure_logging(app: Flask) -> None:
    logger = logging.getLogger("dr_panel")
    if not logger.handlers and not app.testing:
        from dr_panel.runtime.web import formatter

        handler = logging.StreamHandler()
        handler.setFormatter(formatter(app.config["LOG_FORMAT"]))  # DR_PANEL_LOG_FORMAT
        logger.addHandler(handler)
        # Our handler prints every line; the root one Alembic sets up when migrating would print
        # each a second time.
        logger.propagate = False
    logger.setLevel(os.environ.get("DR_PANEL_LOG_LEVEL", "INFO"))
