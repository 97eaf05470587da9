"""Machine-wide defaults (registry, cache, mirror): env/defaults.env, overridden by the environment;
and where the data the package reads at runtime is (a checkout, or the copies in a wheel)."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import metadata, resources
from pathlib import Path
from typing import Any

from buildtools.errors import ConfigError
from buildtools.platforms import KNOWN_PLATFORMS

REPO_ROOT = Path(__file__).resolve().parent.parent
SYSTEM_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def find_data_root() -> Path:
    """The folder holding env/, images/, manifests/ and the build context's entrypoint.sh.

    The repository has the only copy; a wheel ships copies inside the package (pyproject's
    force-include), found through importlib.resources. An installed package is a folder, so
    the resource is a real path, which jinja2's loader, the image glob and buildx need.
    """
    package = resources.files("buildtools")
    if isinstance(package, Path) and (package / "env" / "defaults.env").is_file():
        return package
    return REPO_ROOT


DATA_ROOT = find_data_root()
ENV_DIR = DATA_ROOT / "env"
# Image definitions, one images/<name>/image.toml each: the image flow reads them whole
# (buildtools.images.config), the cluster flow only each image's repository and platforms.
IMAGES_DIR = DATA_ROOT / "images"
DEFINITION_FILE = "image.toml"


def checkout_root(needed_for: str) -> Path:
    """The git checkout buildtools runs from; an installed wheel has none."""
    if DATA_ROOT != REPO_ROOT:
        raise ConfigError(f"{needed_for} needs a checkout of the repository (this buildtools is installed)")
    return REPO_ROOT


@cache
def pinned_dask_version() -> str:
    """The distributed version this package pins (pyproject.toml; its metadata once installed):
    the images' dask unless an image.toml says otherwise, so that client and cluster agree."""
    pyproject = REPO_ROOT / "pyproject.toml"
    if pyproject.is_file():
        requirements = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    else:
        try:
            requirements = metadata.requires("minimaldask") or []
        except metadata.PackageNotFoundError:
            requirements = []
    for requirement in requirements:
        name, separator, version = requirement.partition("==")
        if name.strip() == "distributed" and separator:
            return version.split(";")[0].strip()
    raise ConfigError("minimaldask pins no distributed version (distributed==X in pyproject.toml)")


def images_dir_default() -> Path:
    """images/ of this checkout or wheel, or $MINIMALDASK_IMAGES_DIR (image definitions kept elsewhere)."""
    return Path(os.environ.get("MINIMALDASK_IMAGES_DIR") or IMAGES_DIR)


def image_names(images_dir: Path | None = None) -> list[str]:
    images_dir = images_dir or images_dir_default()
    return sorted(p.parent.name for p in images_dir.glob(f"*/{DEFINITION_FILE}"))


def read_definition(path: Path) -> dict[str, Any]:
    """An image.toml's fields as written (buildtools.images.config validates them)."""
    try:
        return tomllib.loads(path.read_text())
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror}") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: {e}") from e


def repository_platforms(images_dir: Path | None = None) -> dict[str, tuple[str, ...]]:
    """Each defined image's repository and platforms: what the cluster flow knows of the images."""
    images_dir = images_dir or images_dir_default()
    found = {}
    for name in image_names(images_dir):
        definition = read_definition(images_dir / name / DEFINITION_FILE)
        repository, platforms = definition.get("repository"), definition.get("platforms")
        # A definition the image flow refuses builds no image, so it keeps no pod off a node.
        if isinstance(repository, str) and isinstance(platforms, list) and set(platforms) <= set(KNOWN_PLATFORMS):
            found[repository] = tuple(platforms)
    return found


def read_env_file(path: Path) -> dict[str, str]:
    """Parse the KEY=VALUE lines that env/*.env files share with the shell scripts."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def writable(path: Path) -> bool:
    """Whether this user can write to path, or create it: the nearest existing folder decides."""
    # os.path.exists, unlike Path.exists, answers False below a folder this user cannot enter.
    existing = next(parent for parent in (path, *path.parents) if os.path.exists(parent))
    return existing.is_dir() and os.access(existing, os.W_OK)


def cache_dir(environ: Mapping[str, str], default: Path) -> Path:
    """$MINIMALDASK_CACHE as given; else the machine-wide default, unless this user cannot
    write there (a CI runner is not root): then the user's own cache."""
    if environ.get("MINIMALDASK_CACHE"):
        return Path(environ["MINIMALDASK_CACHE"])
    if writable(default):
        return default
    return Path(environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "minimaldask"


@dataclass(frozen=True)
class Settings:
    cache_dir: Path
    registry: str
    debian_mirror: str

    @property
    def default_ca_bundle(self) -> Path | None:
        """The system bundle, which also trusts a TLS-intercepting proxy configured on the host."""
        return SYSTEM_CA_BUNDLE if SYSTEM_CA_BUNDLE.is_file() else None

    @classmethod
    def load(cls) -> Settings:
        defaults = read_env_file(ENV_DIR / "defaults.env")

        def get(key: str) -> str:
            return os.environ.get(key) or defaults[key]

        return cls(
            cache_dir=cache_dir(os.environ, Path(defaults["MINIMALDASK_CACHE"])),
            registry=get("MINIMALDASK_REGISTRY"),
            debian_mirror=get("MINIMALDASK_DEBIAN_MIRROR"),
        )
