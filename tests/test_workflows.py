"""The GitHub workflows: lint clean, free of hand-written image lists, and the build matrix
they compute is the one buildtools plans.

The matrix tests run the workflow's own selection step (its `run:` script, taken from
images.yml) in a throwaway git repository holding a copy of buildtools and images/, the
way the `plan` job runs it on a GitHub runner.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from buildtools.config import KNOWN_PLATFORMS, image_names, load_images
from buildtools.plan import RUNNERS

REPO = Path(__file__).resolve().parent.parent
WORKFLOWS = REPO / ".github" / "workflows"
IMAGES_WORKFLOW = WORKFLOWS / "images.yml"
TESTS_WORKFLOW = WORKFLOWS / "tests.yml"
LINT_SCRIPT = "env/lint-workflows.sh"
NO_COMMIT = "0" * 40
# The image the sandbox adds next to the real ones, so "only debian" means something.
EXTRA_IMAGE = "extra"
OWNER = "SomeOwner"


def actionlint() -> Path:
    result = subprocess.run(["sh", LINT_SCRIPT, "--bin"], cwd=REPO, check=True, capture_output=True, text=True)
    return Path(result.stdout.strip())


def test_actionlint_passes() -> None:
    binary = actionlint()
    if not os.access(binary, os.X_OK):
        pytest.fail(f"actionlint is missing at {binary}; build it with: sh {LINT_SCRIPT}")
    result = subprocess.run(
        [str(binary), "-no-color", str(IMAGES_WORKFLOW), str(TESTS_WORKFLOW)],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, f"actionlint:\n{result.stdout}{result.stderr}"


def test_yamllint_passes() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "yamllint", "--strict", "-c", ".yamllint.yaml", ".github/workflows"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, f"yamllint:\n{result.stdout}{result.stderr}"


def test_images_workflow_names_no_image_and_no_platform() -> None:
    text = IMAGES_WORKFLOW.read_text().lower()
    for word in {"debian", "alpine", "rapids", "linux/arm", *image_names(), *KNOWN_PLATFORMS}:
        assert word.lower() not in text, f"images.yml hard-codes {word!r}; it must come from buildtools"


@pytest.mark.parametrize("workflow", [IMAGES_WORKFLOW, TESTS_WORKFLOW], ids=lambda p: p.name)
def test_actions_are_pinned_by_commit(workflow: Path) -> None:
    text = workflow.read_text()
    assert "::set-output" not in text
    uses = re.findall(r"uses:\s*(\S+)(.*)", text)
    assert uses
    for action, comment in uses:
        assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", action), f"{action} is not pinned by commit SHA"
        assert re.fullmatch(r"\s+# v\d+\.\d+\.\d+", comment), f"{action} lacks its '# vX.Y.Z' comment"


def test_plan_matrix_is_every_image_on_every_platform() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "buildtools", "plan", "--registry", "ghcr.io/test", "--base", "upstream"],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    )
    matrix = json.loads(result.stdout)["matrix"]
    expected = [(config.name, platform) for config in load_images() for platform in config.platforms]
    assert [(job["image"], job["platform"]) for job in matrix] == expected
    check_jobs(matrix)


def check_jobs(matrix: list[dict[str, Any]]) -> None:
    for job in matrix:
        assert (job["runner"], job["emulated"]) == RUNNERS[job["platform"]]
    slugs = [job["slug"] for job in matrix]
    assert len(set(slugs)) == len(slugs)


# --- the workflow's selection step, run in a sandbox repository -----------------------


def select_step() -> dict[str, Any]:
    workflow = yaml.safe_load(IMAGES_WORKFLOW.read_text())
    (step,) = [step for step in workflow["jobs"]["plan"]["steps"] if step.get("id") == "select"]
    return step


class Sandbox:
    """A git repository with a copy of buildtools and the images, plus one extra image."""

    def __init__(self, root: Path) -> None:
        self.root = root / "repo"
        self.runner_temp = root / "runner"
        self.runner_temp.mkdir()
        bin_dir = root / "bin"
        bin_dir.mkdir()
        shim = bin_dir / "buildtools"  # what `pip install -e .` provides on the runner
        shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m buildtools "$@"\n')
        shim.chmod(0o755)
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "GITHUB_", "PYTHON"))},
            "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_AUTHOR_NAME": "test",
            "GIT_AUTHOR_EMAIL": "test@example.invalid",
            "GIT_COMMITTER_NAME": "test",
            "GIT_COMMITTER_EMAIL": "test@example.invalid",
        }
        self._populate()

    def _populate(self) -> None:
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        shutil.copytree(REPO / "buildtools", self.root / "buildtools", ignore=ignore)
        shutil.copytree(REPO / "images", self.root / "images", ignore=ignore)
        (self.root / "env").mkdir()
        shutil.copy2(REPO / "env" / "defaults.env", self.root / "env")
        for name in ("entrypoint.sh", ".dockerignore"):
            shutil.copy2(REPO / name, self.root)
        (self.root / "README.md").write_text("# sandbox\n")
        template = self.root / "images" / "debian"
        extra = self.root / "images" / EXTRA_IMAGE
        shutil.copytree(template, extra)
        definition = extra / "image.toml"
        pattern, replacement = r'^repository = ".*"$', f'repository = "minimaldask/{EXTRA_IMAGE}"'
        definition.write_text(re.sub(pattern, replacement, definition.read_text(), count=1, flags=re.M))
        self.git("init", "-q", "-b", "master")
        self.git("add", "-A")
        self.git("commit", "-q", "-m", "initial")

    def git(self, *args: str) -> str:
        result = subprocess.run(["git", *args], cwd=self.root, env=self.env, check=True, capture_output=True, text=True)
        return result.stdout.strip()

    def head(self) -> str:
        return self.git("rev-parse", "HEAD")

    def change(self, path: str, message: str = "change") -> tuple[str, str]:
        """Commit a change to PATH; (commit before, commit after)."""
        before = self.head()
        with (self.root / path).open("a") as f:
            f.write("\n# changed\n")
        self.git("commit", "-q", "-am", message)
        return before, self.head()

    def images(self) -> list[str]:
        return image_names(self.root / "images")

    def run_select(self, **context: str) -> dict[str, str]:
        """Run the workflow's selection step with this GitHub context; its outputs."""
        step = select_step()
        defaults = {
            "EVENT_NAME": "push",
            "REF": "refs/heads/master",
            "OWNER": OWNER,
            "BEFORE": "",
            "HEAD_MESSAGE": "",
            "PR_BASE": "",
            "PR_HEAD": "",
            "REBUILD_ALL": "",
        }
        assert set(step["env"]) == set(defaults), "the select step's env changed; update this test"
        output = self.runner_temp / "output"
        output.write_text("")
        env = {
            **self.env,
            **defaults,
            **context,
            "RUNNER_TEMP": str(self.runner_temp),
            "GITHUB_OUTPUT": str(output),
            "GITHUB_STEP_SUMMARY": str(self.runner_temp / "summary"),
        }
        script = self.runner_temp / "select.sh"
        script.write_text(step["run"])
        # How GitHub runs a `run:` step on Linux: shell bash, `bash --noprofile --norc -eo pipefail {0}`.
        result = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
            cwd=self.root,
            env=env,
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, f"select step failed:\n{result.stdout}{result.stderr}"
        return dict(line.split("=", 1) for line in output.read_text().splitlines())

    def expected_matrix(self, names: list[str]) -> list[tuple[str, str]]:
        configs = load_images(names, self.root / "images")
        return [(config.name, platform) for config in configs for platform in config.platforms]


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    return Sandbox(tmp_path)


