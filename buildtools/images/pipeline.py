"""The build's steps in their one order, for every caller (the CLI, the tests, bench): check
the engine, ensure the offline bases the plan builds from, build each target, and judge its
sizes against its budgets. Nothing here prints: lines go to on_progress."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from buildtools.errors import BudgetExceeded, ConfigError
from buildtools.images import engine
from buildtools.images.build import BuildOptions, TargetResult, build_target, is_local, log_file
from buildtools.images.mirror import ensure_mirrors
from buildtools.images.plan import Plan
from buildtools.images.registry import Registry
from buildtools.settings import Settings


@dataclass(frozen=True)
class BuildRun:
    """The targets built, each with its sizes and its verdicts."""

    results: list[TargetResult]

    @property
    def overruns(self) -> list[str]:
        """One line per exceeded limit, of every target (a gzip build is not judged)."""
        return [line for result in self.results for verdict in result.verdicts for line in verdict.overruns]

    def enforce_budgets(self) -> None:
        """Raise BudgetExceeded naming every overrun. Separate from run_build so that a caller
        shows and saves the results (the report of an image over budget most of all) first."""
        if self.overruns:
            raise BudgetExceeded("over budget:\n" + "\n".join(self.overruns))


def run_build(
    plan: Plan,
    settings: Settings,
    options: BuildOptions,
    on_progress: Callable[[str], None],
    quiet: bool = False,
) -> BuildRun:
    """Build every target of the plan; quiet leaves out the line per platform and step (the
    build log has them), never the lines that say where the log is or what was not done."""
    for skipped in plan.skipped:
        on_progress(f"skipping {skipped.image}: {skipped.reason}")
    if not plan.targets:
        raise ConfigError("nothing to build")
    on_progress(engine.check_engine())
    ensure_mirrors(plan.targets, settings, on_progress)
    if options.output == "push" and is_local(plan.registry):
        Registry(plan.registry).ping()
    # Said before building: when a build fails, its log is where the reason is.
    for target in plan.targets:
        on_progress(f"build log: {log_file(settings, target.name)}")
    steps = (lambda _: None) if quiet else on_progress
    results = [build_target(target, plan.compression, settings, options, steps) for target in plan.targets]
    # No sizes means no verdict: that is said, never left to an empty size table.
    for result in results:
        if result.unmeasured:
            on_progress(f"{result.target.name}: sizes not measured, budgets not checked: {result.unmeasured}")
    return BuildRun(results)
