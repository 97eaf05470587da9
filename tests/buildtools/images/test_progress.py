"""Reading buildx's plain progress output (no engine): the logs under tests/data are real
output of buildx 0.29 (docker driver): the tiny fixture built for three platforms, then
rebuilt from the cache, and a single-platform build whose cache import and last step fail."""

from __future__ import annotations

from pathlib import Path

from buildtools.images.progress import BuildProgress, Step

DATA = Path(__file__).resolve().parents[2] / "data"
SECRETS_STEP = 'RUN echo "ca bundle bytes: $(cat /run/secrets/ca 2>/dev/n...'
BASE = "FROM 127.0.0.1:5000/minimaldask/debian-base:trixie"


def feed(log: str, platform: str = "linux/amd64") -> tuple[BuildProgress, list[str]]:
    """The parser after the whole log, and the summary lines it gave on the way."""
    progress = BuildProgress(image="tiny", platform=platform)
    lines = [summary for line in (DATA / log).read_text().splitlines() if (summary := progress.feed(line))]
    return progress, lines


def test_one_line_per_platform_and_step_as_each_finishes() -> None:
    progress, lines = feed("buildx-multi-platform.log")
    # Vertices #10, #12 and #14 are named twice (their output resumed after another's): one line each.
    assert lines == [
        f"tiny linux/amd64 [2/3] {SECRETS_STEP} done 0.4s",
        f"tiny linux/arm64 [2/3] {SECRETS_STEP} done 0.5s",
        f"tiny linux/arm/v7 [2/3] {SECRETS_STEP} done 0.7s",
        'tiny linux/amd64 [3/3] RUN echo "1" >/version done 0.4s',
        'tiny linux/arm64 [3/3] RUN echo "1" >/version done 0.5s',
        'tiny linux/arm/v7 [3/3] RUN echo "1" >/version done 0.4s',
    ]
    assert (progress.work_steps, progress.cached_steps) == (6, 0)  # a cached FROM is no work step
    assert progress.platform_seconds() == {"linux/amd64": 0.8, "linux/arm64": 1.0, "linux/arm/v7": 1.1}


def test_cached_rebuild_says_cached_and_the_cache_import_gives_no_line() -> None:
    progress, lines = feed("buildx-multi-platform-cached.log")
    assert len(lines) == 6
    assert [line for line in lines if not line.endswith(" (cached)")] == []
    assert not any("cache" in line.split("]")[0] for line in lines)  # no line for "importing cache manifest"
    assert (progress.work_steps, progress.cached_steps) == (6, 6)


def test_single_platform_build_names_the_requested_platform_and_the_failed_step() -> None:
    progress, lines = feed("buildx-failed-step.log", platform="linux/arm64")
    # The failed cache import (#4) and the steps' own output ("#6 0.152 one") give no lines.
    assert lines == [
        "tiny linux/arm64 [2/3] RUN echo one; sleep 1; echo two done 1.2s",
        "tiny linux/arm64 [3/3] RUN echo failing >&2; exit 3 failed",
    ]
    assert (progress.work_steps, progress.cached_steps) == (2, 0)


def test_from_gives_no_line() -> None:
    """A base that another build also used may carry that build's step position."""
    progress = BuildProgress(image="tiny")
    for line in [f"#4 [linux/arm64 stage-0 1/5] {BASE}@sha256:{'f0' * 32}", "#4 resolve ... done", "#4 CACHED"]:
        assert progress.feed(line) is None
    assert progress.steps["4"] == Step("linux/arm64", "1/5", f"{BASE}@sha256:{'f0' * 32}")


def test_summary_drops_flags_and_digests_and_stays_short() -> None:
    copy = Step("linux/amd64", "5/6", "COPY --chmod=0755 entrypoint.sh /usr/local/bin/entrypoint.sh")
    assert copy.summary() == "COPY entrypoint.sh /usr/local/bin/entrypoint.sh"
    base = Step("linux/amd64", "1/6", "FROM docker.io/library/debian:trixie-slim@sha256:" + "0" * 64)
    assert base.summary() == "FROM docker.io/library/debian:trixie-slim"
    run = Step(
        "linux/amd64",
        "2/6",
        "RUN --mount=type=bind,source=images/strip.sh,target=/tmp/strip.sh     apt-get update -qq"
        "     && apt-get install -y -qq --no-install-recommends         python3 python3-venv tini",
    )
    assert run.summary() == "RUN apt-get update -qq && apt-get install -y -qq --no-ins..."
    assert len(run.summary()) == 60
