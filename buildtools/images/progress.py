"""Reads buildx's plain progress output: per-platform step times, cache hits, and one
summary line per Dockerfile step for people watching a build."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field

# "#12 [linux/arm64 stage-0 3/5] RUN ..." (multi-platform) or "#12 [stage-0 3/5] RUN ..."
STEP = re.compile(
    r"^#(?P<vertex>\d+) \[(?:(?P<platform>linux/[\w/]+) )?(?:[\w.-]+ )?(?P<position>\d+/\d+)\] (?P<text>.*)"
)
CACHED = re.compile(r"^#(\d+) CACHED")
DONE = re.compile(r"^#(\d+) DONE ([\d.]+)s")
ERROR = re.compile(r"^#(\d+) ERROR")
# Steps that do work; FROM only resolves the base.
WORK = {"RUN", "COPY", "ADD"}
# No summary for FROM either: BuildKit shares a base's vertex between builds and may name it
# after another build's Dockerfile ("[1/5]" in a build of three steps).
UNSUMMARIZED = {"FROM"}
# "RUN --mount=type=secret,id=ca,target=/run/secrets/ca     apt-get ...": the flags say
# how, the command says what.
FLAGS = re.compile(r"^(\w+)(?:\s+--\S+)*\s*")
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}")  # FROM pins the base by digest; the tag says enough
SUMMARY_CHARS = 60


@dataclass(frozen=True)
class Step:
    platform: str
    position: str  # "3/9"
    text: str  # the instruction as buildx names it

    @property
    def instruction(self) -> str:
        return self.text.split(" ", 1)[0]

    def summary(self) -> str:
        """The instruction and its first words, without flags: `RUN apt-get update -qq && ...`."""
        text = " ".join(DIGEST.sub("", FLAGS.sub(r"\1 ", self.text)).split())
        return text if len(text) <= SUMMARY_CHARS else text[: SUMMARY_CHARS - 3].rstrip() + "..."


@dataclass
class BuildProgress:
    """Fed line by line; knows which Dockerfile steps ran or came from the cache, and sums
    up each step as it ends."""

    image: str = ""  # names the image in summary lines
    platform: str = "default"  # for lines without one: a single-platform build
    steps: dict[str, Step] = field(default_factory=dict)  # by vertex
    cached: set[str] = field(default_factory=set)
    seconds: dict[str, float] = field(default_factory=dict)

    def feed(self, line: str) -> str | None:
        """Take one line of buildx output; return a summary line when it ends a step."""
        if match := STEP.match(line):
            # buildx names a vertex again whenever its output resumes after another's.
            self.steps.setdefault(
                match["vertex"], Step(match["platform"] or self.platform, match["position"], match["text"])
            )
        elif match := CACHED.match(line):
            self.cached.add(match[1])
            return self._summary(match[1], "(cached)")
        elif match := DONE.match(line):
            self.seconds[match[1]] = float(match[2])
            return self._summary(match[1], f"done {match[2]}s")
        elif match := ERROR.match(line):
            return self._summary(match[1], "failed")
        return None

    def _summary(self, vertex: str, outcome: str) -> str | None:
        step = self.steps.get(vertex)
        if step is None or step.instruction in UNSUMMARIZED:
            return None  # not a Dockerfile step (context transfer, export, cache import ...), or FROM
        return f"{self.image} {step.platform} [{step.position}] {step.summary()} {outcome}"

    def _work(self) -> dict[str, Step]:
        return {vertex: step for vertex, step in self.steps.items() if step.instruction in WORK}

    @property
    def work_steps(self) -> int:
        return len(self._work())

    @property
    def cached_steps(self) -> int:
        return len(self._work().keys() & self.cached)

    def platform_seconds(self) -> dict[str, float]:
        """Time spent in each platform's steps (they run in parallel, so these overlap)."""
        totals: dict[str, float] = defaultdict(float)
        for vertex, step in self._work().items():
            totals[step.platform] += self.seconds.get(vertex, 0.0)
        return dict(totals)
