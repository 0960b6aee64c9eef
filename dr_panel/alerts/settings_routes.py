"""An area's spike-scan settings, set by its coordinators (blueprint ``alerts``, ``/ldis``):

=====  =====================================  ==============================================
GET    /ldis/signal-settings                  coordinator: the settings in use in their areas
GET    /ldis/signal-settings/<area uuid>      coordinator; ``Area.can_view`` (their areas)
POST   /ldis/signal-settings/<area uuid>      coordinator; ``Area.can_view``
POST   /ldis/signal-settings/<area uuid>/reset coordinator; ``Area.can_view``
=====  =====================================  ==============================================

What is saved applies from the next scan, over the defaults and the configuration
(``signals.settings_for``); signals already found stay as they are. Every change is audited
with the old and new values (numbers only).
"""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any

from flask import flash, redirect, render_template, url_for
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from dr_panel.alerts import ears
from dr_panel.alerts import signals as sig
from dr_panel.alerts.forms import SignalSettingsForm
from dr_panel.alerts.routes import bp, coordinators, me
from dr_panel.extensions import db
from dr_panel.forms import EmptyForm, plain_number, whole_number
from dr_panel.reference.models import Area
from dr_panel.security import get_or_404

DEFAULTS = ears.Settings()


def _rows() -> list[dict[str, Any]]:
    areas = db.session.scalars(
        select(Area).where(Area.id.in_(current_user.area_ids)).order_by(Area.name)
    ).all()
    stored = sig.stored_overrides()
    return [
        {"area": a, "settings": sig.settings_for(a.ons_code, stored.get(a.id, {})),
         "own": sorted(stored.get(a.id, {}))}
        for a in areas
    ]


@bp.get("/signal-settings")
@coordinators
def signal_settings() -> Any:
    return render_template("alerts/signal_settings.html", rows=_rows(), defaults=DEFAULTS)


@bp.route("/signal-settings/<uuid>", methods=["GET", "POST"])
@coordinators
def edit_signal_settings(uuid: str) -> Any:
    area = get_or_404(Area, uuid, need="view")
    row = sig.stored_row(area.id)
    current = sig.settings_for(area.ons_code, sig.own_overrides(row))
    form = SignalSettingsForm()
    if not form.is_submitted():
        for name in form.METHODS:
            getattr(form, name).data = getattr(current, name)
        for name in form.NUMBERS:
            getattr(form, name).data = plain_number(getattr(current, name))
        form.revision.data = str(row.revision if row else 0)
    status = 200
    if form.validate_on_submit():
        chosen = replace(
            current,
            **{n: bool(getattr(form, n).data) for n in form.METHODS},
            **{n: getattr(form, n).number for n in form.NUMBERS},
        )
        raw_revision = (form.revision.data or "0").strip()
        # A revision that is not a number (a tampered page) is treated as stale.
        revision = whole_number(raw_revision, default=-1)
        try:
            changed = sig.save_area_settings(area, chosen, by=me(), revision=revision)
        except (sig.StaleSettings, StaleDataError, IntegrityError):
            db.session.rollback()
            flash("Someone else saved this area's settings after you opened the page, so yours "
                  "were not saved. Your entries are still below: compare, then save again.",
                  "error")
            fresh = sig.stored_row(area.id)
            form.revision.data = str(fresh.revision if fresh else 0)
            status = 409
        else:
            db.session.commit()
            flash(f"Saved: {len(changed)} setting{'' if len(changed) == 1 else 's'} changed for "
                  f"{area.name}, used from the next scan." if changed else "Nothing had changed.",
                  "success")
            return redirect(url_for("alerts.signal_settings"))
    elif form.is_submitted():
        status = 400
    configured = sig.configured_settings(area.ons_code)
    return render_template(
        "alerts/signal_settings_form.html", form=form, area=area, row=row,
        configured=configured, reset_form=EmptyForm(),
        differs=[f.name for f in fields(ears.Settings)
                 if getattr(current, f.name) != getattr(configured, f.name)],
    ), status


@bp.post("/signal-settings/<uuid>/reset")
@coordinators
def reset_signal_settings(uuid: str) -> Any:
    area = get_or_404(Area, uuid, need="view")
    if not EmptyForm().validate_on_submit():
        flash("The page had expired, so nothing was changed. Press the button again.", "error")
        return redirect(url_for("alerts.edit_signal_settings", uuid=area.uuid))
    if sig.reset_area_settings(area, by=me()):
        db.session.commit()
        flash(f"{area.name} uses the standard settings again, from the next scan.", "success")
    else:
        flash(f"{area.name} already uses the standard settings.", "success")
    return redirect(url_for("alerts.signal_settings"))
