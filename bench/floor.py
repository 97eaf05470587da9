"""The floor: every file of an image that a Dask scheduler, a worker and a client really open, in
one container, against the whole image; its size uncompressed and as one zstd-19 tar.

The workload, in one container with no network (`--network none`, everything on loopback): the
image's own ENTRYPOINT (tini, then entrypoint.sh) runs a Python driver, which starts a scheduler
and a worker through entrypoint.sh as a deployment does (`dask scheduler` with its preloads,
`dask worker` with its nanny and the spawned worker process), connects a distributed.Client,
computes a dask.array sum, fetches the dashboard's /status page and every script and stylesheet
it links (bokeh's served assets), and shuts the cluster down.

Method: fanotify, from the host (needs root). The container starts gated (a shell waiting for one
line on its standard input); the host marks the container's whole root filesystem (its overlay
superblock, through /proc/PID/root) for FAN_OPEN and FAN_OPEN_EXEC, then lets it go. Every
open() and execve() by any process of the container is reported, the dynamic loader's and every
shared library's included (mapped files are opened first), whatever the language: python, tini,
dash, ls, /etc files read by libc. A file that is only stat'ed is not counted: the .py beside a
valid .pyc is stat'ed by the import system, never opened (the "with sources" figure adds them).
Each reported file is matched to the image by inode (device and inode of the container's root
filesystem, listed before the gate opens), so files created at run time are left out; a file is
counted once however often and under whichever name it was opened.

Sizes: the image's filesystem is exported (`docker export` of a created, never started container)
and written again as tars: the whole filesystem, the opened files only (the floor), and the floor
with the sources of its byte code; each compressed with zstd level 19 (the zstandard package).
"image MB" is the registry's layers uncompressed, "pulled" their compressed size with the config,
for that platform. Also lists the directories holding the most bytes never opened. Prints a table
(and JSON with --json, the opened files' paths included).

usage: python -m bench.floor [--image REF] [--platform linux/amd64 ...] [--threads 2] [--json]
"""

from __future__ import annotations

import argparse
import ctypes
import io
import json
import os
import select
import struct
import subprocess
import tarfile
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

import zstandard
from python_on_whales import docker

from buildtools.images.config import load_image
from buildtools.images.registry import Registry, split_ref
from buildtools.images.sizes import LayerSizeCache, RegistrySource, measure_manifest
from buildtools.platforms import platform_name
from buildtools.settings import Settings
from tests.helpers.host import platform_env

ZSTD_LEVEL = 19
TOP_DIRECTORIES = 15

# The driver, run by the image's ENTRYPOINT as its command; argv[1] is the entrypoint script.
WORKLOAD = r"""
import os, re, subprocess, sys, urllib.parse, urllib.request
import dask.array as da
from distributed import Client

def start(**env):
    return subprocess.Popen([sys.argv[1]], env={**os.environ, "HOST": "127.0.0.1", **env})

cluster = [start(), start(WORKER="true", DASK_SCHEDULER_ADDRESS="tcp://127.0.0.1:8786")]
with Client("tcp://127.0.0.1:8786", timeout=300) as client:
    client.wait_for_workers(1, timeout=300)
    assert client.compute(da.ones((2000, 2000), chunks=500).sum()).result() == 4_000_000
    status = "http://127.0.0.1:8787/status"
    page = urllib.request.urlopen(status, timeout=120).read().decode()
    assets = re.findall(r'<(?:script|link)\b[^>]*?\b(?:src|href)="([^"]+)"', page)
    for asset in assets:
        urllib.request.urlopen(urllib.parse.urljoin(status, asset), timeout=120).read()
    print(f"floor: status page and {len(assets)} assets served", file=sys.stderr)
    client.shutdown()
for process in cluster:
    process.wait(timeout=120)
"""

# fanotify(7): a notification group for opens and executions on a whole filesystem.
FAN_CLOEXEC, FAN_NONBLOCK, FAN_UNLIMITED_QUEUE = 0x1, 0x2, 0x10
FAN_OPEN, FAN_OPEN_EXEC = 0x20, 0x1000
FAN_MARK_ADD, FAN_MARK_FILESYSTEM = 0x1, 0x100
AT_FDCWD = -100
EVENT = struct.Struct("IBBHQii")  # struct fanotify_event_metadata: len, vers, -, metadata_len, mask, fd, pid


