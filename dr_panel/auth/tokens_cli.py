"""``dr-panel tokens ...``: personal API tokens from the command line.

``create`` prints the token alone on standard output (so a script can capture it) and the
shown-once warning on standard error. Changes are audited with the actor ``cli``.
"""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from dr_panel.auth import services as accounts
from dr_panel.auth import tokens as api_tokens
from dr_panel.auth.models import User
from dr_panel.extensions import db


def _fail(message: str) -> None:
    db.session.rollback()
    raise click.ClickException(message)


def _user(email: str) -> User:
    user = accounts.find_user(email)
    if user is None:
        _fail(f"No account with the e-mail address {email}.")
    assert user is not None
    return user


def _when(value: object) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "-"  # type: ignore[attr-defined]


@click.group()
def tokens() -> None:
    """Personal API tokens: create, list, revoke."""


@tokens.command("create")
@click.argument("email")
@click.option(
    "--name",
    default="command line",
    show_default=True,
    help="Where the token is used, so its owner can tell their tokens apart.",
)
@with_appcontext
def tokens_create(email: str, name: str) -> None:
    """Create an API token for the account EMAIL and print it, once."""
    user = _user(email)
    try:
        token, plaintext = api_tokens.create_token(user, name, by=None)
    except api_tokens.TokenError as err:
        _fail(str(err))
    db.session.commit()
    click.echo(
        f"API token '{token.name}' for {user.email}, expiring {_when(token.expires_at)}. It is "
        "shown only this once and cannot be shown again: store it now where only the program "
        "that needs it can read it.",
        err=True,
    )
    click.echo(plaintext)


@tokens.command("list")
@click.argument("email")
@with_appcontext
def tokens_list(email: str) -> None:
    """List the API tokens of the account EMAIL (never the tokens themselves)."""
    user = _user(email)
    found = api_tokens.tokens_of(user)
    if not found:
        click.echo(f"{user.email} has no API tokens.")
        return
    click.echo(
        f"{'starts with':16} {'created':20} {'last used':20} {'expires':20} {'revoked':20} name"
    )
    for t in found:
        click.echo(
            f"{api_tokens.TOKEN_PREFIX + t.prefix:16} {_when(t.created_at):20} "
            f"{_when(t.last_used_at):20} {_when(t.expires_at):20} {_when(t.revoked_at):20} "
            f"{t.name}"
        )


@tokens.command("revoke")
@click.argument("email")
@click.argument("prefix")
@with_appcontext
def tokens_revoke(email: str, prefix: str) -> None:
    """Revoke the token of EMAIL that starts with PREFIX (as 'tokens list' shows it)."""
    user = _user(email)
    try:
        token = api_tokens.find_token(user, prefix)
        api_tokens.revoke_token(token, by=None)
    except api_tokens.TokenError as err:
        _fail(str(err))
    db.session.commit()
    click.echo(
        f"Revoked {api_tokens.TOKEN_PREFIX}{token.prefix}… ('{token.name}') of {user.email}."
    )
