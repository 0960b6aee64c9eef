"""The refusal to start, raised by every start-up check in any package.

A leaf module: the app factory (``dr_panel``) and the packages it sets up (mail, throttling,
the runtime) all raise it, so it cannot live in the root package they would import back."""

from __future__ import annotations


class StartupError(SystemExit):
    """The app refuses to start; the message says what to fix."""
