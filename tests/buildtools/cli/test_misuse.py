"""Misuses of the command line: one line on stderr, exit 2, never a traceback.

The cases come from walking the whole command tree, so a new command or option is covered
without a new test. Each runs the CLI's real entry point, `main()`, in this process (with
its argv and standard streams), and the README's examples also as a subprocess; none reaches
a command's body (every case fails while parsing), so none needs an engine or a cluster.
"""

from __future__ import annotations

import io
import subprocess
import sys
import traceback
import typing
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer.core
import typer.main
import yaml

from buildtools.cli import app, main

Command = typer.core.TyperCommand | typer.core.TyperGroup
Param = typer.core.TyperArgument | typer.core.TyperOption


def walk(command: Command, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Command]]:
    yield path, command
    if isinstance(command, typer.core.TyperGroup):
        for name, sub in command.commands.items():
            yield from walk(sub, (*path, name))


COMMANDS = list(walk(typer.main.get_command(app)))


def takes_number(command: Command, param: Param) -> bool:
    """Whether the parameter is an int or a float (optional or not), from its type hint."""
    hint = typing.get_type_hints(command.callback)[param.name]
    return bool({int, float} & {hint, *typing.get_args(hint)})


def takes_value(option: typer.core.TyperOption) -> bool:
    return not (option.is_flag or option.count)


def required_argv(command: Command, leave_out: Param | None = None) -> list[str]:
    """Valid values for the required parameters, so that a case fails only for its misuse."""
    argv: list[str] = []
    for param in command.params:
        if param.required and param is not leave_out:
            value = "1" if takes_number(command, param) else "demo"
            argv += [value] if isinstance(param, typer.core.TyperArgument) else [param.opts[0], value]
    return argv


@dataclass(frozen=True)
class Misuse:
    argv: tuple[str, ...]
    names: str  # what the error line must mention

    @property
    def id(self) -> str:
        return " ".join(self.argv) or "(no arguments)"


def misuses_of(path: tuple[str, ...], command: Command) -> Iterator[Misuse]:
    # Commands whose parameters are all optional (build, plan...) are never run bare: that
    # would start real work.
    if isinstance(command, typer.core.TyperGroup):
        yield Misuse(path, "command")
    yield Misuse((*path, *required_argv(command), "--bogus"), "--bogus")
    if any(param.required for param in command.params):
        yield Misuse(path, "Missing")
    for param in command.params:
        name = param.name if isinstance(param, typer.core.TyperArgument) else param.opts[0]
        if param.required:
            yield Misuse((*path, *required_argv(command, leave_out=param)), name)
        if isinstance(param, typer.core.TyperOption) and takes_value(param):
            yield Misuse((*path, *required_argv(command, leave_out=param), name), name)
            if takes_number(command, param):
                yield Misuse((*path, *required_argv(command, leave_out=param), name, "abc"), name)


# With one required parameter, leaving it out is giving none: the case is kept once, with
# the name the error must mention.
MISUSES = list({misuse.argv: misuse for path, command in COMMANDS for misuse in misuses_of(path, command)}.values())
HELPS = [(*path, "--help") for path, _ in COMMANDS]


