"""Real multi-platform builds of a small fixture image, pushed to the local registry."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
import zlib
from dataclasses import replace
from pathlib import Path

import pytest
from python_on_whales import docker

from buildtools.images.build import BuildOptions, TargetResult, build_target, log_file
from buildtools.images.config import load_images
from buildtools.images.pipeline import run_build
from buildtools.images.plan import make_plan
from buildtools.images.registry import Registry
from buildtools.images.sizes import RegistrySource, measure
from buildtools.settings import Settings

pytestmark = pytest.mark.engine

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "images"
PLATFORMS = ["linux/amd64", "linux/arm64", "linux/arm/v7"]
# Markers standing for a CA bundle, an index credential and a proxy credential.
CA_MARKER = "MINIMALDASK-TEST-CA-7f3a9c"
INDEX_MARKER = "index-token-5b1e22"
PROXY_MARKER = "proxy-pass-93d0c4"
# What `buildtools build` prints per platform and Dockerfile step.
STEP_LINE = re.compile(
    r"^(?P<image>\S+) (?P<platform>linux/\S+) \[(?P<position>\d+/\d+)\] .+ (\(cached\)|done [\d.]+s)$"
)
LOG_LINE = "build log: "


def build(names: list[str], settings: Settings, options: BuildOptions, log: Path) -> list[TargetResult]:
    plan = make_plan(load_images(names, FIXTURES), settings.registry, base="mirror")
    with log.open("a") as sink:
        return run_build(plan, settings, options, lambda line: sink.write(line + "\n")).results


@pytest.fixture(scope="module")
def secret_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ca = tmp_path_factory.mktemp("ca") / "bundle.pem"
    ca.write_text(f"-----BEGIN CERTIFICATE-----\n{CA_MARKER}\n-----END CERTIFICATE-----\n")
    return ca


def build_with_secrets(settings: Settings, ca: Path, log: Path, use_cache: bool) -> TargetResult:
    """Build the fixture with a CA bundle, an index credential and a proxy credential."""
    patch = pytest.MonkeyPatch()
    patch.setenv("PIP_INDEX_URL", f"https://user:{INDEX_MARKER}@127.0.0.1:9/simple")
    patch.setenv("HTTP_PROXY", f"http://user:{PROXY_MARKER}@127.0.0.1:9")
    try:
        (result,) = build(["tiny"], settings, BuildOptions(ca_bundle=ca, use_cache=use_cache), log)
    finally:
        patch.undo()
    return result


@pytest.fixture(scope="module")
def first_build(registry: Registry, settings: Settings, secret_env: Path, build_log: Path) -> TargetResult:
    return build_with_secrets(settings, secret_env, build_log, use_cache=False)


def test_all_platforms_built_and_measured(first_build: TargetResult) -> None:
    assert sorted(first_build.sizes) == sorted(PLATFORMS)
    for size in first_build.sizes.values():
        assert 0 < size.compressed < size.uncompressed
        assert len(size.layers) == 3  # the mirror's root and the two RUN steps
    assert all(verdict.ok for verdict in first_build.verdicts)


def test_compressed_sizes_match_an_independent_reading(first_build: TargetResult) -> None:
    """buildx imagetools (not our registry client) reads the same manifests."""
    index = json.loads(docker.buildx.imagetools.inspect(first_build.target.refs[0]).model_dump_json(by_alias=True))
    by_platform = {}
    for entry in index["manifests"]:
        platform = entry["platform"]
        variant = f"/{platform['variant']}" if platform.get("variant") else ""
        name = f"{platform['os']}/{platform['architecture']}{variant}"
        manifest = docker.buildx.imagetools.inspect(f"{first_build.target.refs[0]}@{entry['digest']}")
        by_platform[name] = manifest.config.size + sum(layer.size for layer in manifest.layers)
    assert by_platform == {p: s.compressed for p, s in first_build.sizes.items()}


def test_uncompressed_base_layer_matches_the_mirror_tarball(first_build: TargetResult, settings: Settings) -> None:
    tarball = settings.cache_dir / "mirror" / "trixie-amd64.tar"
    base_layer = first_build.sizes["linux/amd64"].layers[0]
    # The imported root is the same tar stream, re-packed: equal within tar padding.
    assert abs(base_layer.uncompressed - tarball.stat().st_size) / tarball.stat().st_size < 0.02


def test_secrets_were_mounted_but_are_in_no_layer_and_no_config(first_build: TargetResult, registry: Registry) -> None:
    source = RegistrySource.for_ref(first_build.target.refs[0])
    seen = docker.run(first_build.target.refs[0], ["cat", "/secrets-seen"], remove=True, networks=["none"])
    assert "ca bundle bytes: 0" not in seen and "index url chars: 0" not in seen, seen
    assert "proxy chars: 0" not in seen, seen  # the proxy reached the RUN step ...
    for size in first_build.sizes.values():
        manifest = source.json(size.digest)
        blobs = [manifest["config"]["digest"], *(layer["digest"] for layer in manifest["layers"])]
        for digest in blobs:
            data = b"".join(source.chunks(digest))
            if data[:2] == b"\x1f\x8b":
                data = zlib.decompress(data, wbits=zlib.MAX_WBITS | 32)
            for marker in (CA_MARKER, INDEX_MARKER, PROXY_MARKER):  # ... and left no trace
                assert marker.encode() not in data, f"{marker} found in {digest}"


def test_unchanged_rebuild_is_a_cache_hit(
    first_build: TargetResult, settings: Settings, secret_env: Path, build_log: Path
) -> None:
    again = build_with_secrets(settings, secret_env, build_log, use_cache=True)
    assert again.work_steps == first_build.work_steps > 0
    assert again.cached_steps == again.work_steps
    assert {p: s.digest for p, s in again.sizes.items()} == {p: s.digest for p, s in first_build.sizes.items()}
    assert all(v.previous_compressed == v.compressed for v in again.verdicts)


def test_oci_layout_output_measures_the_same(
    first_build: TargetResult, settings: Settings, tmp_path: Path, build_log: Path
) -> None:
    (result,) = build(["tiny"], settings, BuildOptions(output="oci", oci_dir=tmp_path), build_log)
    assert {p: s.compressed for p, s in result.sizes.items()} == {p: s.compressed for p, s in first_build.sizes.items()}
    assert measure(RegistrySource.for_ref(first_build.target.refs[0])).keys() == result.sizes.keys()


def buildtools_build(*args: str, cache_dir: Path) -> subprocess.CompletedProcess[str]:
    """`buildtools build` of a fixture image from the base mirror, with its own cache directory."""
    env = {**os.environ, "MINIMALDASK_IMAGES_DIR": str(FIXTURES), "MINIMALDASK_CACHE": str(cache_dir)}
    return subprocess.run(
        [sys.executable, "-m", "buildtools", "build", *args, "--base", "mirror"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


def printed_log_file(stderr: str) -> Path:
    (line,) = [line for line in stderr.splitlines() if line.startswith(LOG_LINE)]
    return Path(line.removeprefix(LOG_LINE))


def test_build_prints_a_line_per_platform_and_step_and_logs_all_of_buildx(registry: Registry, tmp_path: Path) -> None:
    result = buildtools_build("tiny", "--oci", str(tmp_path / "oci"), cache_dir=tmp_path / "cache")
    assert result.returncode == 0, result.stderr
    steps = [match for line in result.stderr.splitlines() if (match := STEP_LINE.match(line))]
    found = sorted((step["image"], step["platform"], step["position"]) for step in steps)
    assert found == sorted(("tiny-py3.13", platform, f"{n}/3") for platform in PLATFORMS for n in (2, 3))  # FROM: none
    assert not re.search(r"^#\d", result.stderr, re.M), "buildx's own lines reached the terminal"
    log = printed_log_file(result.stderr)
    assert log == tmp_path / "cache" / "logs" / "build-tiny-py3.13.log"
    text = log.read_text()
    assert text.startswith("#0 building with ")
    for platform in PLATFORMS:  # every step's header and output, the export, ...
        assert f"[{platform} stage-0 2/3] RUN --mount=type=secret,id=ca" in text
    assert re.search(r"^#\d+ exporting to oci image format$", text, re.M)
    assert len(re.findall(r"^#\d+ (DONE|CACHED)", text, re.M)) > len(steps)  # ... and the vertices that are no step


def test_registry_cache_is_imported_only_once_exported(registry: Registry, settings: Settings, tmp_path: Path) -> None:
    """Importing a cache that does not exist yet fails; buildx would print an error block."""
    (target,) = make_plan(load_images(["tiny-overbudget"], FIXTURES), settings.registry, base="mirror").targets
    target = replace(target, cache_ref=f"{target.repository}:buildcache-{uuid.uuid4().hex[:12]}")
    isolated = replace(settings, cache_dir=tmp_path)
    logs = []
    for _ in range(2):
        build_target(target, "zstd", isolated, BuildOptions(), lambda _: None)
        logs.append(log_file(isolated, target.name).read_text())
    first, second = logs
    assert "importing cache manifest" not in first
    assert "exporting cache to registry" in first
    assert f"importing cache manifest from {target.cache_ref}" in second
    assert "ERROR" not in second


def test_over_budget_fails_with_one_line_per_offender(registry: Registry, tmp_path: Path) -> None:
    result = buildtools_build("tiny-overbudget", "--quiet", cache_dir=tmp_path)
    assert result.returncode == 3, result.stderr
    assert not [line for line in result.stderr.splitlines() if STEP_LINE.match(line)]  # --quiet
    assert printed_log_file(result.stderr).is_file()
    lines = [line for line in result.stderr.splitlines() if line.startswith("tiny-overbudget")]
    assert len(lines) == 1
    assert lines[0].startswith("tiny-overbudget-py3.13 linux/amd64: ")
    assert ", budget 5 MB, over by " in lines[0]
    assert "Traceback" not in result.stderr


def test_an_unwritable_cache_is_one_line_not_a_traceback(registry: Registry, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")  # nobody, root included, can create a folder below a regular file
    result = buildtools_build("tiny", "--oci", str(tmp_path / "oci"), cache_dir=blocker / "cache")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: cannot write to the cache {blocker / 'cache'} (Not a directory): "
        "set MINIMALDASK_CACHE to a folder you can write"
    )


def test_a_gzip_build_gets_gzip_layers_and_tags_and_is_shown_but_not_judged(registry: Registry, tmp_path: Path) -> None:
    """Over its zstd budget, as gzip it is still built: the budgets judge the zstd build."""
    report = tmp_path / "report.json"
    result = buildtools_build(
        "tiny-overbudget",
        "--compression",
        "gzip",
        "--platform",
        "linux/amd64",
        "--report",
        str(report),
        cache_dir=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    (image,) = json.loads(report.read_text())["images"]
    assert [ref.rsplit(":", 1)[1] for ref in image["refs"]] == ["1-gzip"]
    (platform,) = image["platforms"]
    assert (platform["platform"], platform["budget"], platform["over_budget"]) == ("linux/amd64", None, [])
    (row,) = [line for line in result.stdout.splitlines() if "gzip, not judged" in line]  # in the size table
    assert row.split()[1:4] == ["tiny-overbudget-py3.13", "│", "linux/amd64"]
    source = RegistrySource.for_ref(image["refs"][0])
    _, top = source.top()  # one platform: the manifest itself, or an index with its attestation
    manifest = top if "layers" in top else source.json(next(m["digest"] for m in top["manifests"]))
    media_types = {layer["mediaType"] for layer in manifest["layers"]}
    # Docker's media types (what engines older than 23 know best) or OCI's: gzip either way.
    assert media_types and all(media_type.endswith("gzip") for media_type in media_types), media_types
