"""Placement's pure parts: an image reference's repository, the platforms image.toml gives it,
and the architecture requirement ANDed into a node affinity (rendered pods: test_render.py;
pods on real nodes: test_deploy.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from buildtools.cluster import placement

REQUIRED = "requiredDuringSchedulingIgnoredDuringExecution"


def image_toml(repository: str, platforms: list[str]) -> str:
    budgets = "".join(f'[budgets."{p}"]\ncompressed_mb = 1\nuncompressed_mb = 1\n' for p in platforms)
    quoted = ", ".join(f'"{p}"' for p in platforms)
    return (
        f'description = "x"\nrepository = "{repository}"\nplatforms = [{quoted}]\ntags = ["1"]\n'
        f'default_python = "3.13"\n[pythons."3.13"]\nbase = "b"\n[versions]\n{budgets}'
    )


def test_known_platforms_by_repository_whatever_the_registry(tmp_path: Path) -> None:
    for name, repository, platforms in [
        ("base", "minimaldask/base", ["linux/amd64"]),
        ("nested", "base", ["linux/amd64", "linux/arm64"]),
    ]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "image.toml").write_text(image_toml(repository, platforms))
    assert placement.known_platforms("reg.example/minimaldask/base:1", tmp_path) == ("linux/amd64",)  # the longest
    assert placement.known_platforms("reg.example/other/base:1", tmp_path) == ("linux/amd64", "linux/arm64")
    assert placement.known_platforms("reg.example/minimaldask/base-x:1", tmp_path) is None
    assert placement.known_platforms("reg.example/minimaldask/debian:1", tmp_path / "empty") is None


def test_an_existing_term_gets_the_architecture_once_and_every_term_gets_it() -> None:
    terms = [
        {"matchExpressions": [{"key": "a", "operator": "Exists"}]},
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n"]}]},
    ]
    given = {"nodeAffinity": {REQUIRED: {"nodeSelectorTerms": terms}}, "podAntiAffinity": {}}
    once = placement.with_arch(given, ["linux/amd64"])
    assert placement.with_arch(once, ["linux/amd64"]) == once
    amd64 = {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}
    assert [t["matchExpressions"][-1] for t in once["nodeAffinity"][REQUIRED]["nodeSelectorTerms"]] == [amd64, amd64]
    assert once["nodeAffinity"][REQUIRED]["nodeSelectorTerms"][1]["matchFields"] == terms[1]["matchFields"]
    assert given["nodeAffinity"][REQUIRED]["nodeSelectorTerms"] == terms  # not changed in place


@pytest.mark.parametrize(
    ("image", "repository"),
    [
        ("127.0.0.1:5000/minimaldask/debian:2026.8.0-py3.13", "minimaldask/debian"),
        ("ghcr.io/minimaldask/minimaldask/debian:2026.8.0", "minimaldask/minimaldask/debian"),
        ("localhost/a/b@sha256:00", "a/b"),
        ("debian", "debian"),
        ("someone/image:tag", "someone/image"),
    ],
)
def test_image_repository(image: str, repository: str) -> None:
    assert placement.image_repository(image) == repository
