"""`buildtools changed` on real git histories."""

import subprocess
from pathlib import Path

import pytest

from buildtools.errors import ConfigError
from buildtools.images.changed import affected_images, changed_paths, context_files, image_inputs
from buildtools.images.config import load_images

IMAGES = ["alpine", "debian", "rapids"]
INPUTS = {name: (f"images/{name}/",) for name in IMAGES}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    git(tmp_path, "init", "-q", "-b", "master")
    git(tmp_path, "config", "user.email", "ci@example.invalid")
    git(tmp_path, "config", "user.name", "ci")
    for path in ["README.md", "entrypoint.sh", *(f"images/{name}/Dockerfile" for name in IMAGES)]:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("v1\n")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-q", "-m", "initial")
    return tmp_path


def commit_change(repo: Path, path: str) -> None:
    (repo / path).parent.mkdir(parents=True, exist_ok=True)
    (repo / path).write_text("v2\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", f"change {path}")


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("README.md", []),
        ("images/debian/Dockerfile", ["debian"]),
        ("images/alpine/image.toml", ["alpine"]),
        ("entrypoint.sh", IMAGES),
        ("images/strip.sh", IMAGES),
        ("docs/PERFORMANCE.md", []),
        # Any module of the image flow, also one added or renamed later; the cluster flow builds nothing.
        ("buildtools/images/plan.py", IMAGES),
        ("buildtools/images/a_module_added_later.py", IMAGES),
        ("buildtools/cluster/deploy.py", []),
        # The dask pin every image without its own takes.
        ("pyproject.toml", IMAGES),
        ("buildtools/settings.py", IMAGES),
        ("manifests/worker-deployment.yaml.j2", []),
    ],
)
def test_affected_images_from_a_real_diff(repo: Path, path: str, expected: list[str]) -> None:
    base = git(repo, "rev-parse", "HEAD")
    commit_change(repo, path)
    assert affected_images(changed_paths(base, repo), INPUTS) == expected


def test_changes_accumulate_over_several_commits(repo: Path) -> None:
    base = git(repo, "rev-parse", "HEAD")
    commit_change(repo, "images/debian/Dockerfile")
    commit_change(repo, "images/rapids/image.toml")
    assert affected_images(changed_paths(base, repo), INPUTS) == ["debian", "rapids"]


def test_a_flavour_follows_the_dockerfile_it_builds() -> None:
    inputs = image_inputs(load_images())
    assert inputs["debian-dataframe"] == ("images/debian-dataframe/", "images/debian/Dockerfile")
    assert inputs["debian"] == ("images/debian/", "images/debian/Dockerfile")
    assert affected_images(["images/debian/Dockerfile"], inputs) == ["debian", "debian-dataframe"]
    assert affected_images(["images/debian-dataframe/image.toml"], inputs) == ["debian-dataframe"]
    assert affected_images(["images/debian/image.toml"], inputs) == ["debian"]


def test_unknown_ref_is_a_clear_error(repo: Path) -> None:
    with pytest.raises(ConfigError, match="cannot diff against 'no-such-ref'"):
        changed_paths("no-such-ref", repo)


def test_the_build_context_outside_images_is_read_from_dockerignore() -> None:
    assert context_files() == (
        "entrypoint.sh",
        "buildtools/cluster/controller.py",
        "buildtools/cluster/client_guard.py",
        "buildtools/cluster/ssl_error_queue.py",
    )
