"""Which images a git diff affects, so CI rebuilds only those. The only module calling git."""

from __future__ import annotations

import subprocess
from pathlib import Path

from buildtools import settings
from buildtools.errors import ConfigError
from buildtools.images.config import ImageConfig
from buildtools.settings import DATA_ROOT, REPO_ROOT, checkout_root

REBUILD_MARKER = "[rebuild]"
# The code that decides how images are built: this subpackage, whatever its modules are called.
IMAGE_FLOW = Path(__file__).resolve().parent.relative_to(REPO_ROOT).as_posix()
# Where the images' default dask version comes from (settings.pinned_dask_version).
DASK_PIN = ("pyproject.toml", Path(settings.__file__).resolve().relative_to(REPO_ROOT).as_posix())


def context_files(dockerignore: Path = DATA_ROOT / ".dockerignore") -> tuple[str, ...]:
    """The files outside images/ that .dockerignore lets into every build context."""
    entries = [line.strip()[1:] for line in dockerignore.read_text().splitlines() if line.strip().startswith("!")]
    return tuple(entry for entry in entries if not entry.endswith("/"))


def is_shared_input(path: str, context: tuple[str, ...]) -> bool:
    """A change to it affects every image: the context every build gets, a file that images/
    holds for all image folders (strip.sh, user.sh), the dask pin, or the image flow's own code."""
    return (
        path in (".dockerignore", *context, *DASK_PIN)
        or (path.startswith("images/") and path.count("/") == 1)
        or path.startswith(f"{IMAGE_FLOW}/")
    )


def changed_paths(since: str, repo: Path | None = None) -> list[str]:
    """Paths changed in the repo (default: the checkout buildtools runs from) since a ref."""
    cwd = repo or checkout_root("comparing git commits")
    try:
        result = subprocess.run(
            ["git", "diff", "--name-only", f"{since}...HEAD"], cwd=cwd, check=True, capture_output=True, text=True
        )
    except subprocess.CalledProcessError as e:
        detail = (e.stderr or "").strip().splitlines()[:1] or [f"exit code {e.returncode}"]
        raise ConfigError(f"cannot diff against {since!r}: {detail[0]}") from e
    return [line for line in result.stdout.splitlines() if line]


def affected_images(paths: list[str], inputs: dict[str, tuple[str, ...]]) -> list[str]:
    """Pure: the images (keys of `inputs`: image -> its folders) whose inputs changed."""
    context = context_files()
    if any(is_shared_input(path, context) for path in paths):
        return list(inputs)
    return [name for name, folders in inputs.items() if any(path.startswith(folders) for path in paths)]


def image_inputs(configs: list[ImageConfig]) -> dict[str, tuple[str, ...]]:
    """Each image's folder, and its Dockerfile when it builds another image's."""
    return {config.name: tuple(dict.fromkeys([f"images/{config.name}/", config.dockerfile_path])) for config in configs}


def select_images(
    since: str, configs: list[ImageConfig], force_all: bool = False, commit_message: str = "", repo: Path | None = None
) -> list[str]:
    """The images CI builds: all when forced, on [rebuild] in the commit message, or when
    there is no previous state (a new branch: GitHub's all-zero `before`); else the affected."""
    if force_all or REBUILD_MARKER in commit_message or not since.strip("0"):
        return [config.name for config in configs]
    return affected_images(changed_paths(since, repo), image_inputs(configs))
