"""The build's steps and their order, and the budget verdict, with the engine, the mirrors and
buildx replaced by fakes (real builds: test_build_real.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from buildtools.errors import BudgetExceeded, ConfigError
from buildtools.images import build, pipeline, report
from buildtools.images.budgets import judge
from buildtools.images.build import BuildOptions, TargetResult
from buildtools.images.config import load_images
from buildtools.images.plan import Compression, Plan, Target, make_plan
from buildtools.images.sizes import LayerSize, PlatformSize
from buildtools.settings import Settings

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "images"
MB = 1_000_000


def plan(*names: str, base: str = "mirror") -> Plan:
    return make_plan(load_images(list(names), FIXTURES), "registry.example", base=base)  # type: ignore[arg-type]


def result(target: Target, compressed_mb: float) -> TargetResult:
    """target built at compressed_mb on each platform, judged against its budgets."""
    sizes = {
        p: PlatformSize(p, "sha256:d", int(compressed_mb * MB), 100 * MB, [LayerSize("sha256:l", 1, 100 * MB)])
        for p in target.platforms
    }
    verdicts = judge(target.name, sizes, target.budgets)
    return TargetResult(target, 1.0, {}, 0, 0, sizes, verdicts, None)


@pytest.fixture
def steps(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The steps run_build takes, in order; each target builds at 6 MB compressed."""
    taken: list[str] = []
    monkeypatch.setattr(pipeline.engine, "check_engine", lambda: taken.append("engine") or "engine 1, buildx 2")

    def ensure_mirrors(targets: list[Target], settings: Settings, progress: object) -> list[object]:
        taken.append(f"mirrors {sorted({t.mirror_suite for t in targets})}")
        return []

    def build_target(
        target: Target, compression: Compression, settings: Settings, options: BuildOptions, on_progress: object
    ) -> TargetResult:
        taken.append(f"build {target.name}")
        return result(target, 6)

    monkeypatch.setattr(pipeline, "ensure_mirrors", ensure_mirrors)
    monkeypatch.setattr(pipeline, "build_target", build_target)
    return taken


def test_engine_then_mirrors_then_each_build(steps: list[str], tmp_path: Path) -> None:
    lines: list[str] = []
    settings = Settings(cache_dir=tmp_path, registry="registry.example", debian_mirror="http://deb.example")
    run = pipeline.run_build(plan("tiny", "tiny-overbudget"), settings, BuildOptions(), lines.append)
    assert steps == ["engine", "mirrors ['trixie']", "build tiny-py3.13", "build tiny-overbudget-py3.13"]
    assert [r.target.name for r in run.results] == ["tiny-py3.13", "tiny-overbudget-py3.13"]
    assert lines[0] == "engine 1, buildx 2"
    assert f"build log: {tmp_path / 'logs' / 'build-tiny-py3.13.log'}" in lines


def test_nothing_to_build_fails_before_the_engine_is_asked(steps: list[str], tmp_path: Path) -> None:
    lines: list[str] = []
    settings = Settings(cache_dir=tmp_path, registry="r", debian_mirror="m")
    # alpine has no offline base: in mirror mode it is skipped, and nothing is left.
    skipped = make_plan(load_images(["alpine"]), "r", base="mirror")
    with pytest.raises(ConfigError, match="nothing to build"):
        pipeline.run_build(skipped, settings, BuildOptions(), lines.append)
    assert steps == []
    assert lines and all(line.startswith("skipping alpine: no offline mirror of its base ") for line in lines)


def test_the_verdict_names_every_overrun_and_only_those() -> None:
    tiny, over = plan("tiny", "tiny-overbudget").targets
    within = pipeline.BuildRun([result(tiny, 6)])
    assert within.overruns == []
    within.enforce_budgets()
    run = pipeline.BuildRun([result(tiny, 6), result(over, 6)])  # tiny-overbudget allows 5 MB
    (line,) = run.overruns
    assert line.startswith("tiny-overbudget-py3.13 linux/amd64: 6.0 MB compressed, budget 5 MB, over by 1.0 MB")
    with pytest.raises(BudgetExceeded) as error:
        run.enforce_budgets()
    assert str(error.value) == f"over budget:\n{line}"
    assert error.value.exit_code == 3


def test_a_budget_stays_a_model_from_the_config_to_the_verdict() -> None:
    (target,) = plan("tiny-overbudget").targets
    (config,) = load_images(["tiny-overbudget"], FIXTURES)
    assert target.budgets == {"linux/amd64": config.variant_budget("3.13", "linux/amd64")}
    assert plan("tiny-overbudget").to_json()["targets"][0]["budgets"]["linux/amd64"]["compressed_mb"] == 5


@pytest.mark.parametrize(
    ("registry", "options", "reason"),
    [
        ("ghcr.io/someone", BuildOptions(output="push"), "ghcr.io is read only by buildx"),
        ("127.0.0.1:5000", BuildOptions(output="load"), "the engine's image store keeps no compressed layers"),
        ("127.0.0.1:5000", BuildOptions(output="push-by-digest"), "a push by digest has no tag"),
    ],
    ids=["remote-registry", "load", "push-by-digest"],
)
def test_a_build_that_is_not_measured_says_so_in_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, registry: str, options: BuildOptions, reason: str
) -> None:
    """Only buildx itself is faked: the real build_target decides what it can measure."""
    monkeypatch.setattr(pipeline.engine, "check_engine", lambda: "engine 1, buildx 2")
    monkeypatch.setattr(build, "run_buildx", lambda *args: None)
    upstream = make_plan(load_images(["tiny"], FIXTURES), registry)  # upstream base: no mirror to ensure
    settings = Settings(cache_dir=tmp_path, registry=registry, debian_mirror="http://deb.example")
    lines: list[str] = []
    run = pipeline.run_build(upstream, settings, options, lines.append, quiet=True)
    ((only,),) = [run.results]
    assert (only.sizes, only.verdicts, run.overruns) == ({}, [], [])
    (line,) = [line for line in lines if "not measured" in line]
    assert line.startswith("tiny-py3.13: sizes not measured, budgets not checked: ") and reason in line
    assert "\n" not in line
    assert report.json_report(run.results)["images"][0]["sizes_not_measured"] == only.unmeasured
