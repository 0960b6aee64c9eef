"""Broadcast pages on the ``alerts`` blueprint (``/ldis``). Every rule of this part reads here:

=====  ======================================  ============================================
GET    /ldis/subscribers                       coordinator: subscribers of their areas
GET    /ldis/subscribers/new                   coordinator
POST   /ldis/subscribers/new                   coordinator; areas they coordinate only
GET    /ldis/subscribers/<uuid>                coordinator; ``Subscriber.can_view``
POST   /ldis/subscribers/<uuid>                coordinator; ``Subscriber.can_edit``
POST   /ldis/subscribers/<uuid>/disable        coordinator; ``Subscriber.can_edit``
POST   /ldis/subscribers/<uuid>/enable         coordinator; ``Subscriber.can_edit``
POST   /ldis/subscribers/<uuid>/rotate-secret  coordinator; ``Subscriber.can_edit``, webhooks
GET    /ldis/alerts/<uuid>/deliveries          coordinator; ``Alert.can_edit``; own areas' rows
GET    /ldis/ack/<uuid>                        public: the e-mail's acknowledgement page
POST   /ldis/ack/<uuid>                        public, with CSRF: acknowledge that delivery
=====  ======================================  ============================================

Admins manage nothing here: subscribers belong to an area's LDIS, run by its coordinators.
"""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select
from werkzeug.exceptions import NotFound

from dr_panel.alerts import subscribers as subs
from dr_panel.alerts.broadcast import (
    acknowledge,
    deliveries_elsewhere,
    delivery_counts,
    delivery_query,
)
from dr_panel.alerts.broadcast_forms import (
    DeliveryFilterForm,
    DisableForm,
    SubscriberFilterForm,
    SubscriberForm,
)
from dr_panel.alerts.models import Alert, Channel, Delivery, Scope, Subscriber
from dr_panel.alerts.routes import bp
from dr_panel.auth.models import Role, User
from dr_panel.dbtypes import parse_uuid
from dr_panel.extensions import db
from dr_panel.forms import EmptyForm
from dr_panel.pagination import paginate
from dr_panel.reference.models import Area
from dr_panel.security import get_or_404, public, roles

coordinators = roles(Role.COORDINATOR)
DELIVERIES_PER_PAGE = 100


def me() -> User:
    return current_user._get_current_object()  # type: ignore[no-any-return]


def _my_areas() -> list[Area]:
    return list(
        db.session.scalars(
            select(Area).where(Area.id.in_(me().area_ids or {-1})).order_by(Area.name)
        )
    )


def _details(form: SubscriberForm, channel: Channel) -> subs.Details:
    return subs.Details(
        channel=channel,
        name=form.name.data or "",
        organisation=form.organisation.data,
        address=form.address.data,
        area_codes=form.areas.data or [],
        audiences=form.audiences.data or [],
        receives_restricted=bool(form.receives_restricted.data),
    )


def _field_error(form: SubscriberForm, err: subs.SubscriberError) -> None:
    target = form[err.field] if err.field and err.field in form else form.name
    target.errors = [*target.errors, str(err)]  # type: ignore[misc]


# -- subscribers --------------------------------------------------------------------------------


@bp.get("/subscribers")
@coordinators
def subscribers() -> Any:
    form = SubscriberFilterForm(request.args)
    if form.validate():
        stmt = subs.query_for(me(), channel=form.channel.data, status=form.status.data,
                              q=form.q.data)
    else:
        stmt = subs.query_for(me())
    return render_template(
        "alerts/subscribers.html", form=form, page=paginate(stmt),
        audience_labels=subs.audience_labels,
    )


@bp.route("/subscribers/new", methods=["GET", "POST"])
@coordinators
def new_subscriber() -> Any:
    form = SubscriberForm(areas=_my_areas())
    if request.method == "GET":
        form.areas.data = [a.ons_code for a in _my_areas()][:1]
    if form.validate_on_submit():
        try:
            sub, secret = subs.create(_details(form, Channel(form.channel.data)), by=me())
        except subs.SubscriberError as err:
            db.session.rollback()
            _field_error(form, err)
        else:
            db.session.commit()
            if secret:
                return render_template(
                    "alerts/subscriber_secret.html", sub=sub, secret=secret, until=None
                )
            flash(f"Added {sub.name}: they receive the next alert for their areas.", "success")
            return redirect(url_for("alerts.subscriber", uuid=sub.uuid))
    return render_template("alerts/subscriber_form.html", form=form, sub=None)


@bp.route("/subscribers/<uuid>", methods=["GET", "POST"])
@coordinators
def subscriber(uuid: str) -> Any:
    need = "view" if request.method == "GET" else "edit"
    sub = get_or_404(Subscriber, uuid, need=need)
    # The areas a coordinator can tick: their own, plus those the subscriber already has
    # (shown, and kept whatever is ticked, since only their coordinators may remove them).
    choices = {a.id: a for a in [*_my_areas(), *sub.areas]}
    form = SubscriberForm(areas=sorted(choices.values(), key=lambda a: a.name))
    if request.method == "GET":
        form.channel.data = sub.channel.value
        form.name.data = sub.name
        form.organisation.data = sub.organisation
        form.address.data = sub.email if sub.channel == Channel.EMAIL else sub.url
        form.areas.data = [a.ons_code for a in sub.areas]
        form.audiences.data = subs.audiences_of(sub)
        form.receives_restricted.data = sub.receives_restricted
    form.channel.data = sub.channel.value  # the channel never changes
    if form.validate_on_submit():
        try:
            subs.update(sub, _details(form, sub.channel), by=me())
        except subs.SubscriberError as err:
            db.session.rollback()
            _field_error(form, err)
        else:
            db.session.commit()
            flash(f"Saved {sub.name}.", "success")
            return redirect(url_for("alerts.subscriber", uuid=sub.uuid))
    return render_template(
        "alerts/subscriber_form.html", form=form, sub=sub, disable_form=DisableForm(),
        actions=EmptyForm(), secret_overlap=_overlap_open(sub),
        audience_labels=subs.audience_labels,
    )


