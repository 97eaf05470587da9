"""The only module that talks to the Docker engine and buildx (through python-on-whales).

Every call turns a DockerException into an EngineError that keeps the command and stderr.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from python_on_whales import docker
from python_on_whales.exceptions import DockerException

from buildtools.errors import EngineError
from buildtools.platforms import platform_name

LogSink = Callable[[str], None]


@contextmanager
def _engine_call(what: str) -> Iterator[None]:
    try:
        yield
    except DockerException as e:
        stderr = (e.stderr or "").strip().splitlines()
        detail = stderr[-1] if stderr else f"exit code {e.return_code}"
        raise EngineError(f"{what} failed: {detail}") from e


def check_engine() -> str:
    """Return "engine X, buildx Y"; raise a clear error when either is unusable."""
    with _engine_call("contacting the Docker engine (start one with: env/bootstrap.sh engine)"):
        server = docker.version().server
    if server is None:
        raise EngineError("the Docker engine is not running: start it with env/bootstrap.sh engine")
    with _engine_call("docker buildx (install the docker-buildx plugin)"):
        buildx = docker.buildx.version()
    return f"engine {server.version}, {buildx.strip()}"


def import_rootfs(tarball: Path, ref: str, platform: str, changes: list[str]) -> None:
    with _engine_call(f"importing {tarball.name} as {ref}"):
        docker.import_(tarball, tag=ref, changes=changes, platform=platform)


def push(ref: str) -> None:
    with _engine_call(f"pushing {ref}"):
        docker.image.push(ref, quiet=True)


def create_index(ref: str, sources: list[str]) -> None:
    """One multi-platform tag from per-platform images already in the registry."""
    with _engine_call(f"creating the multi-platform image {ref}"):
        docker.buildx.imagetools.create(sources=sources, tags=[ref])


def run(image: str, command: list[str], platform: str | None = None) -> str:
    """Run a short command in a throw-away container (network: none) and return its output."""
    with _engine_call(f"running {' '.join(command)} in {image} ({platform or 'native'})"):
        output = docker.run(image, command, platform=platform, remove=True, networks=["none"], pull="missing")
    return str(output).strip()


def build(
    *,
    context: Path,
    dockerfile: Path,
    platforms: list[str],
    tags: list[str],
    build_args: dict[str, str],
    secrets: list[str],
    output: dict[str, str],
    cache_from: str | None,
    cache_to: str | None,
    labels: dict[str, str],
    no_cache: bool,
    metadata_file: Path,
    on_log: LogSink,
) -> None:
    """docker buildx build with plain progress streamed line by line to on_log."""
    with _engine_call(f"building {tags[0] if tags else dockerfile}"):
        logs = docker.buildx.build(
            context,
            file=dockerfile,
            platforms=platforms,
            tags=tags,
            build_args=build_args,
            secrets=secrets,
            output=output,
            cache_from=cache_from,
            cache_to=cache_to,
            labels=labels,
            cache=not no_cache,
            metadata_file=metadata_file,
            provenance=False,
            progress="plain",
            stream_logs=True,
        )
        for line in logs:
            on_log(line.rstrip("\n"))


def layer_digests(ref: str, platforms: list[str]) -> dict[str, set[str]]:
    """Layer digests of a (possibly remote) multi-platform image, per platform."""
    with _engine_call(f"inspecting {ref}"):
        index = docker.buildx.imagetools.inspect(ref)
        digests: dict[str, set[str]] = {}
        for entry in index.manifests or []:
            name = platform_name(entry.platform.model_dump() if entry.platform else None)
            if name in platforms:
                manifest = docker.buildx.imagetools.inspect(f"{ref.split('@')[0]}@{entry.digest}")
                digests[name] = {layer.digest for layer in manifest.layers or [] if layer.digest}
    return digests
