"""What the commands print through: results on stdout; progress, warnings and errors on stderr."""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console

from buildtools.errors import ConfigError

# Tables stay whole in CI logs, where there is no terminal to take the width from.
out = Console(width=None if sys.stdout.isatty() else 150)
err = Console(stderr=True)


def progress(message: str) -> None:
    err.print(message, highlight=False, markup=False, soft_wrap=True)


def write_output(path: Path, text: str) -> None:
    try:
        path.write_text(text)
    except OSError as e:
        raise ConfigError(f"cannot write {path}: {e.strerror}") from e