def _overlap_open(sub: Subscriber) -> bool:
    from dr_panel.dbtypes import utcnow

    until = sub.previous_secret_until
    return bool(sub.previous_secret_enc and until is not None and until > utcnow())


def _expired_form(sub: Subscriber) -> Any:
    flash("The form had expired, so nothing was changed. Try again.", "error")
    return redirect(url_for("alerts.subscriber", uuid=sub.uuid))


@bp.post("/subscribers/<uuid>/disable")
@coordinators
def disable_subscriber(uuid: str) -> Any:
    sub = get_or_404(Subscriber, uuid, need="edit")
    form = DisableForm()
    if not form.validate_on_submit():
        if form.reason.errors:
            flash(" ".join(form.reason.errors), "error")
            return redirect(url_for("alerts.subscriber", uuid=sub.uuid))
        return _expired_form(sub)
    try:
        given_up = subs.disable(sub, form.reason.data, by=me())
    except subs.SubscriberError as err:
        db.session.rollback()
        flash(str(err), "error")
        return redirect(url_for("alerts.subscriber", uuid=sub.uuid))
    db.session.commit()
    note = f" {given_up} waiting deliveries were cancelled." if given_up else ""
    flash(f"{sub.name} is disabled: nothing more is sent to them.{note}", "success")
    return redirect(url_for("alerts.subscriber", uuid=sub.uuid))


@bp.post("/subscribers/<uuid>/enable")
@coordinators
def enable_subscriber(uuid: str) -> Any:
    sub = get_or_404(Subscriber, uuid, need="edit")
    if not EmptyForm().validate_on_submit():
        return _expired_form(sub)
    try:
        resent = subs.enable(sub, by=me())
    except subs.SubscriberError as err:
        db.session.rollback()
        flash(str(err), "error")
        return redirect(url_for("alerts.subscriber", uuid=sub.uuid))
    db.session.commit()
    missed = (
        f" {resent} message{'' if resent == 1 else 's'} they missed that still "
        f"{'matters' if resent == 1 else 'matter'} will be sent again now."
        if resent else ""
    )
    flash(f"{sub.name} is enabled again: they receive the next alert for their areas.{missed}",
          "success")
    return redirect(url_for("alerts.subscriber", uuid=sub.uuid))


@bp.post("/subscribers/<uuid>/rotate-secret")
@coordinators
def rotate_secret(uuid: str) -> Any:
    sub = get_or_404(Subscriber, uuid, need="edit")
    if not EmptyForm().validate_on_submit():
        return _expired_form(sub)
    try:
        secret, until = subs.rotate_secret(sub, by=me())
    except subs.SubscriberError as err:
        db.session.rollback()
        flash(str(err), "error")
        return redirect(url_for("alerts.subscriber", uuid=sub.uuid))
    db.session.commit()
    return render_template("alerts/subscriber_secret.html", sub=sub, secret=secret, until=until)


# -- the delivery dashboard ---------------------------------------------------------------------


@bp.get("/alerts/<uuid>/deliveries")
@coordinators
def deliveries(uuid: str) -> Any:
    alert = get_or_404(Alert, uuid, need="edit")
    numbers = [v.number for v in alert.versions if v.issued_at is not None]
    form = DeliveryFilterForm(request.args, versions=numbers)
    filters: dict[str, Any] = {}
    if form.validate():
        filters = {
            "status": form.status.data or None,
            "channel": form.channel.data or None,
            "version": int(form.version.data) if form.version.data else None,
        }
    page = paginate(delivery_query(alert, viewer=me(), **filters),
                    per_page=DELIVERIES_PER_PAGE)
    return render_template(
        "alerts/deliveries.html", alert=alert, form=form, page=page,
        counts=delivery_counts(alert), elsewhere=deliveries_elsewhere(alert, viewer=me(),
                                                                     **filters),
    )


# -- the acknowledgement page (public: the link in the e-mail) ----------------------------------


def _delivery_or_404(raw: str) -> Delivery:
    value = parse_uuid(raw)
    found = (
        db.session.scalar(
            select(Delivery).where(Delivery.uuid == value, Delivery.channel == Channel.EMAIL)
        )
        if value
        else None
    )
    if found is None:
        raise NotFound()
    return found


@bp.route("/ack/<uuid>", methods=["GET", "POST"])
@public
def ack(uuid: str) -> Any:
    delivery = _delivery_or_404(uuid)
    form = EmptyForm()
    if request.method == "POST":
        if not form.validate_on_submit():
            flash("The page had expired, so nothing was recorded. Press the button again.",
                  "error")
            return redirect(url_for("alerts.ack", uuid=delivery.uuid))
        if acknowledge(delivery):
            db.session.commit()
        return redirect(url_for("alerts.ack", uuid=delivery.uuid))
    from dr_panel.alerts.broadcast import content_of

    # Anyone holding the link sees this page (it may have been forwarded): a restricted alert
    # shows its reference only; its content stays in the e-mail and behind a sign-in.
    version = delivery.version
    title = None if version.scope is Scope.RESTRICTED else content_of(version).get("title")
    return render_template("alerts/ack.html", delivery=delivery, form=form, title=title)
