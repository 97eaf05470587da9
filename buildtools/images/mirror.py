"""The offline base mirror: a minimal Debian root built with mmdebstrap from a package
archive, imported per platform and pushed as ONE multi-platform image.

For air-gapped sites that have a Debian package mirror but no container registry access.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from buildtools.errors import ConfigError, MinimalDaskError
from buildtools.images import engine
from buildtools.images.config import MIRROR_REPOSITORY
from buildtools.images.plan import Target
from buildtools.images.registry import Registry, split_ref
from buildtools.platforms import KNOWN_PLATFORMS, PLATFORMS, platform_name
from buildtools.settings import Settings

Progress = Callable[[str], None]

# What debian:*-slim leaves out, applied to the root and kept for later apt installs.
SLIM_DPKG_OPTIONS = [
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/locale/*",
    "path-exclude=/usr/share/lintian/*",
]
APT_OPTIONS = ['APT::Install-Recommends "false"', 'APT::Install-Suggests "false"']
CLEANUP_HOOK = 'rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin "$1"/var/log/*.log "$1"/var/log/apt/*'
IMAGE_CHANGES = [
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    'CMD ["bash"]',
]


@dataclass(frozen=True)
class MirrorResult:
    ref: str
    platforms: list[str]
    built: list[str]  # platforms whose root was bootstrapped in this run
    seconds: float


def mirror_ref(settings: Settings, suite: str) -> str:
    return f"{settings.registry}/{MIRROR_REPOSITORY}:{suite}"


def debian_arch(platform: str) -> str:
    try:
        return PLATFORMS[platform].debian_arch
    except KeyError:
        raise ConfigError(
            f"the base mirror cannot be built for platform {platform!r} (supported: {', '.join(KNOWN_PLATFORMS)})"
        ) from None


def platforms_in_registry(registry: Registry, ref: str) -> set[str]:
    """Platforms a multi-platform tag already provides (attestation manifests skipped)."""
    _, repository, reference = split_ref(ref)
    try:
        _, index = registry.manifest(repository, reference)
    except KeyError:
        return set()
    names = (platform_name(entry.get("platform")) for entry in index.get("manifests", []))
    return {name for name in names if name}


def bootstrap_rootfs(suite: str, arch: str, archive: str, tarball: Path) -> None:
    command = ["mmdebstrap", "--quiet", "--variant=minbase", f"--arch={arch}"]
    command += [f"--dpkgopt={option}" for option in SLIM_DPKG_OPTIONS]
    command += [f"--aptopt={option}" for option in APT_OPTIONS]
    partial = tarball.with_suffix(".partial.tar")
    # The mirror is a snapshot of the archive (air-gapped archives are, too): a testing suite's
    # Release file expires within a week, so its Valid-Until is not enforced, here and in the
    # image's own sources (later `apt-get update`s); signatures are still verified.
    source = f"deb [check-valid-until=no] {archive} {suite} main"
    command += [f"--customize-hook={CLEANUP_HOOK}", suite, str(partial), source]
    try:
        subprocess.run(command, check=True, capture_output=True, text=True)
    except FileNotFoundError:
        raise MinimalDaskError("mmdebstrap is not installed: apt-get install mmdebstrap") from None
    except subprocess.CalledProcessError as e:
        last = (e.stderr or "").strip().splitlines()[-1:] or [f"exit code {e.returncode}"]
        raise MinimalDaskError(f"mmdebstrap {suite} for {arch} failed: {last[0]}") from e
    partial.rename(tarball)


def ensure_mirror(suite: str, platforms: list[str], settings: Settings, progress: Progress) -> MirrorResult:
    """Build and push the mirror unless the registry already has it for every platform."""
    started = time.monotonic()
    arches = {platform: debian_arch(platform) for platform in platforms}
    registry = Registry(settings.registry)
    registry.ping()
    ref = mirror_ref(settings, suite)
    present = platforms_in_registry(registry, ref)
    if set(platforms) <= present:
        progress(f"base mirror {ref} is cached ({', '.join(sorted(present))})")
        return MirrorResult(ref, sorted(present), [], time.monotonic() - started)

    wanted = sorted(set(platforms) | present)
    tarballs = settings.cache_dir / "mirror"
    tarballs.mkdir(parents=True, exist_ok=True)
    built, sources = [], []
    for platform in wanted:
        arch = arches.get(platform) or debian_arch(platform)
        tarball = tarballs / f"{suite}-{arch}.tar"
        if not tarball.exists():
            progress(f"bootstrapping Debian {suite} for {platform} with mmdebstrap ...")
            step = time.monotonic()
            bootstrap_rootfs(suite, arch, settings.debian_mirror, tarball)
            progress(f"  {platform}: {time.monotonic() - step:.0f} s, {tarball.stat().st_size / 1e6:.0f} MB")
            built.append(platform)
        per_platform = f"{ref}-{arch}"
        engine.import_rootfs(tarball, per_platform, platform, IMAGE_CHANGES)
        engine.push(per_platform)
        sources.append(per_platform)
    engine.create_index(ref, sources)
    progress(f"base mirror {ref} pushed ({', '.join(wanted)})")
    return MirrorResult(ref, wanted, built, time.monotonic() - started)


def ensure_mirrors(targets: list[Target], settings: Settings, progress: Progress) -> list[MirrorResult]:
    """The offline bases a plan's targets build from, each for the platforms they need."""
    needed: dict[str, set[str]] = {}
    for target in targets:
        if target.mirror_suite:
            needed.setdefault(target.mirror_suite, set()).update(target.platforms)
    return [ensure_mirror(suite, sorted(platforms), settings, progress) for suite, platforms in needed.items()]
