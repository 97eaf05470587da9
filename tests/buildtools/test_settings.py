"""Settings: the cache folder for users who cannot write the machine-wide default, and the
data a checkout reads (tests/test_wheel.py covers an installed wheel), each image's platforms."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from buildtools.settings import DATA_ROOT, REPO_ROOT, Settings, cache_dir, checkout_root, repository_platforms


@pytest.fixture
def below_a_file(tmp_path: Path) -> Path:
    """A default nobody can create, root included: its parent is a regular file."""
    (tmp_path / "file").write_text("")
    return tmp_path / "file" / "cache"


def test_the_environment_is_used_as_given(below_a_file: Path, tmp_path: Path) -> None:
    assert cache_dir({"MINIMALDASK_CACHE": str(below_a_file)}, tmp_path) == below_a_file


def test_a_writable_default_is_used(tmp_path: Path) -> None:
    default = tmp_path / "not-yet" / "minimaldask"
    assert cache_dir({"XDG_CACHE_HOME": str(tmp_path / "xdg")}, default) == default


def test_an_unwritable_default_falls_back_to_the_xdg_cache(below_a_file: Path, tmp_path: Path) -> None:
    assert cache_dir({"XDG_CACHE_HOME": str(tmp_path / "xdg")}, below_a_file) == tmp_path / "xdg" / "minimaldask"


def test_without_xdg_the_fallback_is_under_home(
    below_a_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir({}, below_a_file) == tmp_path / "home" / ".cache" / "minimaldask"


def test_a_non_root_user_gets_its_own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CI build job: MINIMALDASK_CACHE unset, and /var/cache owned by root."""
    monkeypatch.delenv("MINIMALDASK_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    # What access(2) answers a non-root user about a root-owned folder (root may write anywhere).
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    assert Settings.load().cache_dir == tmp_path / "minimaldask"


def test_a_checkout_reads_its_own_files() -> None:
    assert DATA_ROOT == REPO_ROOT
    assert checkout_root("comparing git commits") == REPO_ROOT


def test_the_cluster_flow_knows_each_image_by_repository_and_skips_what_builds_no_image(tmp_path: Path) -> None:
    for name, text in {
        "good": 'repository = "minimaldask/good"\nplatforms = ["linux/amd64", "linux/arm/v7"]\n',
        "unknown-platform": 'repository = "minimaldask/odd"\nplatforms = ["linux/s390x"]\n',
        "no-repository": 'platforms = ["linux/amd64"]\n',
    }.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "image.toml").write_text(text)
    assert repository_platforms(tmp_path) == {"minimaldask/good": ("linux/amd64", "linux/arm/v7")}