class Fanotify:
    """The inodes (device, inode) opened on the filesystem of one path."""

    def __init__(self, path: str) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.fanotify_mark.argtypes = [ctypes.c_int, ctypes.c_uint, ctypes.c_uint64, ctypes.c_int, ctypes.c_char_p]
        # Unlimited: a full queue would drop events, and the workload opens thousands of files.
        self.fd = libc.fanotify_init(FAN_CLOEXEC | FAN_NONBLOCK | FAN_UNLIMITED_QUEUE, os.O_RDONLY | os.O_LARGEFILE)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), f"fanotify_init (needs root): {os.strerror(ctypes.get_errno())}")
        mask = FAN_OPEN | FAN_OPEN_EXEC
        if libc.fanotify_mark(self.fd, FAN_MARK_ADD | FAN_MARK_FILESYSTEM, mask, AT_FDCWD, path.encode()) != 0:
            os.close(self.fd)
            raise OSError(ctypes.get_errno(), f"fanotify_mark {path}: {os.strerror(ctypes.get_errno())}")
        self.opened: set[tuple[int, int]] = set()

    def drain(self, wait: float) -> None:
        select.select([self.fd], [], [], wait)
        while True:
            try:
                buffer = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                return
            for offset in range(0, len(buffer), EVENT.size):
                fd = EVENT.unpack_from(buffer, offset)[5]
                if fd < 0:  # FAN_NOFD: the queue overflowed (it has no limit: should not happen)
                    raise RuntimeError("fanotify lost events")
                try:
                    stat = os.fstat(fd)
                    self.opened.add((stat.st_dev, stat.st_ino))
                finally:
                    os.close(fd)

    def close(self) -> None:
        os.close(self.fd)


@dataclass(frozen=True)
class Floor:
    files: dict[str, int]  # path -> size of each file opened, under one of its names
    names: set[str]  # every name of those files (hard links)


def image_files(root: str) -> dict[tuple[int, int], tuple[int, list[str]]]:
    """(device, inode) -> (size, its paths) of every regular file on ROOT's own filesystem."""
    device = os.stat(root).st_dev
    files: dict[tuple[int, int], tuple[int, list[str]]] = {}
    for directory, subdirectories, names in os.walk(root):
        # Other filesystems (/proc, /sys, /dev, the engine's /etc/hosts) are not the image.
        subdirectories[:] = [d for d in subdirectories if os.lstat(os.path.join(directory, d)).st_dev == device]
        for name in names:
            stat = os.lstat(os.path.join(directory, name))
            if stat.st_dev == device and stat.st_mode & 0o170000 == 0o100000:
                path = os.path.join(directory, name)[len(root) :]
                files.setdefault((stat.st_dev, stat.st_ino), (stat.st_size, []))[1].append(path)
    return files


def container_pid(name: str, process: subprocess.Popen[bytes], timeout: float = 120) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if docker.container.exists(name) and (pid := docker.container.inspect(name).state.pid):
            return pid
        time.sleep(0.1)
    raise RuntimeError(f"container {name} did not start")


def platform_manifest(ref: str, platform: str) -> tuple[RegistrySource, str, dict[str, Any]]:
    """REF's registry, and the digest and manifest of its PLATFORM."""
    source = RegistrySource.for_ref(ref)
    _, top = source.top()
    (digest,) = [m["digest"] for m in top.get("manifests", []) if platform_name(m.get("platform")) == platform]
    return source, digest, source.json(digest)


