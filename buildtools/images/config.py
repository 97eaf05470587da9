"""Image definitions: one `images/<name>/image.toml` each, read into a strict model."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from buildtools.errors import ConfigError
from buildtools.platforms import KNOWN_PLATFORMS
from buildtools.settings import (
    DATA_ROOT,
    DEFINITION_FILE,
    image_names,
    images_dir_default,
    pinned_dask_version,
    read_definition,
)

Megabytes = Annotated[float, Field(gt=0)]
PYTHON_MINOR = re.compile(r"3\.\d+")
# Where `buildtools mirror` pushes the offline Debian bases, one tag per suite.
MIRROR_REPOSITORY = "minimaldask/debian-base"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Budget(Strict):
    """Size limits for one platform, in MB (10^6 bytes).

    With `over_base`, the limits apply to the layers the image adds on top of its base
    (an image on a large base it does not control: "its base + 50 MB").
    """

    compressed_mb: Megabytes
    uncompressed_mb: Megabytes
    over_base: bool = False

    @model_validator(mode="after")
    def _uncompressed_holds_the_compressed(self) -> Budget:
        # Layers never shrink when unpacked: a limit below the compressed one is a typo.
        if self.uncompressed_mb < self.compressed_mb:
            raise ValueError(f"uncompressed_mb {self.uncompressed_mb:g} is below compressed_mb {self.compressed_mb:g}")
        return self


class PythonVariant(Strict):
    """One Python minor an image is built for: the base image that ships that Python.

    `mirror` names the Debian suite of the offline copy of that base (`buildtools mirror`);
    `platforms` narrows the image's platforms for this Python when its base lacks some;
    `budgets` replace the image's for some platforms (an older release with a larger base).
    """

    base: str
    mirror: str | None = None
    platforms: tuple[str, ...] | None = None
    budgets: dict[str, Budget] = {}


class ImageConfig(Strict):
    name: str
    directory: Path
    description: str
    repository: str
    dockerfile: str = "Dockerfile"
    platforms: Annotated[tuple[str, ...], Field(min_length=1)]
    # tags: every Python's build; default_tags: only the default Python's.
    tags: tuple[str, ...]
    default_tags: tuple[str, ...] = ()
    default_python: str
    pythons: dict[str, PythonVariant]
    versions: dict[str, str]
    budgets: dict[str, Budget]

    @model_validator(mode="before")
    @classmethod
    def _dask_of_the_package(cls, data: dict[str, object]) -> dict[str, object]:
        """[versions].dask defaults to the package's pin; an image pinned elsewhere (RAPIDS) says so."""
        versions = data.get("versions")
        if isinstance(versions, dict) and "dask" not in versions:
            data = {**data, "versions": {"dask": pinned_dask_version(), **versions}}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> ImageConfig:
        for platform in self.platforms:
            if platform not in KNOWN_PLATFORMS:
                raise ValueError(f"unknown platform {platform!r} (known: {', '.join(KNOWN_PLATFORMS)})")
            if platform not in self.budgets:
                raise ValueError(f"no budget for platform {platform}")
        extra = set(self.budgets) - set(self.platforms)
        if extra:
            raise ValueError(f"budget for a platform the image does not build: {', '.join(sorted(extra))}")
        if "python" in self.versions:
            raise ValueError("[versions].python: the Pythons are the keys of [pythons]")
        if self.default_python not in self.pythons:
            raise ValueError(f'default_python {self.default_python} has no [pythons."{self.default_python}"]')
        for python, variant in self.pythons.items():
            if not PYTHON_MINOR.fullmatch(python):
                raise ValueError(f'[pythons."{python}"]: a Python minor looks like 3.13')
            for field, named in (("platforms", variant.platforms or ()), ("budgets", variant.budgets)):
                unknown = set(named) - set(self.platforms)
                if unknown:
                    raise ValueError(f'[pythons."{python}"].{field}: {", ".join(sorted(unknown))} not in platforms')
        for tag in (*self.tags, *self.default_tags):
            try:
                tag.format(**self.variant_versions(self.default_python))
            except KeyError as missing:
                raise ValueError(f"tag {tag!r} uses {missing}, which is not in [versions]") from None
        return self

    @property
    def dockerfile_path(self) -> str:
        """The Dockerfile, relative to the build context (the data root) when it is inside it."""
        path = (self.directory / self.dockerfile).resolve()
        return str(path.relative_to(DATA_ROOT)) if path.is_relative_to(DATA_ROOT) else str(path)

    def variant_platforms(self, python: str) -> tuple[str, ...]:
        return self.pythons[python].platforms or self.platforms

    def variant_budget(self, python: str, platform: str) -> Budget:
        return self.pythons[python].budgets.get(platform) or self.budgets[platform]

    def variant_versions(self, python: str) -> dict[str, str]:
        return {**self.versions, "python": python}

    def resolved_tags(self, python: str) -> list[str]:
        tags = [*self.tags, *(self.default_tags if python == self.default_python else ())]
        return [tag.format(**self.variant_versions(python)) for tag in tags]

    def build_args(self, python: str) -> dict[str, str]:
        """Pinned versions as build arguments: dask -> DASK_VERSION, the Python -> PYTHON_VERSION."""
        return {f"{key.upper()}_VERSION": value for key, value in self.variant_versions(python).items()}


def load_image(name: str, images_dir: Path | None = None) -> ImageConfig:
    images_dir = images_dir or images_dir_default()
    path = images_dir / name / DEFINITION_FILE
    if not path.is_file():
        known = ", ".join(image_names(images_dir)) or "none"
        raise ConfigError(f"unknown image {name!r} (known: {known})")
    try:
        return ImageConfig(name=name, directory=path.parent.resolve(), **read_definition(path))
    except ValidationError as e:
        raise ConfigError(f"{path}: {_first_error(e)}") from e


def _first_error(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    message = first["msg"].removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def load_images(names: list[str] | None = None, images_dir: Path | None = None) -> list[ImageConfig]:
    return [load_image(name, images_dir) for name in (names or image_names(images_dir))]
