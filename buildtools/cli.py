"""`buildtools` command line: parses options, calls one library function, prints results.

Library code never prints or exits; errors of the project's own types become one line
on stderr and a non-zero exit code, without a traceback.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console

from buildtools import engine
from buildtools.config import load_image, load_images
from buildtools.errors import ConfigError, MinimalDaskError
from buildtools.mirror import ensure_mirror
from buildtools.settings import Settings

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, help=__doc__.splitlines()[0])
out = Console()
err = Console(stderr=True)

ImagesArg = Annotated[list[str] | None, typer.Argument(help="Images (default: all under images/).", show_default=False)]
PlatformOpt = Annotated[
    list[str] | None, typer.Option("--platform", "-p", help="Platform(s) (default: all of the image's).")
]


def progress(message: str) -> None:
    err.print(message, highlight=False, markup=False)


@app.command()
def mirror(
    image: Annotated[str, typer.Argument(help="Image whose base to mirror.")] = "debian",
    platform: PlatformOpt = None,
) -> None:
    """Build the offline base mirror from the Debian archive and push it to the registry."""
    config = load_image(image)
    if config.base.mirror is None:
        raise ConfigError(f"image {image!r} has no offline base mirror (its base is {config.base.image})")
    result = ensure_mirror(config.base.mirror, platform or list(config.platforms), Settings.load(), progress)
    out.print(f"{result.ref}  platforms: {', '.join(result.platforms)}  ({result.seconds:.0f} s)", highlight=False)


@app.command()
def doctor(platform: PlatformOpt = None) -> None:
    """Check the engine, buildx and emulation: run `uname -m` in the base mirror per platform."""
    settings = Settings.load()
    progress(engine.check_engine())
    configs = [c for c in load_images() if c.base.mirror is not None]
    if not configs:
        raise ConfigError("no image has a base mirror to run the platform check in")
    from buildtools.mirror import mirror_ref

    config = configs[0]
    ref = mirror_ref(settings, config.base.mirror)
    for wanted in platform or list(config.platforms):
        try:
            machine = engine.run(ref, ["uname", "-m"], platform=wanted)
        except MinimalDaskError as e:
            raise MinimalDaskError(
                f"cannot run {wanted} containers ({e}); register QEMU with: env/bootstrap.sh binfmt"
            ) from e
        out.print(f"{wanted}: uname -m -> {machine}", highlight=False)


def main() -> None:
    try:
        app(standalone_mode=False)
    except MinimalDaskError as e:
        err.print(f"error: {e}", highlight=False, markup=False, soft_wrap=True)
        sys.exit(e.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        err.print("aborted")
        sys.exit(130)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except Exception as e:  # click's usage errors
        import click

        if isinstance(e, click.ClickException):
            e.show()
            sys.exit(e.exit_code)
        raise
