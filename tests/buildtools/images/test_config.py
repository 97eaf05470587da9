"""Image definitions: the strict model and its errors (no engine needed)."""

from pathlib import Path

import pytest

from buildtools.errors import ConfigError
from buildtools.images.config import load_image, load_images
from buildtools.settings import image_names

VALID = """
description = "fixture"
repository = "minimaldask/fixture"
platforms = ["linux/amd64", "linux/arm64"]
tags = ["{dask}-py{python}"]
default_tags = ["{dask}"]
default_python = "3.13"
[pythons."3.13"]
base = "debian:trixie-slim"
mirror = "trixie"
[pythons."3.11"]
base = "debian:bookworm-slim"
platforms = ["linux/amd64"]
[pythons."3.11".budgets."linux/amd64"]
compressed_mb = 12
uncompressed_mb = 30
[versions]
dask = "1.0"
[budgets."linux/amd64"]
compressed_mb = 10
uncompressed_mb = 20
[budgets."linux/arm64"]
compressed_mb = 10
uncompressed_mb = 20
"""


def write_image(root: Path, text: str, name: str = "fixture") -> Path:
    (root / name).mkdir(parents=True, exist_ok=True)
    (root / name / "image.toml").write_text(text)
    return root


def test_repository_images_all_load() -> None:
    """Every rule of the model (a budget per platform and none other, ...) holds for each."""
    names = image_names()
    assert {"debian", "alpine", "rapids"} <= set(names)
    assert [config.name for config in load_images()] == names


def test_valid_definition_resolves_tags_and_build_args_per_python(tmp_path: Path) -> None:
    config = load_image("fixture", write_image(tmp_path, VALID))
    assert config.resolved_tags("3.13") == ["1.0-py3.13", "1.0"]  # the default Python's build has the plain tag
    assert config.resolved_tags("3.11") == ["1.0-py3.11"]
    assert config.build_args("3.11") == {"DASK_VERSION": "1.0", "PYTHON_VERSION": "3.11"}
    assert config.variant_platforms("3.11") == ("linux/amd64",)
    assert config.variant_platforms("3.13") == ("linux/amd64", "linux/arm64")
    assert config.variant_budget("3.11", "linux/amd64").compressed_mb == 12  # its own
    assert config.variant_budget("3.13", "linux/amd64").compressed_mb == 10  # the image's


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('platforms = ["linux/amd64", "linux/arm64"]', 'platforms = ["linux/s390x"]'), "unknown platform"),
        (('platforms = ["linux/amd64", "linux/arm64"]', "platforms = []"), "platforms: Tuple should have at least 1"),
        (
            (
                '[budgets."linux/arm64"]\ncompressed_mb = 10\nuncompressed_mb = 20',
                '[budgets."linux/arm64"]\ncompressed_mb = 10\nuncompressed_mb = 9',
            ),
            "uncompressed_mb 9 is below compressed_mb 10",
        ),
        (
            ('[budgets."linux/arm64"]\ncompressed_mb = 10', '[budgets."linux/arm64"]\ncompressed_mb = -1'),
            "greater than 0",
        ),
        (('tags = ["{dask}-py{python}"]', 'tags = ["{rapids}"]'), "not in [versions]"),
        (('default_python = "3.13"', 'default_python = "3.12"'), 'default_python 3.12 has no [pythons."3.12"]'),
        (('"3.11"', '"py3.11"'), "a Python minor looks like 3.13"),
        (('platforms = ["linux/amd64"]\n[pythons', 'platforms = ["linux/arm/v7"]\n[pythons'), "not in platforms"),
        (
            ('[pythons."3.11".budgets."linux/amd64"]', '[pythons."3.11".budgets."linux/arm/v7"]'),
            ".budgets: linux/arm/v7",
        ),
        (('dask = "1.0"', 'dask = "1.0"\npython = "3.13"'), "the Pythons are the keys of [pythons]"),
        (('description = "fixture"', 'description = "fixture"\nsurprise = 1'), "Extra inputs"),
        (
            ('[budgets."linux/arm64"]\ncompressed_mb = 10\nuncompressed_mb = 20', ""),
            "no budget for platform linux/arm64",
        ),
        (("[versions]", "[versions"), "image.toml"),
    ],
)
def test_invalid_definitions_fail_with_one_clear_line(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    assert change[0] in VALID
    root = write_image(tmp_path, VALID.replace(*change))
    with pytest.raises(ConfigError) as error:
        load_image("fixture", root)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_unknown_image_names_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown image 'nope' \(known: fixture\)"):
        load_image("nope", write_image(tmp_path, VALID))


def test_images_take_the_dask_version_the_package_pins_unless_they_pin_their_own() -> None:
    from importlib import metadata

    from buildtools.settings import pinned_dask_version

    pinned = pinned_dask_version()
    assert pinned == metadata.version("distributed")  # what the locked venv runs: the client side
    for name in ("debian", "debian-dataframe", "alpine"):
        assert load_image(name).versions["dask"] == pinned
    assert load_image("rapids").versions["dask"] != pinned  # RAPIDS pins its own dask
