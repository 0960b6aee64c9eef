"""Retention pages: the subject-access export of one living person, from a case page."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, render_template
from flask_login import current_user

from dr_panel.auth.models import Role, User
from dr_panel.cases.models import Case
from dr_panel.cases.reasons import ReasonRefused
from dr_panel.extensions import db
from dr_panel.retention import subject_access as sar
from dr_panel.retention.forms import SubjectAccessForm
from dr_panel.security import get_or_404, roles

bp = Blueprint("retention", __name__)


def me() -> User:
    return current_user._get_current_object()  # type: ignore[no-any-return]


def _refused(case: Case, message: str) -> Any:
    return render_template(
        "retention/subject_access_form.html", case=case, form=None, refusal=message
    ), 409


@bp.route("/cases/<uuid>/subject-access", methods=["GET", "POST"])
@roles(Role.COORDINATOR)
def subject_access(uuid: str) -> Any:
    """Coordinators of the case's area only: anyone else gets 404, audited (get_or_404)."""
    case = get_or_404(Case, uuid, need="edit")
    form = SubjectAccessForm()
    try:
        sar.scope(case, me())
    except sar.SubjectAccessRefused as refusal:
        if form.is_submitted():
            sar.refuse(case, by=me(), why="deceased")
            db.session.commit()
        return _refused(case, str(refusal))
    if not form.validate_on_submit():
        status = 400 if form.is_submitted() else 200
        return render_template(
            "retention/subject_access_form.html", case=case, form=form, refusal=None
        ), status
    fmt = "json" if form.download.data else "html"
    try:
        content = sar.export(case, reason=form.reason.data or "", by=me(), fmt=fmt)
    except ReasonRefused as refused:
        db.session.commit()  # the refusal's audit entry; nothing was exported
        form.reason.errors = [str(refused)]
        return render_template(
            "retention/subject_access_form.html", case=case, form=form, refusal=None
        ), 400
    db.session.commit()
    if fmt == "json":
        return Response(
            json.dumps(content, ensure_ascii=False, indent=2),
            mimetype="application/json",
            headers={
                "Content-Disposition": (
                    f'attachment; filename="subject-access-{case.reference}.json"'
                )
            },
        )
    return render_template("retention/subject_access.html", case=case, export=content)