def selected(outputs: dict[str, str]) -> list[str]:
    return outputs["images"].split()


def matrix_pairs(outputs: dict[str, str]) -> list[tuple[str, str]]:
    matrix = json.loads(outputs["matrix"])
    check_jobs(matrix)
    return [(job["image"], job["platform"]) for job in matrix]


def test_readme_change_builds_nothing(sandbox: Sandbox) -> None:
    before, _ = sandbox.change("README.md")
    outputs = sandbox.run_select(BEFORE=before, HEAD_MESSAGE="docs")
    assert selected(outputs) == []
    assert outputs["matrix"] == "[]"
    assert outputs["targets"] == "[]"


def test_image_change_builds_only_that_image(sandbox: Sandbox) -> None:
    before, _ = sandbox.change("images/debian/image.toml")
    outputs = sandbox.run_select(BEFORE=before, HEAD_MESSAGE="debian: change")
    assert selected(outputs) == ["debian"]
    assert matrix_pairs(outputs) == sandbox.expected_matrix(["debian"])
    assert outputs["push"] == "true"


@pytest.mark.parametrize("shared", ["entrypoint.sh", ".dockerignore", "images/strip.sh", "buildtools/plan.py"])
def test_shared_input_change_builds_all(sandbox: Sandbox, shared: str) -> None:
    before, _ = sandbox.change(shared)
    outputs = sandbox.run_select(BEFORE=before, HEAD_MESSAGE="shared change")
    assert selected(outputs) == sandbox.images()
    assert EXTRA_IMAGE in selected(outputs)
    assert matrix_pairs(outputs) == sandbox.expected_matrix(sandbox.images())


