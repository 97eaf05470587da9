"""The build plan is pure: no engine, no registry."""

import json
import subprocess
import sys

import pytest

from buildtools.errors import ConfigError
from buildtools.images.config import load_images
from buildtools.images.plan import make_plan


def test_plan_covers_every_image_python_and_platform_with_upstream_bases() -> None:
    configs = load_images()
    plan = make_plan(configs, "registry.example:5000")
    assert [(t.image, t.python) for t in plan.targets] == [(c.name, p) for c in configs for p in c.pythons]
    for target in plan.targets:
        config = next(c for c in configs if c.name == target.image)
        assert target.platforms == list(config.variant_platforms(target.python))
        assert target.build_args["BASE_IMAGE"] == config.pythons[target.python].base
        assert target.build_args["PYTHON_VERSION"] == target.python
        assert target.refs[0] == f"registry.example:5000/{config.repository}:{config.resolved_tags(target.python)[0]}"
        assert target.dockerfile == config.dockerfile_path
        assert target.mirror_suite is None  # upstream bases need no mirror
    assert len(plan.matrix()) == sum(len(c.variant_platforms(p)) for c in configs for p in c.pythons)
    assert len({row["slug"] for row in plan.matrix()}) == len(plan.matrix())


def test_debian_is_planned_for_three_pythons_on_three_platforms() -> None:
    plan = make_plan(load_images(["debian"]), "r:1", base="mirror")
    assert {(t.python, t.build_args["BASE_IMAGE"].rsplit(":", 1)[1]) for t in plan.targets} == {
        ("3.11", "bookworm"),
        ("3.13", "trixie"),
        ("3.14", "forky"),
    }
    assert {(row["python"], row["platform"]) for row in plan.matrix()} == {
        (python, platform)
        for python in ("3.11", "3.13", "3.14")
        for platform in ("linux/amd64", "linux/arm64", "linux/arm/v7")
    }
    dask = load_images(["debian"])[0].versions["dask"]
    tags = {t.python: [ref.rsplit(":", 1)[1] for ref in t.refs] for t in plan.targets}
    assert tags == {"3.11": [f"{dask}-py3.11"], "3.13": [f"{dask}-py3.13", dask], "3.14": [f"{dask}-py3.14"]}


def test_mirror_mode_uses_the_mirror_and_skips_images_without_one() -> None:
    plan = make_plan(load_images(), "127.0.0.1:5000", base="mirror")
    debian = next(t for t in plan.targets if t.image == "debian" and t.python == "3.13")
    assert debian.build_args["BASE_IMAGE"] == "127.0.0.1:5000/minimaldask/debian-base:trixie"
    assert debian.mirror_suite == "trixie"
    assert {s.image for s in plan.skipped} == {"alpine"}
    rapids = next(t for t in plan.targets if t.image == "rapids")
    assert rapids.build_args["BASE_IMAGE"] == debian.build_args["BASE_IMAGE"]


def test_jobs_of_large_images_free_the_runner_disk_first() -> None:
    matrix = make_plan(load_images(["debian", "rapids"]), "r:1").matrix()
    assert {(job["image"], job["free_disk"]) for job in matrix} == {("debian", False), ("rapids", True)}


def test_platform_and_python_filters_and_extra_tags_on_the_default_python() -> None:
    plan = make_plan(
        load_images(["debian"]), "r:1", platforms=["linux/arm/v7"], extra_tags=["latest"], pythons=["3.11", "3.13"]
    )
    assert [t.python for t in plan.targets] == ["3.11", "3.13"]
    assert all(t.platforms == ["linux/arm/v7"] for t in plan.targets)
    assert plan.targets[1].refs[-1] == "r:1/minimaldask/debian:latest"
    assert not any(ref.endswith(":latest") for ref in plan.targets[0].refs)
    assert plan.matrix()[0]["emulated"] is True


def test_a_python_an_image_lacks_is_skipped_with_its_reason() -> None:
    plan = make_plan(load_images(["debian", "debian-dataframe"]), "r:1", pythons=["3.11"])
    assert [t.name for t in plan.targets] == ["debian-py3.11"]
    assert [s.reason for s in plan.skipped] == ["no Python 3.11 (it has 3.13)"]


def test_gzip_builds_get_their_own_tags() -> None:
    zstd = make_plan(load_images(["debian"]), "r:1", pythons=["3.13"])
    gzip = make_plan(load_images(["debian"]), "r:1", pythons=["3.13"], compression="gzip")
    assert zstd.compression == "zstd"
    assert gzip.targets[0].refs == [f"{ref}-gzip" for ref in zstd.targets[0].refs]


def test_platform_the_base_lacks_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match=r"rapids py3.13 is not built for linux/arm/v7"):
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
    assert [t["name"] for t in plan["targets"]] == ["debian-py3.11", "debian-py3.13", "debian-py3.14"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("plan", "nope"), "error: unknown image 'nope'"),
        (("plan", "debian", "--platform", "linux/s390x"), "error: image debian py3.11 is not built for linux/s390x"),
        (("plan", "debian", "--compression", "lz4"), "error: unknown compression 'lz4'"),
        (("mirror", "debian", "--python", "2.7"), "error: image 'debian' has no offline base mirror for that Python"),
        (("mirror", "debian", "--platform", "linux/s390x"), "error: image debian py3.13 is not built for linux/s390x"),
    ],
)
def test_cli_user_errors_are_one_line_without_traceback(args: tuple[str, ...], message: str) -> None:
    result = run_cli(*args)
    assert result.returncode == 2
    assert result.stderr.startswith(message)
    assert "Traceback" not in result.stderr
