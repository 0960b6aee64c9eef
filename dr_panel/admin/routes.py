"""Admin pages. Every rule of this area reads in one place below."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import func, or_, select

from dr_panel.admin.forms import AgencyForm, AreaForm, UserFilterForm, UserForm
from dr_panel.auth import services as accounts
from dr_panel.auth.models import Role, User, user_areas
from dr_panel.extensions import db
from dr_panel.forms import EmptyForm
from dr_panel.pagination import paginate
from dr_panel.reference import services as reference
from dr_panel.reference.models import Agency, Area, Sector
from dr_panel.search import contains
from dr_panel.security import get_or_404, roles

bp = Blueprint("admin", __name__, url_prefix="/admin")
admin_only = roles(Role.ADMIN)


def me() -> User:
    return current_user._get_current_object()  # type: ignore[no-any-return]


# -- users --------------------------------------------------------------------------------------


@bp.route("/users")
@admin_only
def users() -> Any:
    form = UserFilterForm(request.args)
    stmt = select(User).order_by(User.disabled_at.is_not(None), User.display_name)
    if form.validate():
        if form.q.data:
            typed = form.q.data.strip().lower()
            stmt = stmt.where(
                or_(contains(func.lower(User.display_name), typed), contains(User.email, typed))
            )
        if form.role.data:
            stmt = stmt.where(User.role == Role(form.role.data))
        if form.status.data == "active":
            stmt = stmt.where(User.disabled_at.is_(None))
        elif form.status.data == "disabled":
            stmt = stmt.where(User.disabled_at.is_not(None))
        elif form.status.data == "no2fa":
            stmt = stmt.where(User.totp_enabled_at.is_(None))
    page = paginate(stmt)
    return render_template("admin/users.html", form=form, page=page)


def _details(form: UserForm) -> accounts.AccountDetails:
    return accounts.AccountDetails(
        email=form.email.data,
        display_name=form.display_name.data,
        role=Role(form.role.data),  # validated by the form
        area_codes=form.areas.data or [],
        agency_code=form.agency.data or None,
    )


@bp.route("/users/new", methods=["GET", "POST"])
@admin_only
def new_user() -> Any:
    form = UserForm()
    if form.validate_on_submit():
        try:
            user, _ = accounts.create_user(_details(form), password=None, by=me())
        except accounts.AccountError as err:
            db.session.rollback()
            form[err.field].errors.append(str(err))
        else:
            db.session.commit()
            flash(
                f"Created {user.display_name}'s account. We have e-mailed them a link to choose "
                "their own password; it works once, within 24 hours. Nobody else ever sees it.",
                "success",
            )
            return redirect(url_for("admin.edit_user", uuid=user.uuid))
    return render_template("admin/user_form.html", form=form, user=None)


@bp.route("/users/<uuid>", methods=["GET", "POST"])
@admin_only
def edit_user(uuid: str) -> Any:
    user = get_or_404(User, uuid, need="edit")
    form = UserForm(obj=user) if request.method == "GET" else UserForm()
    if request.method == "GET":
        form.role.data = user.role.value
        form.agency.data = user.agency.code if user.agency else ""
        form.areas.data = [a.ons_code for a in user.areas]
    if form.validate_on_submit():
        try:
            accounts.update_user(user, _details(form), by=me())
        except accounts.AccountError as err:
            db.session.rollback()
            form[err.field].errors.append(str(err))
        else:
            db.session.commit()
            flash(f"Saved {user.display_name}'s account.", "success")
            return redirect(url_for("admin.edit_user", uuid=user.uuid))
    return render_template("admin/user_form.html", form=form, user=user, actions=EmptyForm())


def _account_action(uuid: str, action: Any, done: str) -> Any:
    user = get_or_404(User, uuid, need="edit")
    if not EmptyForm().validate_on_submit():
        flash("The form had expired, so nothing was changed. Try again.", "error")
        return redirect(url_for("admin.edit_user", uuid=user.uuid))
    try:
        action(user)
    except accounts.AccountError as err:
        db.session.rollback()
        flash(str(err), "error")
        return redirect(url_for("admin.edit_user", uuid=user.uuid))
    db.session.commit()
    flash(done.format(name=user.display_name), "success")
    return redirect(url_for("admin.edit_user", uuid=user.uuid))


@bp.route("/users/<uuid>/disable", methods=["POST"])
@admin_only
def disable_user(uuid: str) -> Any:
    return _account_action(
        uuid,
        lambda u: accounts.set_disabled(u, True, by=me()),
        "{name}'s account is disabled and every session of theirs has ended.",
    )


@bp.route("/users/<uuid>/enable", methods=["POST"])
@admin_only
def enable_user(uuid: str) -> Any:
    return _account_action(
        uuid,
        lambda u: accounts.set_disabled(u, False, by=me()),
        "{name}'s account is enabled again.",
    )


@bp.route("/users/<uuid>/reset-password", methods=["POST"])
@admin_only
def reset_password(uuid: str) -> Any:
    return _account_action(
        uuid,
        lambda u: accounts.reset_password(u, by=me()),
        "{name}'s password is reset: the old one no longer works and every session of theirs "
        "has ended. We have e-mailed them a link to choose a new one.",
    )


@bp.route("/users/<uuid>/reset-second-factor", methods=["POST"])
@admin_only
def reset_second_factor(uuid: str) -> Any:
    return _account_action(
        uuid,
        lambda u: accounts.remove_second_factor(u, by=me()),
        "{name}'s two-step verification is removed; they set it up again at their next sign-in.",
    )


# -- areas and agencies --------------------------------------------------------------------------


@bp.route("/areas")
@admin_only
def areas() -> Any:
    counts: dict[int, int] = dict(
        db.session.execute(
            select(user_areas.c.area_id, func.count()).group_by(user_areas.c.area_id)
        ).all()
    )
    return render_template("admin/areas.html", areas=reference.all_areas(), counts=counts)


@bp.route("/areas/new", methods=["GET", "POST"])
@bp.route("/areas/<uuid>", methods=["GET", "POST"])
@admin_only
def edit_area(uuid: str | None = None) -> Any:
    area = get_or_404(Area, uuid, need="edit") if uuid else None
    form = AreaForm(obj=area)
    if form.validate_on_submit():
        try:
            reference.save_area(
                area,
                ons_code=form.ons_code.data,
                name=form.name.data,
                network=form.network.data,
                is_active=form.is_active.data,
                by=me(),
            )
        except reference.ReferenceDataError as err:
            db.session.rollback()
            form.ons_code.errors.append(str(err))
        else:
            db.session.commit()
            flash(f"Saved the area {form.name.data}.", "success")
            return redirect(url_for("admin.areas"))
    return render_template(
        "admin/reference_form.html",
        form=form,
        record=area,
        kind="area",
        back=url_for("admin.areas"),
    )


@bp.route("/agencies")
@admin_only
def agencies() -> Any:
    counts = dict(
        db.session.execute(
            select(User.agency_id, func.count(User.id)).group_by(User.agency_id)
        ).all()
    )
    return render_template("admin/agencies.html", agencies=reference.all_agencies(), counts=counts)


@bp.route("/agencies/new", methods=["GET", "POST"])
@bp.route("/agencies/<uuid>", methods=["GET", "POST"])
@admin_only
def edit_agency(uuid: str | None = None) -> Any:
    agency = get_or_404(Agency, uuid, need="edit") if uuid else None
    form = AgencyForm(obj=agency)
    if request.method == "GET" and agency is not None:
        form.sector.data = agency.sector.value
    if form.validate_on_submit():
        try:
            reference.save_agency(
                agency,
                code=form.code.data,
                name=form.name.data,
                sector=Sector(form.sector.data),
                is_active=form.is_active.data,
                by=me(),
            )
        except reference.ReferenceDataError as err:
            db.session.rollback()
            form.code.errors.append(str(err))
        else:
            db.session.commit()
            flash(f"Saved the agency {form.name.data}.", "success")
            return redirect(url_for("admin.agencies"))
    return render_template(
        "admin/reference_form.html",
        form=form,
        record=agency,
        kind="agency",
        back=url_for("admin.agencies"),
    )