def test_rebuild_in_head_commit_message_builds_all(sandbox: Sandbox) -> None:
    before, _ = sandbox.change("README.md", "docs only [rebuild]")
    outputs = sandbox.run_select(BEFORE=before, HEAD_MESSAGE="docs only [rebuild]")
    assert selected(outputs) == sandbox.images()
    assert matrix_pairs(outputs) == sandbox.expected_matrix(sandbox.images())


def test_first_push_builds_all(sandbox: Sandbox) -> None:
    outputs = sandbox.run_select(BEFORE=NO_COMMIT, HEAD_MESSAGE="initial")
    assert selected(outputs) == sandbox.images()


def test_dispatch_rebuild_all_builds_all(sandbox: Sandbox) -> None:
    sandbox.change("README.md")
    outputs = sandbox.run_select(EVENT_NAME="workflow_dispatch", REBUILD_ALL="true")
    assert selected(outputs) == sandbox.images()
    assert outputs["push"] == "true"


def test_dispatch_without_rebuild_all_diffs_the_last_commit(sandbox: Sandbox) -> None:
    sandbox.change("images/debian/image.toml")
    outputs = sandbox.run_select(EVENT_NAME="workflow_dispatch", REBUILD_ALL="false")
    assert selected(outputs) == ["debian"]


def test_pull_request_builds_its_changes_and_never_pushes(sandbox: Sandbox) -> None:
    base = sandbox.head()
    sandbox.change("README.md", "docs")
    _, head = sandbox.change("images/debian/image.toml", "debian")
    outputs = sandbox.run_select(EVENT_NAME="pull_request", REF="refs/pull/1/merge", PR_BASE=base, PR_HEAD=head)
    assert selected(outputs) == ["debian"]
    assert outputs["push"] == "false"


def test_pull_request_head_commit_can_ask_for_a_rebuild(sandbox: Sandbox) -> None:
    base = sandbox.head()
    _, head = sandbox.change("README.md", "docs [rebuild]")
    outputs = sandbox.run_select(EVENT_NAME="pull_request", REF="refs/pull/1/merge", PR_BASE=base, PR_HEAD=head)
    assert selected(outputs) == sandbox.images()


def test_push_outside_master_never_pushes(sandbox: Sandbox) -> None:
    outputs = sandbox.run_select(EVENT_NAME="workflow_dispatch", REF="refs/heads/topic", REBUILD_ALL="true")
    assert outputs["push"] == "false"


def test_targets_carry_refs_and_digest_slugs_per_image(sandbox: Sandbox) -> None:
    outputs = sandbox.run_select(BEFORE=NO_COMMIT)
    registry = f"ghcr.io/{OWNER.lower()}"
    assert outputs["registry"] == registry
    matrix = json.loads(outputs["matrix"])
    targets = json.loads(outputs["targets"])
    assert [target["image"] for target in targets] == sandbox.images()
    for target, config in zip(targets, load_images(sandbox.images(), sandbox.root / "images"), strict=True):
        assert target["repository"] == f"{registry}/{config.repository}"
        assert target["refs"].split() == [f"{target['repository']}:{tag}" for tag in config.resolved_tags()]
        assert target["slugs"].split() == [job["slug"] for job in matrix if job["image"] == target["image"]]
