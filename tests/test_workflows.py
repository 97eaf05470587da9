"""The GitHub workflows: actionlint clean (yamllint: test_lint.py), free of hand-written image
lists, and the build matrix they compute is the one buildtools plans.

The matrix tests run the workflow's own selection step (its `run:` script, taken from
images.yml) in a throwaway git repository holding a copy of buildtools and images/, the
way the `plan` job runs it on a GitHub runner. The build job's build step runs the same
way, against the local engine, as an unprivileged user like GitHub's `runner`.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from buildtools.images.config import load_images
from buildtools.images.plan import make_plan
from buildtools.images.registry import Registry
from buildtools.platforms import KNOWN_PLATFORMS
from buildtools.settings import ENV_DIR, Settings, image_names, read_env_file

REPO = Path(__file__).resolve().parent.parent
WORKFLOWS = REPO / ".github" / "workflows"
IMAGES_WORKFLOW = WORKFLOWS / "images.yml"
TESTS_WORKFLOW = WORKFLOWS / "tests.yml"
LINT_SCRIPT = "env/lint-workflows.sh"
NO_COMMIT = "0" * 40
# The image the sandbox adds next to the real ones, so "only debian" means something.
EXTRA_IMAGE = "extra"
OWNER = "SomeOwner"
# The machine behind each GitHub-hosted runner label the jobs may ask for (GitHub's docs).
RUNNER_PLATFORM = {"ubuntu-24.04": "linux/amd64", "ubuntu-24.04-arm": "linux/arm64"}
# How GitHub runs a `run:` step on Linux: shell bash, `bash --noprofile --norc -eo pipefail {0}`.
GITHUB_BASH = ["bash", "--noprofile", "--norc", "-eo", "pipefail"]


def actionlint() -> Path:
    result = subprocess.run(["sh", LINT_SCRIPT, "--bin"], cwd=REPO, check=True, capture_output=True, text=True)
    return Path(result.stdout.strip())


@pytest.mark.tools
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


def test_plan_matrix_is_every_image_python_and_platform() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "buildtools", "plan", "--registry", "ghcr.io/test", "--base", "upstream"],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    )
    matrix = json.loads(result.stdout)["matrix"]
    expected = [
        (config.name, python, platform)
        for config in load_images()
        for python in config.pythons
        for platform in config.variant_platforms(python)
    ]
    assert [(job["image"], job["python"], job["platform"]) for job in matrix] == expected
    check_jobs(matrix)


def check_jobs(matrix: list[dict[str, Any]]) -> None:
    """Each job runs on a GitHub-hosted runner and says QEMU exactly when that runner's machine
    is not the job's platform; arm/v7 runs on amd64, as not every arm64 runner CPU runs 32-bit ARM."""
    for job in matrix:
        assert job["runner"] in RUNNER_PLATFORM, job
        assert job["emulated"] == (RUNNER_PLATFORM[job["runner"]] != job["platform"]), job
        if job["platform"] == "linux/arm/v7":
            assert RUNNER_PLATFORM[job["runner"]] == "linux/amd64", job
    slugs = [job["slug"] for job in matrix]
    assert len(set(slugs)) == len(slugs)


def test_large_images_free_the_runner_disk_before_building() -> None:
    names = [step.get("name", "") for step in job_steps("build")]
    (free,) = [step for step in job_steps("build") if step.get("name") == "Free disk space"]
    assert free["if"] == "matrix.free_disk"
    assert names.index("Free disk space") < next(i for i, name in enumerate(names) if name.startswith("Build "))
    plan = make_plan(load_images(), "ghcr.io/test")
    assert any(job["free_disk"] for job in plan.matrix())


# --- the workflow's selection step, run in a sandbox repository -----------------------


def job_steps(job: str) -> list[dict[str, Any]]:
    return list(yaml.safe_load(IMAGES_WORKFLOW.read_text())["jobs"][job]["steps"])


