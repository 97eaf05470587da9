"""Reads buildx's plain progress output: per-platform step times and cache hits."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field

# "#12 [linux/arm64 stage-0 3/5] RUN ..." (multi-platform) or "#12 [stage-0 3/5] RUN ..."
STEP = re.compile(r"^#(\d+) \[(?:(linux/[\w/]+) )?(?:[\w.-]+ )?\d+/\d+\] (\w+)")
CACHED = re.compile(r"^#(\d+) CACHED")
DONE = re.compile(r"^#(\d+) DONE ([\d.]+)s")
# Steps that do work; FROM only resolves the base.
WORK = {"RUN", "COPY", "ADD"}


@dataclass
class BuildProgress:
    """Fed line by line; knows which Dockerfile steps ran or came from the cache."""

    platform: str = "default"  # for lines without one: a single-platform build
    steps: dict[str, tuple[str, str]] = field(default_factory=dict)  # vertex -> (platform, instruction)
    cached: set[str] = field(default_factory=set)
    seconds: dict[str, float] = field(default_factory=dict)

    def feed(self, line: str) -> None:
        if match := STEP.match(line):
            self.steps[match[1]] = (match[2] or self.platform, match[3])
        elif match := CACHED.match(line):
            self.cached.add(match[1])
        elif match := DONE.match(line):
            self.seconds[match[1]] = float(match[2])

    def _work(self) -> dict[str, tuple[str, str]]:
        return {vertex: step for vertex, step in self.steps.items() if step[1] in WORK}

    @property
    def work_steps(self) -> int:
        return len(self._work())

    @property
    def cached_steps(self) -> int:
        return len(self._work().keys() & self.cached)

    @property
    def fully_cached(self) -> bool:
        return self.work_steps > 0 and self.cached_steps == self.work_steps

    def platform_seconds(self) -> dict[str, float]:
        """Time spent in each platform's steps (they run in parallel, so these overlap)."""
        totals: dict[str, float] = defaultdict(float)
        for vertex, (platform, _) in self._work().items():
            totals[platform] += self.seconds.get(vertex, 0.0)
        return dict(totals)
