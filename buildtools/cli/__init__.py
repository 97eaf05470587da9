"""`buildtools` command line: parses options, calls one library function, prints results.

Library code never prints or exits; errors of the project's own types become one line
on stderr and a non-zero exit code, without a traceback. The commands are in two groups,
one module each (images, cluster); the options they share are declared in options.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any

import typer

from buildtools.cli import cluster, images
from buildtools.cli.output import err
from buildtools.errors import MinimalDaskError

# No no_args_is_help: typer would print the whole help as an error; a bare `buildtools` is a
# usage error like any other (one line, exit 2).
app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, help=__doc__.splitlines()[0])
# Added without a name: their commands are this app's own (`buildtools build`, `buildtools up`).
app.add_typer(images.app)
app.add_typer(cluster.app)


def fail(message: str, exit_code: int) -> None:
    err.print(f"error: {message}", highlight=False, markup=False, soft_wrap=True)
    sys.exit(exit_code)


def usage_message(error: typer.TyperException) -> str:
    """A usage error on one line, with the command whose help to read; typer's own display
    is a box with the usage line and the message."""
    # The context is an attribute of typer's UsageError, which typer does not export.
    ctx = getattr(error, "ctx", None)
    hint = f" (try: {ctx.command_path} --help)" if ctx is not None else ""
    return error.format_message() + hint


def show_warning(message: Warning | str, *_: Any, **__: Any) -> None:
    """A library's warning (e.g. a scheduler exposed without TLS) on one line, like an error;
    Python's own display adds the file, the line number and the line of code."""
    err.print(f"warning: {message}", highlight=False, markup=False, soft_wrap=True)


def main() -> None:
    warnings.showwarning = show_warning
    # Not standalone: errors reach this function instead of typer's display, and typer
    # returns the code of the exits it handles (0 after --help).
    try:
        exit_code = app(standalone_mode=False)
    except MinimalDaskError as e:
        # Notes carry what else went wrong, e.g. a cleanup that left objects behind.
        fail("; ".join([str(e), *getattr(e, "__notes__", [])]), e.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        fail("aborted", 130)
    except typer.TyperException as e:  # a usage error: the command line is wrong
        fail(usage_message(e), e.exit_code)
    sys.exit(exit_code if isinstance(exit_code, int) else 0)
