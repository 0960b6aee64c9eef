"""The pages where people manage their own API tokens.

=====  ====================================  ===========================================
GET    /account/tokens                       signed in, in a browser: their own tokens
POST   /account/tokens                       signed in, in a browser: create one
POST   /account/tokens/<uuid>/revoke         signed in, in a browser: their own token only
POST   /account/tokens/<uuid>/renew          signed in, in a browser: their own live token only
=====  ====================================  ===========================================

Ordinary pages (CSRF-protected, HTML errors). A token authenticates nobody here
(``dr_panel.security.CREDENTIALS``), so a leaked token cannot make itself a successor. Tokens
expire (``API_TOKEN_DAYS``, 90 by default); the owner renews a live one here. The rules of
tokens are ``dr_panel.auth.tokens``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import StringField, SubmitField
from wtforms.validators import DataRequired, Length

from dr_panel.auth import tokens as api_tokens
from dr_panel.auth.models import ApiToken, User
from dr_panel.auth.tokens import NAME_MAX, NAME_REQUIRED, TokenError
from dr_panel.dbtypes import utcnow
from dr_panel.extensions import db
from dr_panel.forms import EmptyForm
from dr_panel.security import deny, get_or_404, signed_in

bp = Blueprint("api_tokens", __name__, url_prefix="/account/tokens")


class TokenForm(FlaskForm):
    name = StringField(
        "Name",
        validators=[
            DataRequired(NAME_REQUIRED),
            Length(max=NAME_MAX, message=f"Token names are at most {NAME_MAX} characters."),
        ],
        description="Where or by what the token will be used, so you can tell your tokens apart.",
        render_kw={"autocomplete": "off", "maxlength": NAME_MAX},
    )
    submit = SubmitField("Create token")


def me() -> User:
    return current_user._get_current_object()  # type: ignore[no-any-return]


@bp.get("")
@signed_in
def index() -> Any:
    return _tokens_page(TokenForm())


def _tokens_page(form: TokenForm) -> Any:
    return render_template(
        "api/tokens.html",
        form=form,
        tokens=api_tokens.tokens_of(me()),
        prefix=api_tokens.TOKEN_PREFIX,
        now=utcnow(),
        days=current_app.config["API_TOKEN_DAYS"],
        needs_second_factor=api_tokens.second_factor_missing(me()),
    )


@bp.post("")
@signed_in
def create() -> Any:
    form = TokenForm()
    if form.validate_on_submit():
        try:
            token, plaintext = api_tokens.create_token(me(), form.name.data, by=me())
        except TokenError as err:
            db.session.rollback()
            form.name.errors = [*form.name.errors, str(err)]
        else:
            db.session.commit()
            return render_template("api/token_created.html", token=token, plaintext=plaintext)
    return _tokens_page(form)


@bp.post("/<uuid>/revoke")
@signed_in
def revoke(uuid: str) -> Any:
    return _on_own_token(
        uuid,
        api_tokens.revoke_token,
        lambda t: f"Revoked the token '{t.name}'. Programs using it are refused from now on.",
    )


@bp.post("/<uuid>/renew")
@signed_in
def renew(uuid: str) -> Any:
    return _on_own_token(
        uuid,
        api_tokens.renew_token,
        lambda t: f"Renewed the token '{t.name}': it now expires on "
        f"{t.expires_at:%d %B %Y at %H:%M} UTC.",
    )


def _own_token(uuid: str) -> ApiToken:
    token: ApiToken = get_or_404(ApiToken, uuid, need="edit")
    if token.user_id != me().id:  # these pages are for one's own tokens, admins included
        deny(status=404, object_type="api_tokens", object_uuid=token.uuid, why="record:own")
    return token


def _on_own_token(uuid: str, change: Callable[..., Any], said: Callable[[ApiToken], str]) -> Any:
    """One of the owner's buttons on a token (revoke, renew): the CSRF check, the service, one
    commit, and what the page says."""
    token = _own_token(uuid)
    if not EmptyForm().validate_on_submit():
        flash("The form had expired, so nothing was changed. Try again.", "error")
        return redirect(url_for("api_tokens.index"))
    try:
        change(token, by=me())
    except TokenError as err:
        db.session.rollback()
        flash(str(err), "error")
    else:
        db.session.commit()
        flash(said(token), "success")
    return redirect(url_for("api_tokens.index"))
