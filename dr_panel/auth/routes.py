"""Signing in and out, and the person's own account.

Signing in has stages: password, then a code (or enrolment of a second factor where it is
required and missing), then a new password where the CLI set one to replace. Until every
stage is passed nobody is signed in; the stage lives server-side (``pending``) for ten minutes,
the cookie holding only a random token. At the end the session is cleared and a new
server-side session begins.

Nobody is ever given another's password: a new account, an admin's reset and "forgot my
password" e-mail a single-use link (``links``); using it counts as the password stage, so the
second factor (or its enrolment) still follows.
"""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user
from werkzeug.wrappers import Response

from dr_panel.audit.models import Outcome
from dr_panel.audit.services import record, record_now
from dr_panel.auth import links, pending, services, throttle
from dr_panel.auth.forms import (
    ChangePasswordForm,
    CodeForm,
    ForgotPasswordForm,
    LoginForm,
    NewPasswordForm,
)
from dr_panel.auth.models import User
from dr_panel.auth.passwords import verify_password
from dr_panel.crypto import DecryptionError, hash_token
from dr_panel.extensions import db, limiter
from dr_panel.forms import EmptyForm
from dr_panel.security import public, render_error, safe_next, signed_in

bp = Blueprint("auth", __name__)

# -- throttling -----------------------------------------------------------------------------------


def _failed(response: Response) -> bool:
    return bool(g.get("signin_failed"))


# Per client, across accounts (one client spraying many addresses). Per account, the back-off
# of ``throttle``: per (account, client) pair, so the owner's own client is never locked out.
limit_client = limiter.limit(
    lambda: current_app.config["LOGIN_LIMIT_PER_CLIENT"], methods=["POST"], deduct_when=_failed
)


def _backoff(email: str) -> throttle.SignInAttempt | Response:
    """This pair's attempt, or the 429 answer while it must still wait (checked before the
    password or code, so a right one during the wait is refused too)."""
    attempt = throttle.SignInAttempt.of(email)
    wait = attempt.wait_seconds()
    return refuse_attempt(wait) if wait else attempt


def _count_failure(attempt: throttle.SignInAttempt, owner: User | None) -> None:
    g.signin_failed = True
    attempt.failed(owner)


# -- the pending sign-in ------------------------------------------------------------------------


def _fresh_session() -> None:
    """Drop everything from before this stage, but keep messages queued for the next page."""
    flashes = session.get("_flashes")
    session.clear()
    if flashes:
        session["_flashes"] = flashes


def _start_pending(user: User, stage: str, next_url: str | None) -> None:
    token = pending.start(user, stage, next_url, replacing=session.get("pending"))
    _fresh_session()
    session["pending"] = token  # only this random token: who and where stay server-side


def _pending_user(stage: str) -> User | None:
    row = pending.find(session.get("pending"))
    if row is None or row.stage != stage:
        return None
    if pending.is_expired(row):
        pending.drop(session.pop("pending", None))
        db.session.commit()
        flash("Signing in took longer than 10 minutes, so please start again.", "info")
        return None
    return row.user if row.user.is_active else None


def _advance(user: User, after: str, next_url: str | None = None) -> Response:
    """Move to the next stage that applies after ``after``, or finish signing in."""
    row = pending.find(session.get("pending"))
    next_url = (row.next_url if row else None) or next_url
    order = ["password", "code", "enrol", "new_password"]
    for stage in order[order.index(after) + 1 :]:
        if stage == "code" and user.has_second_factor:
            break
        if (
            stage == "enrol"
            and not user.has_second_factor
            and services.second_factor_required(user)
        ):
            break
        if stage == "new_password" and user.must_change_password:
            break
    else:
        return _finish(user, next_url)
    _start_pending(user, stage, next_url)
    db.session.commit()
    return redirect(url_for(f"auth.login_{stage}"))


def _finish(user: User, next_url: str | None) -> Response:
    pending.drop(session.get("pending"))
    throttle.SignInAttempt.of(user.email).succeeded()  # this client starts afresh
    _fresh_session()  # nothing carried over from before sign-in but pending messages
    token = services.begin_session(user)
    db.session.commit()
    session["sid"] = token
    session.permanent = True
    return redirect(next_url or url_for("main.home"))


def me() -> User:
    return current_user._get_current_object()  # type: ignore[no-any-return]


def _back_to_start() -> Response:
    return redirect(url_for("auth.login"))


# -- stages ---------------------------------------------------------------------------------------