def select_step() -> dict[str, Any]:
    (step,) = [step for step in job_steps("plan") if step.get("id") == "select"]
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
        for name in ("entrypoint.sh", ".dockerignore", "pyproject.toml"):
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
        result = subprocess.run(
            [*GITHUB_BASH, str(script)],
            cwd=self.root,
            env=env,
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, f"select step failed:\n{result.stdout}{result.stderr}"
        return dict(line.split("=", 1) for line in output.read_text().splitlines())

    def expected_matrix(self, names: list[str]) -> list[tuple[str, str, str]]:
        configs = load_images(names, self.root / "images")
        return [
            (config.name, python, platform)
            for config in configs
            for python in config.pythons
            for platform in config.variant_platforms(python)
        ]


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    return Sandbox(tmp_path)


def selected(outputs: dict[str, str]) -> list[str]:
    return outputs["images"].split()


def matrix_pairs(outputs: dict[str, str]) -> list[tuple[str, str, str]]:
    matrix = json.loads(outputs["matrix"])
    check_jobs(matrix)
    return [(job["image"], job["python"], job["platform"]) for job in matrix]


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


@pytest.mark.parametrize("shared", ["entrypoint.sh", ".dockerignore", "images/strip.sh", "buildtools/images/plan.py"])
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


def test_targets_carry_refs_and_digest_slugs_per_image_and_python(sandbox: Sandbox) -> None:
    outputs = sandbox.run_select(BEFORE=NO_COMMIT)
    registry = f"ghcr.io/{OWNER.lower()}"
    assert outputs["registry"] == registry
    matrix = json.loads(outputs["matrix"])
    targets = json.loads(outputs["targets"])
    configs = load_images(sandbox.images(), sandbox.root / "images")
    variants = [(config, python) for config in configs for python in config.pythons]
    assert [target["name"] for target in targets] == [f"{c.name}-py{python}" for c, python in variants]
    for target, (config, python) in zip(targets, variants, strict=True):
        assert target["repository"] == f"{registry}/{config.repository}"
        refs = [f"{target['repository']}:{tag}" for tag in config.resolved_tags(python)]
        assert target["refs"].split() == refs
        assert target["gzip_refs"].split() == [f"{ref}-gzip" for ref in refs]
        assert target["default"] is (python == config.default_python)
        assert target["slugs"].split() == [job["slug"] for job in matrix if job["target"] == target["name"]]


# --- the build job's build step, run as an unprivileged user --------------------------

# The engine env/bootstrap.sh starts listens here (root:root, mode 0660).
DOCKER_SOCKET = Path("/var/run/docker.sock")
FIXTURES = REPO / "tests" / "fixtures" / "images"
MACHINE_CACHE = Path(read_env_file(ENV_DIR / "defaults.env")["MINIMALDASK_CACHE"])
# What cannot run here, and what stands in for it; each must occur once in the step.
STEP_SUBSTITUTES = {
    "--base upstream": "--base mirror",  # no upstream registry is reachable: the offline base mirror
    '--cache-scope "$SLUG"': "",  # the GHA cache needs GitHub's runtime token: the engine's build cache
}


def build_step() -> dict[str, Any]:
    (step,) = [step for step in job_steps("build") if step.get("name", "").startswith("Build ")]
    return step


def size_table_step() -> dict[str, Any]:
    (step,) = [step for step in job_steps("build") if step.get("name") == "Size table"]
    return step


def local_script(step: dict[str, Any]) -> str:
    script = str(step["run"])
    for text, substitute in STEP_SUBSTITUTES.items():
        assert script.count(text) == 1, f"the build step no longer has {text!r} once; update this test"
        script = script.replace(text, substitute)
    return script


@dataclass(frozen=True)
class RunnerUser:
    """An unprivileged user with a home, a runner temp directory and a workspace of its own."""

    name: str
    uid: int
    home: Path
    bin_dir: Path  # what a runner's PATH adds: buildtools
    runner_temp: Path
    workspace: Path
    checkout: Path  # this checkout, where the user may read it

    def run_step(self, script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        """Run a `run:` script as this user, in the workspace, with only env and what a runner sets."""
        path = self.runner_temp / f"step-{uuid.uuid4().hex[:8]}.sh"
        path.write_text(script)
        base_env = {
            "HOME": str(self.home),
            "USER": self.name,
            "PATH": f"{self.bin_dir}:/usr/local/bin:/usr/bin:/bin",
            "RUNNER_TEMP": str(self.runner_temp),
        }
        assignments = [f"{key}={value}" for key, value in {**base_env, **env}.items()]
        return subprocess.run(
            ["runuser", "-u", self.name, "--", "env", "-i", *assignments, *GITHUB_BASH, str(path)],
            cwd=self.workspace,
            capture_output=True,
            text=True,
            timeout=900,
        )


def readable_mount(source: Path, target: Path, undo: ExitStack) -> Path:
    """source, bind-mounted read-only at target: the runner user may not traverse the folders
    above it (a clone under a mode 0700 mktemp folder, a venv under /root). Read-only, so
    that removing the test's folder can never reach into the checkout."""
    target.mkdir()
    run_as_root("mount", "--bind", "-o", "ro", str(source), str(target))  # util-linux makes it read-only at once
    undo.callback(run_as_root, "umount", str(target))
    if not os.statvfs(target).f_flag & os.ST_RDONLY:
        pytest.fail(f"the bind mount {target} is not read-only")
    return target


def install_buildtools(bin_dir: Path, mounts: Path, undo: ExitStack) -> Path:
    """What `pip install -e .` gives the runner: a `buildtools` command, running this checkout
    and this venv's packages with the system's Python of the same minor version (this venv's
    interpreter may live where only root can reach it: pyenv under /root, mode 0700)."""
    python = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")
    if not python.is_file():
        pytest.fail(f"{python} is missing: the runner user needs a Python of the venv's version it may run")
    mounts.mkdir()
    checkout = readable_mount(REPO, mounts / "checkout", undo)
    packages = readable_mount(Path(sysconfig.get_path("purelib")), mounts / "site-packages", undo)
    command = bin_dir / "buildtools"
    command.write_text(f'#!/bin/sh\nPYTHONPATH="{checkout}{os.pathsep}{packages}" exec "{python}" -m buildtools "$@"\n')
    command.chmod(0o755)
    return checkout


def run_as_root(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True)


@pytest.fixture
def runner_user() -> Iterator[RunnerUser]:
    """A throwaway system user that may use the engine, like the runner user in group `docker`:
    a throwaway group owns the docker socket for the test's duration. All undone afterwards."""
    if os.geteuid() != 0:
        pytest.fail("creating a user takes root (the project's machines run the suite as root)")
    name = f"mdrunner-{uuid.uuid4().hex[:8]}"
    group = f"{name}-docker"
    with ExitStack() as undo:
        base = Path(tempfile.mkdtemp(prefix=f"{name}-"))
        undo.callback(shutil.rmtree, base)
        run_as_root("groupadd", "--system", group)
        undo.callback(run_as_root, "groupdel", group)
        home = base / "home"
        run_as_root(
            "useradd", "--system", "--user-group", "--groups", group, "--create-home", "--home-dir", str(home), name
        )
        undo.callback(run_as_root, "userdel", name)
        account = pwd.getpwnam(name)
        bin_dir = base / "bin"  # root's, like a runner's tool cache
        bin_dir.mkdir()
        checkout = install_buildtools(bin_dir, base / "mounts", undo)
        user = RunnerUser(name, account.pw_uid, home, bin_dir, base / "temp", base / "workspace", checkout)
        for directory in (base, user.runner_temp, user.workspace):
            directory.mkdir(exist_ok=True)
            os.chown(directory, account.pw_uid, account.pw_gid)
        socket_gid = DOCKER_SOCKET.stat().st_gid
        os.chown(DOCKER_SOCKET, -1, grp.getgrnam(group).gr_gid)
        undo.callback(os.chown, DOCKER_SOCKET, -1, socket_gid)
        yield user


def files_owned_by(uid: int, root: Path) -> list[str]:
    result = subprocess.run(["find", str(root), "-uid", str(uid)], check=True, capture_output=True, text=True)
    return result.stdout.split()


@pytest.mark.engine
def test_build_step_runs_as_an_unprivileged_user(
    runner_user: RunnerUser, registry: Registry, settings: Settings
) -> None:
    """The build job's build step, taken from images.yml, for the tiny fixture on linux/amd64
    as a pull request runs it (PUSH=false); then the size table step.

    Unlike on GitHub: the base is the offline mirror and the GHA cache is left out
    (STEP_SUBSTITUTES); the registry is the local one; the builder is the engine's own, since
    setup-buildx-action's docker-container builder needs the BuildKit image from Docker Hub.
    That is also why the push branch (PUSH=true) does not run: the engine's builder cannot
    push by digest. And the step runs in a workspace of the user's instead of a checkout of
    its own (it builds from this checkout, bind-mounted read-only where the user may read it).
    """
    plan = make_plan(load_images(["tiny"], FIXTURES), settings.registry, "mirror", ["linux/amd64"])
    (job,) = plan.matrix()
    step = build_step()
    assert set(step["env"]) == {"IMAGE", "PYTHON", "PLATFORM", "SLUG", "REGISTRY"}, "the step's env changed"
    env = {
        "IMAGE": job["image"],
        "PYTHON": job["python"],
        "PLATFORM": job["platform"],
        "SLUG": job["slug"],
        "REGISTRY": settings.registry,
        "PUSH": "false",
        "MINIMALDASK_IMAGES_DIR": str(runner_user.checkout / FIXTURES.relative_to(REPO)),
    }
    result = runner_user.run_step(local_script(step), env)
    assert result.returncode == 0, f"build step failed:\n{result.stdout}{result.stderr}"

    report = json.loads((runner_user.workspace / "report.json").read_text())
    ((platform,),) = [image["platforms"] for image in report["images"] if image["image"] == job["image"]]
    assert platform["platform"] == job["platform"] and platform["over_budget"] == []
    assert not (runner_user.workspace / "digest.txt").exists()  # a pull request pushes nothing
    # The machine-wide cache is root's: the user's builds keep their logs and caches at home.
    assert files_owned_by(runner_user.uid, MACHINE_CACHE) == []
    logs = {Path(line.removeprefix("build log: ")) for line in result.stderr.splitlines() if "build log: " in line}
    assert [log.is_relative_to(runner_user.home) and log.owner() == runner_user.name for log in logs] == [True]

    summary = runner_user.run_step(
        size_table_step()["run"], {"GITHUB_STEP_SUMMARY": str(runner_user.runner_temp / "summary")}
    )
    assert summary.returncode == 0, summary.stderr
    assert job["platform"] in (runner_user.runner_temp / "summary").read_text()