def collect(ref: str, platform: str, timeout: float = 1800) -> Floor:
    """Every regular file of the image opened during the workload."""
    source, _, manifest = platform_manifest(ref, platform)
    entrypoint = source.blob_json(manifest["config"]["digest"])["config"]["Entrypoint"]
    name = f"minimaldask-floor-{uuid.uuid4().hex[:12]}"
    # The gate: one line on standard input, once the host watches, starts the image's ENTRYPOINT.
    command = ["docker", "run", "-i", "--name", name, "--network", "none", "--platform", platform]
    command += [f"--env={key}={value}" for key, value in platform_env(platform).items()]
    command += ["--entrypoint", "/bin/sh", ref, "-c", 'read -r go && exec "$@"', "sh"]
    command += [*entrypoint, "python", "-c", WORKLOAD, entrypoint[-1]]
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT)
        try:
            root = f"/proc/{container_pid(name, process)}/root"
            files = image_files(root)
            watch = Fanotify(root)
            try:
                assert process.stdin is not None
                process.stdin.write(b"go\n")
                process.stdin.close()
                deadline = time.monotonic() + timeout
                while process.poll() is None and time.monotonic() < deadline:
                    watch.drain(0.2)
                watch.drain(0)
            finally:
                watch.close()
            if (status := process.poll()) != 0:
                log.seek(0)
                output = log.read().decode(errors="replace")[-4000:]
                reason = f"still running after {timeout:.0f} s" if status is None else f"exit {status}"
                raise RuntimeError(f"the workload failed ({reason}) in {ref} {platform}:\n{output}")
        finally:
            process.kill()
            process.wait()
            if docker.container.exists(name):
                docker.container.remove(name, force=True)
    opened = [files[inode] for inode in watch.opened if inode in files]
    return Floor(files={paths[0]: size for size, paths in opened}, names={n for _, paths in opened for n in paths})


class Tarball:
    """A tar written through zstd-19 into a counter: its regular files, their bytes and the
    compressed size. It is its compressor's sink."""

    def __init__(self, threads: int) -> None:
        self.files = self.bytes = self.compressed = 0
        self.zstd = zstandard.ZstdCompressor(level=ZSTD_LEVEL, threads=threads).stream_writer(self, closefd=False)
        self.tar = tarfile.open(fileobj=self.zstd, mode="w|", format=tarfile.PAX_FORMAT)  # noqa: SIM115 - close()

    def write(self, data: bytes) -> int:
        self.compressed += len(data)
        return len(data)

    def add(self, member: tarfile.TarInfo, data: bytes) -> None:
        self.tar.addfile(member, io.BytesIO(data))
        if member.isreg():
            self.files += 1
            self.bytes += len(data)

    def close(self) -> None:
        self.tar.close()
        self.zstd.close()


def directory_of(path: str) -> str:
    """Where a file's bytes are charged: its Python distribution below site- or dist-packages
    (the unit an image can leave out), otherwise its directory up to 4 levels."""
    parts = path.strip("/").split("/")[:-1]
    for i, part in enumerate(parts):
        if part in ("site-packages", "dist-packages") and i + 1 < len(parts):
            return "/" + "/".join(parts[: i + 2])
    return "/" + "/".join(parts[:4])


def sources_of(opened: set[str]) -> set[str]:
    """The source beside each byte-code file opened: the import system stats it to check the
    .pyc, so it must be in the image, though it is never opened."""
    sources = set()
    for path in opened:
        directory, found, cached = path.rpartition("/__pycache__/")
        if found and cached.endswith(".pyc"):
            sources.add(f"{directory}/{cached.split('.', 1)[0]}.py")
    return sources


def filesystem_sizes(ref: str, platform: str, selections: dict[str, set[str]], threads: int) -> dict[str, Any]:
    """The image's filesystem ("image") and each selection of its regular files, as tarballs;
    and, per directory, the bytes of the files outside each selection."""
    tarballs = {name: Tarball(threads) for name in ["image", *selections]}
    outside: dict[str, Counter[str]] = {name: Counter() for name in selections}
    container = docker.container.create(ref, platform=platform, networks=["none"])
    try:
        export = subprocess.Popen(["docker", "export", container.id], stdout=subprocess.PIPE)
        assert export.stdout is not None
        with tarfile.open(fileobj=export.stdout, mode="r|") as source:
            for member in source:
                data = source.extractfile(member).read() if member.isreg() else b""  # type: ignore[union-attr]
                tarballs["image"].add(member, data)
                if not member.isreg():
                    continue
                path = "/" + member.name.strip("/")
                for name, paths in selections.items():
                    if path in paths:
                        tarballs[name].add(member, data)
                    else:
                        outside[name][directory_of(path)] += len(data)
        if export.wait() != 0:
            raise RuntimeError(f"docker export of {ref} {platform} failed")
    finally:
        container.remove(force=True)
    for tarball in tarballs.values():
        tarball.close()
    return {"tarballs": tarballs, "outside": outside}