def run_cli(argv: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    """main() as the console script runs it; an exception escaping it shows as its traceback."""
    stdout, stderr = io.StringIO(), io.StringIO()
    code: int | str | None = 0
    saved_argv, sys.argv = sys.argv, ["buildtools", *argv]
    try:
        with redirect_stdout(stdout), redirect_stderr(stderr):
            main()
    except SystemExit as e:
        code = e.code
    except Exception:
        stderr.write(traceback.format_exc())
        code = 1
    finally:
        sys.argv = saved_argv
    return subprocess.CompletedProcess(argv, code or 0, stdout.getvalue(), stderr.getvalue())


@pytest.fixture(scope="module")
def results() -> dict[tuple[str, ...], subprocess.CompletedProcess[str]]:
    return {argv: run_cli(argv) for argv in [misuse.argv for misuse in MISUSES] + HELPS}


def test_the_tree_is_walked() -> None:
    paths = {" ".join(path) for path, _ in COMMANDS}
    assert {"", "build", "plan", "up", "render", "render cluster", "render prepuller"} <= paths


@pytest.mark.parametrize("misuse", MISUSES, ids=lambda misuse: misuse.id)
def test_misuse_is_one_line_and_exit_2(
    misuse: Misuse, results: dict[tuple[str, ...], subprocess.CompletedProcess[str]]
) -> None:
    result = results[misuse.argv]
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    assert misuse.names in lines[0], lines[0]
    assert result.stdout == ""
    assert result.returncode == 2, lines[0]


@pytest.mark.parametrize("argv", HELPS, ids=" ".join)
def test_help_exits_0(argv: tuple[str, ...], results: dict[tuple[str, ...], subprocess.CompletedProcess[str]]) -> None:
    result = results[argv]
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout
    assert result.stderr == ""


@pytest.mark.parametrize("argv", [(), ("render",), ("up",), ("changed",)], ids=lambda argv: " ".join(argv) or "-")
def test_the_readme_misuses_as_a_subprocess(argv: tuple[str, ...]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "buildtools", *argv], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("error: "), result.stderr


SPEC_FILES = {
    "missing": (None, "cannot read the spec file"),
    "bad-yaml": ("name: [demo\n", "not valid YAML"),
    "not-a-mapping": ("[demo]\n", "a spec file is a mapping of ClusterSpec fields"),
    "unknown-field": ("name: demo\nn_worker: 2\n", "unknown key 'n_worker' (known: name, namespace, image, n_workers"),
    "bad-value": ("name: demo\nresources: {worker: {limits: {memory: lots}}}\n", "resources.worker.limits.memory"),
    "no-name": ("n_workers: 2\n", "give the cluster's NAME"),
}


@pytest.mark.parametrize("command", [("render", "cluster"), ("up",)], ids=" ".join)
@pytest.mark.parametrize(("case", "content", "names"), [(k, *v) for k, v in SPEC_FILES.items()], ids=SPEC_FILES)
def test_a_bad_spec_file_is_one_line_and_exit_2(
    tmp_path: Path, command: tuple[str, ...], case: str, content: str | None, names: str
) -> None:
    """`up` too fails before it looks for a cluster: the spec is read and checked first."""
    path = tmp_path / f"{case}.yaml"
    if content is not None:
        path.write_text(content)
    result = run_cli((*command, "--spec", str(path)))
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert names in result.stderr
    assert (result.stdout, result.returncode) == ("", 2)


def test_a_warning_is_one_line_too(tmp_path: Path) -> None:
    """`up` warns about a scheduler exposed without TLS before it looks for the cluster."""
    (tmp_path / "plain.yaml").write_text("tls: false\n")
    argv = ("up", "demo", "--spec", str(tmp_path / "plain.yaml"), "--service-type", "NodePort")
    result = run_cli((*argv, "--kubeconfig", str(tmp_path / "missing")))
    warning, error = result.stderr.splitlines()
    assert warning.startswith("warning: cluster demo: the scheduler is exposed outside the cluster (NodePort)")
    assert error.startswith("error: cannot load the Kubernetes configuration"), error
    assert result.returncode == 2


@pytest.mark.parametrize(
    ("value", "message"),
    [("5", "--adapt must be MIN:MAX"), ("a:b", "--adapt must be MIN:MAX"), ("4:2", "minimum (4) exceeds maximum (2)")],
)
def test_a_bad_adapt_option_is_one_line_and_exit_2(value: str, message: str) -> None:
    result = run_cli(("render", "cluster", "demo", "--adapt", value))
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert message in result.stderr and result.returncode == 2


def test_adapt_and_idle_timeout_options_become_the_deployments_annotations() -> None:
    result = run_cli(("render", "cluster", "demo", "--adapt", "0:20", "--idle-timeout", "600"))
    assert result.returncode == 0, result.stderr
    scheduler, worker = [o for o in yaml.safe_load_all(result.stdout) if o["kind"] == "Deployment"]
    assert worker["metadata"]["annotations"] == {"minimaldask/adapt": '{"maximum": 20, "minimum": 0}'}
    assert scheduler["metadata"]["annotations"]["minimaldask/idle-timeout"] == "600"
