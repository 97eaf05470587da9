"""The build plan is pure: no engine, no registry."""

import json
import subprocess
import sys

import pytest

from buildtools.errors import ConfigError
from buildtools.images.config import load_images
from buildtools.images.plan import make_plan


def test_plan_covers_every_image_and_platform_with_upstream_bases() -> None:
    configs = load_images()
    plan = make_plan(configs, "registry.example:5000")
    assert [t.image for t in plan.targets] == [c.name for c in configs]
    for config, target in zip(configs, plan.targets, strict=True):
        assert target.platforms == list(config.platforms)
        assert target.build_args["BASE_IMAGE"] == config.base.image
        assert target.refs[0].startswith(f"registry.example:5000/{config.repository}:")
        assert target.dockerfile == config.dockerfile_path
    assert len(plan.matrix()) == sum(len(c.platforms) for c in configs)


def test_mirror_mode_uses_the_mirror_and_skips_images_without_one() -> None:
    plan = make_plan(load_images(), "127.0.0.1:5000", base="mirror")
    debian = next(t for t in plan.targets if t.image == "debian")
    assert debian.build_args["BASE_IMAGE"] == "127.0.0.1:5000/minimaldask/debian-base:trixie"
    assert {s.image for s in plan.skipped} == {"alpine"}
    rapids = next(t for t in plan.targets if t.image == "rapids")
    assert rapids.build_args["BASE_IMAGE"] == debian.build_args["BASE_IMAGE"]


def test_jobs_of_large_images_free_the_runner_disk_first() -> None:
    matrix = make_plan(load_images(["debian", "rapids"]), "r:1").matrix()
    assert {(job["image"], job["free_disk"]) for job in matrix} == {("debian", False), ("rapids", True)}


def test_platform_filter_and_extra_tags() -> None:
    plan = make_plan(load_images(["debian"]), "r:1", platforms=["linux/arm/v7"], extra_tags=["latest"])
    assert plan.targets[0].platforms == ["linux/arm/v7"]
    assert plan.targets[0].refs[-1] == "r:1/minimaldask/debian:latest"
    assert plan.matrix()[0]["emulated"] is True


def test_platform_the_base_lacks_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="rapids is not built for linux/arm/v7"):
        make_plan(load_images(["rapids"]), "r:1", platforms=["linux/arm/v7"])


def test_unknown_base_mode() -> None:
    with pytest.raises(ConfigError, match="unknown base mode"):
        make_plan(load_images(["debian"]), "r:1", base="nearby")  # type: ignore[arg-type]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "buildtools", *args], capture_output=True, text=True, check=False)


def test_cli_plan_prints_json_without_an_engine() -> None:
    result = run_cli("plan", "debian", "--registry", "nowhere.invalid:1")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["targets"][0]["refs"][0].startswith("nowhere.invalid:1/minimaldask/debian:")
    assert {m["platform"] for m in plan["matrix"]} == {"linux/amd64", "linux/arm64", "linux/arm/v7"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("plan", "nope"), "error: unknown image 'nope'"),
        (("plan", "debian", "--platform", "linux/s390x"), "error: image debian is not built for linux/s390x"),
        (("mirror", "debian", "--platform", "linux/s390x"), "error: the base mirror cannot be built for platform"),
    ],
)
def test_cli_user_errors_are_one_line_without_traceback(args: tuple[str, ...], message: str) -> None:
    result = run_cli(*args)
    assert result.returncode == 2
    assert result.stderr.startswith(message)
    assert "Traceback" not in result.stderr