@bp.route("/login", methods=["GET", "POST"])
@public
@limit_client
def login() -> Any:
    if current_user.is_authenticated:
        return redirect(url_for("main.home"))
    form = LoginForm()
    if form.validate_on_submit():
        attempt = _backoff(form.email.data)
        if isinstance(attempt, Response):
            return attempt
        user = services.authenticate(form.email.data, form.password.data)
        if user is None:
            _count_failure(attempt, services.find_user(form.email.data))
            db.session.commit()  # the failed attempt's audit entry (and any ceiling e-mail)
            form.password.errors.append(
                "The e-mail address or password is not right. Check both and try again; "
                "after 5 failed attempts, each further try from here must wait a little longer."
            )
            return render_template("auth/login.html", form=form), 200
        pending.drop(session.pop("pending", None))  # an earlier, abandoned attempt
        return _advance(user, "password", safe_next(request.args.get("next")))
    return render_template("auth/login.html", form=form)


@bp.route("/login/code", methods=["GET", "POST"])
@public
@limit_client
def login_code() -> Any:
    user = _pending_user("code")
    if user is None:
        return _back_to_start()
    form = CodeForm()
    if form.validate_on_submit():
        attempt = _backoff(user.email)
        if isinstance(attempt, Response):
            return attempt
        if services.check_code(user, form.code.data):
            return _advance(user, "code")
        _count_failure(attempt, user)
        db.session.commit()
        form.code.errors.append(
            "That code is not right, or was already used. Wait for the next "
            "code in your app and enter it."
        )
    return render_template("auth/login_code.html", form=form)


@bp.route("/login/enrol", methods=["GET", "POST"])
@public
@limit_client
def login_enrol() -> Any:
    user = _pending_user("enrol")
    if user is None:
        return _back_to_start()
    if request.method == "POST":
        attempt = _backoff(user.email)
        if isinstance(attempt, Response):
            return attempt
    return _enrol_page(user, on_success=lambda: _advance(user, "enrol"), required=True)


@bp.route("/login/new-password", methods=["GET", "POST"])
@public
def login_new_password() -> Any:
    user = _pending_user("new_password")
    if user is None:
        return _back_to_start()
    form = NewPasswordForm()
    if form.validate_on_submit():
        try:
            services.set_password(user, form.password.data)
        except services.AccountError as err:
            form.password.errors.append(str(err))
        else:
            flash("Your new password is saved.", "success")
            return _advance(user, "new_password")
    return render_template("auth/new_password.html", form=form)


# -- setting one's own password through an e-mailed link -------------------------------------------


def _typed_email_key() -> str:
    return "forgot:" + hash_token(services.normalise_email(request.form.get("email") or ""))[:32]


limit_forgot_client = limiter.limit(
    lambda: current_app.config["LOGIN_LIMIT_PER_CLIENT"], methods=["POST"]
)
limit_forgot_account = limiter.shared_limit(
    lambda: current_app.config["LOGIN_LIMIT_PER_ACCOUNT"],
    scope="password-forgot",
    key_func=_typed_email_key,
    methods=["POST"],
)

FORGOT_SENT = (
    "If that address has a dr-panel account, we have sent it a link to choose a new password. "
    "The link works once, within 1 hour. Nothing arrived within a few minutes? Check your junk "
    "mail, then ask again or ask your system administrator."
)


@bp.route("/password/forgot", methods=["GET", "POST"])
@public
@limit_forgot_account
@limit_forgot_client
def forgot_password() -> Any:
    """The same answer, and the same work, whether or not the account exists."""
    form = ForgotPasswordForm()
    if form.validate_on_submit():
        links.request_reset(form.email.data)
        db.session.commit()
        flash(FORGOT_SENT, "info")  # never the address: the cookie is readable
        return redirect(url_for("auth.forgot_password"))
    return render_template("auth/forgot_password.html", form=form)


@bp.route("/password/<token>", methods=["GET", "POST"])
@public
@limit_client
def set_password(token: str) -> Any:
    """The page an e-mailed link opens: choose a password, then sign-in continues with the
    second factor (or its enrolment) where one applies."""
    try:
        link = links.check_link(token)
    except links.LinkError as err:
        db.session.commit()  # the refusal's audit entry
        g.signin_failed = True
        status = 404 if err.state is links.LinkState.UNKNOWN else 410
        return render_template("auth/link_problem.html", message=str(err)), status
    form = NewPasswordForm()
    if form.validate_on_submit():
        try:
            user = links.set_password_with_link(token, form.password.data)
        except services.AccountError as err:
            db.session.rollback()
            form.password.errors.append(str(err))
        else:
            flash("Your password is saved.", "success")
            pending.drop(session.pop("pending", None))
            return _advance(user, "password")
    return render_template("auth/set_password.html", form=form, link=link)


