#!/usr/bin/env python3
"""The two commands of the README, needing nothing but Python 3.11+.

    python3 dev.py start        set up .venv, migrate, make keys and demo data, serve on :5000
    python3 dev.py test [ARGS]  set up .venv with the test and bench extras and run pytest (ARGS
                                go to pytest)

Installs are skipped when pyproject.toml has not changed since the last one.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("DR_PANEL_VENV", ROOT / ".venv"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")


def ensure_env(extras: str) -> None:
    if sys.version_info < (3, 11):  # noqa: UP036  (dev.py runs on any python3 to say so)
        sys.exit(f"dr-panel needs Python 3.11 or newer; this is {sys.version.split()[0]}.")
    if not (BIN / "python").exists() and not (BIN / "python.exe").exists():
        print(f"Creating a virtual environment in {VENV} ...", flush=True)
        venv.create(VENV, with_pip=True)
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + extras.encode()).hexdigest()
    stamp = VENV / f".dr-panel-installed-{extras or 'base'}"
    if stamp.exists() and stamp.read_text() == digest:
        return
    target = f".[{extras}]" if extras else "."
    print(f"Installing dr-panel and its dependencies ({target}) ...", flush=True)
    subprocess.run(  # noqa: S603  (fixed arguments, no user input)
        [
            str(BIN / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",  # noqa: S603
            "--disable-pip-version-check",
            "-e",
            target,
        ],
        cwd=ROOT,
        check=True,
    )
    stamp.write_text(digest)


def main(argv: list[str]) -> int:
    command, rest = (argv[0], argv[1:]) if argv else ("help", [])
    if command == "start":
        ensure_env("")
        return subprocess.call(  # noqa: S603
            [str(BIN / "dr-panel"), "start", *rest], cwd=ROOT
        )  # noqa: S603
    if command == "test":
        ensure_env("test,bench")
        return subprocess.call(  # noqa: S603
            [str(BIN / "python"), "-m", "pytest", *rest], cwd=ROOT
        )  # noqa: S603
    print(__doc__)
    return 0 if command in {"help", "-h", "--help"} else 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