def measure(ref: str, platform: str, threads: int) -> dict[str, Any]:
    """One platform of REF (an image in a registry, best by digest): the floor against the image."""
    source, digest, _ = platform_manifest(ref, platform)
    pulled = measure_manifest(source, platform, digest, LayerSizeCache(None))
    opened = collect(ref, platform)
    selections = {"floor": opened.names, "with_sources": opened.names | sources_of(opened.names)}
    sizes = filesystem_sizes(ref, platform, selections, threads)
    image, floor, with_sources = (sizes["tarballs"][name] for name in ["image", *selections])
    outside = sizes["outside"]
    if floor.files != len(opened.files):
        raise RuntimeError(f"{len(opened.files)} files opened, {floor.files} of them found in the export")
    return {
        "platform": platform,
        "manifest": digest,
        "files_opened": len(opened.files),
        "floor_mb": round(floor.bytes / 1e6, 1),
        "floor_zstd19_mb": round(floor.compressed / 1e6, 1),
        "image_mb": round(pulled.uncompressed / 1e6, 1),
        "image_zstd19_mb": round(image.compressed / 1e6, 1),
        "image_pulled_mb": round(pulled.compressed / 1e6, 1),
        "ratio_zstd19": round(image.compressed / floor.compressed, 2),
        "ratio_pulled": round(pulled.compressed / floor.compressed, 2),
        "image_files": image.files,
        "image_files_mb": round(image.bytes / 1e6, 1),
        "with_sources_files": with_sources.files,
        "with_sources_mb": round(with_sources.bytes / 1e6, 1),
        "with_sources_zstd19_mb": round(with_sources.compressed / 1e6, 1),
        # Where the bytes never opened are, the largest first; "sources_mb": of which the sources
        # of the byte code opened (the import system needs them on disk).
        "not_opened_mb": [
            {"directory": d, "mb": round(b / 1e6, 1), "sources_mb": round((b - outside["with_sources"][d]) / 1e6, 1)}
            for d, b in outside["floor"].most_common(TOP_DIRECTORIES)
        ],
        "opened": sorted(opened.files),
    }


def pinned(ref: str) -> str:
    """REF by its digest, so that every step measures the same image while tags move."""
    host, repository, reference = split_ref(ref)
    digest, _ = Registry(host).manifest(repository, reference)
    return f"{host}/{repository}@{digest}"


COLUMNS = {
    "platform": "platform",
    "files_opened": "files opened",
    "floor_mb": "floor MB",
    "floor_zstd19_mb": "floor zstd-19 MB",
    "image_mb": "image MB",
    "image_zstd19_mb": "image zstd-19 MB (filesystem)",
    "image_pulled_mb": "image pulled MB",
    "ratio_zstd19": "image/floor, zstd-19",
    "ratio_pulled": "pulled/floor zstd-19",
}


def print_table(ref: str, rows: list[dict[str, Any]]) -> None:
    print(ref)
    print("| " + " | ".join(COLUMNS.values()) + " |")
    print("|---|" + "--:|" * (len(COLUMNS) - 1))
    for row in rows:
        print("| " + " | ".join(f"{row[key]:,}" if key == "files_opened" else str(row[key]) for key in COLUMNS) + " |")
    for row in rows:
        print(
            f"\n{row['platform']} ({row['manifest']}): the image's regular files {row['image_files']:,},"
            f" {row['image_files_mb']} MB; the floor with the sources of its byte code"
            f" {row['with_sources_files']:,} files, {row['with_sources_mb']} MB,"
            f" {row['with_sources_zstd19_mb']} MB zstd-19."
        )
        print("| directory | not opened MB | of which sources of the byte code opened, MB |\n|---|--:|--:|")
        for entry in row["not_opened_mb"]:
            print(f"| {entry['directory']} | {entry['mb']} | {entry['sources_mb']} |")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__.splitlines()[0])
    parser.add_argument("--image", default=None, help="in the local registry (default: debian, its default Python)")
    parser.add_argument("--platform", nargs="+", default=["linux/amd64"])
    parser.add_argument("--threads", type=int, default=2, help="zstd worker threads")
    parser.add_argument("--json", action="store_true", help="also print the results as JSON")
    args = parser.parse_args()
    registry = Settings.load().registry
    Registry(registry).ping()
    debian = load_image("debian")
    ref = pinned(args.image or f"{registry}/{debian.repository}:{debian.resolved_tags(debian.default_python)[0]}")
    rows = [measure(ref, platform, args.threads) for platform in args.platform]
    print_table(ref, rows)
    if args.json:
        print(json.dumps({"ref": ref, "results": rows}))


if __name__ == "__main__":
    main()