def _enrol_page(user: User, *, on_success: Any, required: bool) -> Any:
    """Show a fresh secret (kept sealed in the session) and confirm it with a first code."""
    form = CodeForm()
    sealed = session.get("totp_pending")
    secret = None
    if sealed:
        try:
            secret = services.open_pending_secret(user, sealed)
        except DecryptionError:
            secret = None
    if secret is None or request.method == "GET":
        secret = services.new_totp_secret()
        session["totp_pending"] = services.seal_pending_secret(user, secret)
    if form.validate_on_submit():
        if services.enrol_second_factor(
            user, secret, form.code.data, keep=g.get("user_session")
        ):
            session.pop("totp_pending", None)
            db.session.commit()
            flash(
                "Two-step verification is on. You will be asked for a code each time you sign in.",
                "success",
            )
            return on_success()
        if required:  # a sign-in stage: counted like a wrong code
            _count_failure(throttle.SignInAttempt.of(user.email), user)
            db.session.commit()
        else:
            g.signin_failed = True
        form.code.errors.append(
            "That code does not match. Check the app shows dr-panel, wait "
            "for a new code and enter it."
        )
    uri = services.provisioning_uri(user, secret)
    return render_template(
        "auth/enrol.html", form=form, qr=services.qr_svg(uri), secret=secret, required=required
    )


# -- signed in ------------------------------------------------------------------------------------


@bp.route("/logout", methods=["POST"])
@signed_in
def logout() -> Any:
    form = EmptyForm()
    if form.validate_on_submit():
        services.end_session(g.user_session, "signed out")
        db.session.commit()
        session.clear()
        flash("You have signed out.", "info")
    return redirect(url_for("auth.login"))


@bp.route("/account")
@signed_in
def account() -> Any:
    return render_template(
        "auth/account.html", sessions=services.live_sessions(me()), form=EmptyForm()
    )


@bp.route("/account/password", methods=["GET", "POST"])
@signed_in
@limit_client
def change_password() -> Any:
    form = ChangePasswordForm()
    if form.validate_on_submit():
        if not verify_password(current_user.password_hash, form.current.data):
            g.signin_failed = True
            form.current.errors.append("Your current password is not right. Type it again.")
        else:
            try:
                services.set_password(me(), form.password.data, keep=g.user_session)
            except services.AccountError as err:
                form.password.errors.append(str(err))
            else:
                db.session.commit()
                flash(
                    "Your password is changed. Every other session has been signed out.", "success"
                )
                return redirect(url_for("auth.account"))
    return render_template("auth/change_password.html", form=form)


@bp.route("/account/two-factor", methods=["GET", "POST"])
@signed_in
@limit_client
def two_factor() -> Any:
    def done() -> Response:
        return redirect(url_for("auth.account"))

    return _enrol_page(me(), on_success=done, required=False)


@bp.route("/account/sessions/end-others", methods=["POST"])
@signed_in
def end_other_sessions() -> Any:
    if EmptyForm().validate_on_submit():
        n = services.end_all_sessions(
            me(), "signed out by owner", keep=g.user_session, revoke_tokens=False
        )
        record(
            "account.sessions_ended",
            object_type="users",
            object_uuid=current_user.uuid,
            details={"count": n},
        )
        db.session.commit()
        flash(f"Signed out {n} other session{'s' if n != 1 else ''}.", "success")
    return redirect(url_for("auth.account"))


def refuse_attempt(wait: int) -> Response:
    """The 429 answer for a pair still waiting: audited, and saying how long to wait."""
    record_now("access.throttled", outcome=Outcome.DENIED,
               details={"endpoint": request.endpoint, "wait_seconds": wait})
    how_long = f"{wait} second{'s' if wait != 1 else ''}" if wait < 120 else (
        f"{(wait + 59) // 60} minutes")
    detail = (
        f"Too many attempts to sign in to this account from here. Wait {how_long} and try again. "
        "Each further failed attempt makes the wait longer. Forgotten your password? Use "
        "\"Forgotten your password?\" on the sign-in page."
    )
    result = render_error(429, detail)
    response = result if isinstance(result, Response) else current_app.make_response(result)
    response.headers["Retry-After"] = str(wait)
    return response
