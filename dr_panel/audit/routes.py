"""The admin's view of the audit log, filterable and paged; filters live in the URL."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any

from flask import Blueprint, render_template, request
from sqlalchemy import select
from wtforms import DateField, StringField
from wtforms import SelectChoice as Opt
from wtforms.validators import Length, Optional, ValidationError

from dr_panel.audit.models import AuditEntry, Outcome
from dr_panel.auth.models import Role
from dr_panel.dbtypes import UTC, parse_uuid
from dr_panel.forms import ChoiceField, GetForm
from dr_panel.pagination import paginate
from dr_panel.search import contains, starts_with
from dr_panel.security import roles

bp = Blueprint("audit", __name__, url_prefix="/admin/audit")


class AuditFilterForm(GetForm):
    actor = StringField("Who (e-mail contains)", validators=[Optional(), Length(max=254)])
    action = StringField(
        "Action starts with",
        validators=[Optional(), Length(max=60)],
        description="For example auth.login_failed, account. or access.denied",
    )
    outcome = ChoiceField(
        "Outcome",
        choices=[Opt("", "Any")] + [Opt(o.value, o.value.title()) for o in Outcome],
        validators=[Optional()],
    )
    record = StringField("Record id (UUID)", validators=[Optional(), Length(max=36)])
    since = DateField("From (date)", validators=[Optional()])
    until = DateField("To (date)", validators=[Optional()])

    def validate_record(self, field):  # type: ignore[no-untyped-def]
        if field.data and parse_uuid(field.data) is None:
            raise ValidationError("A record id looks like 3f2b8c1e-9d4a-4b7e-8c21-5a6f0e9d1b2c.")

    def validate_until(self, field):  # type: ignore[no-untyped-def]
        if field.data and self.since.data and field.data < self.since.data:
            raise ValidationError("The end date is before the start date. Swap them.")


@bp.route("")
@roles(Role.ADMIN)
def log() -> Any:
    form = AuditFilterForm(request.args)
    stmt = select(AuditEntry).order_by(AuditEntry.seq.desc())
    if form.validate():
        if form.actor.data:
            stmt = stmt.where(contains(AuditEntry.actor_label, form.actor.data.strip().lower()))
        if form.action.data:
            stmt = stmt.where(starts_with(AuditEntry.action, form.action.data.strip()))
        if form.outcome.data:
            stmt = stmt.where(AuditEntry.outcome == Outcome(form.outcome.data))
        if form.record.data:
            stmt = stmt.where(AuditEntry.object_uuid == str(parse_uuid(form.record.data)))
        if form.since.data:
            stmt = stmt.where(
                AuditEntry.occurred_at >= datetime.combine(form.since.data, time(), UTC)
            )
        if form.until.data:
            end = datetime.combine(form.until.data, time(), UTC) + timedelta(days=1)
            stmt = stmt.where(AuditEntry.occurred_at < end)
    return render_template("audit/log.html", form=form, page=paginate(stmt))
