"""Per-platform image sizes, measured from what was built: a registry or an OCI layout.

Compressed bytes are what a node pulls (layers + config); uncompressed bytes are the
layers' decompressed size, counted by streaming each layer once (cached by digest).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from buildtools.images.registry import Registry, split_ref
from buildtools.platforms import platform_name


class ContentSource(Protocol):
    def top(self) -> tuple[str, dict[str, Any]]: ...
    def json(self, digest: str) -> dict[str, Any]: ...
    def blob_json(self, digest: str) -> dict[str, Any]: ...
    def chunks(self, digest: str) -> Iterator[bytes]: ...


@dataclass(frozen=True)
class RegistrySource:
    registry: Registry
    repository: str
    reference: str

    @classmethod
    def for_ref(cls, ref: str) -> RegistrySource:
        host, repository, reference = split_ref(ref)
        return cls(Registry(host), repository, reference)

    def top(self) -> tuple[str, dict[str, Any]]:
        return self.registry.manifest(self.repository, self.reference)

    def json(self, digest: str) -> dict[str, Any]:
        return self.registry.manifest(self.repository, digest)[1]

    def blob_json(self, digest: str) -> dict[str, Any]:
        return self.registry.blob_json(self.repository, digest)

    def chunks(self, digest: str) -> Iterator[bytes]:
        return self.registry.blob_chunks(self.repository, digest)


@dataclass(frozen=True)
class OciLayoutSource:
    """An OCI image layout directory, as written by `buildx build --output type=oci,tar=false`."""

    root: Path

    def _blob(self, digest: str) -> Path:
        algorithm, _, hexdigest = digest.partition(":")
        return self.root / "blobs" / algorithm / hexdigest

    def top(self) -> tuple[str, dict[str, Any]]:
        index = json.loads((self.root / "index.json").read_text())
        entries = index.get("manifests", [])
        # buildx writes an index.json that points at the image's own index or manifest.
        if len(entries) == 1:
            return entries[0]["digest"], self.json(entries[0]["digest"])
        return "", index

    def json(self, digest: str) -> dict[str, Any]:
        return json.loads(self._blob(digest).read_text())

    blob_json = json  # in a layout, manifests and configs are all blobs

    def chunks(self, digest: str) -> Iterator[bytes]:
        with self._blob(digest).open("rb") as blob:
            while chunk := blob.read(1 << 20):
                yield chunk


@dataclass(frozen=True)
class LayerSize:
    digest: str
    compressed: int
    uncompressed: int


@dataclass(frozen=True)
class PlatformSize:
    platform: str
    digest: str
    compressed: int
    uncompressed: int
    layers: list[LayerSize]


def uncompressed_size(source: ContentSource, layer: dict[str, Any]) -> int:
    media_type = layer.get("mediaType", "")
    if "zstd" in media_type:
        import zstandard  # only images built with zstd need it

        reader = zstandard.ZstdDecompressor().decompressobj()
    elif media_type.endswith("gzip") or "gzip" in media_type:
        reader = zlib.decompressobj(wbits=zlib.MAX_WBITS | 32)
    else:  # an uncompressed tar layer
        return int(layer["size"])
    return sum(len(reader.decompress(chunk)) for chunk in source.chunks(layer["digest"]))


class LayerSizeCache:
    """Uncompressed sizes by layer digest, kept on disk: a digest's size never changes."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.sizes: dict[str, int] = {}
        if path and path.exists():
            self.sizes = json.loads(path.read_text())

    def get(self, source: ContentSource, layer: dict[str, Any]) -> int:
        digest = layer["digest"]
        if digest not in self.sizes:
            self.sizes[digest] = uncompressed_size(source, layer)
        return self.sizes[digest]

    def save(self) -> None:
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps(self.sizes, indent=0, sort_keys=True))


def measure_manifest(source: ContentSource, platform: str, digest: str, cache: LayerSizeCache) -> PlatformSize:
    manifest = source.json(digest)
    layers = [LayerSize(layer["digest"], int(layer["size"]), cache.get(source, layer)) for layer in manifest["layers"]]
    config = int(manifest["config"]["size"])
    return PlatformSize(
        platform=platform,
        digest=digest,
        compressed=config + sum(layer.compressed for layer in layers),
        uncompressed=sum(layer.uncompressed for layer in layers),
        layers=layers,
    )


def measure(source: ContentSource, cache: LayerSizeCache | None = None) -> dict[str, PlatformSize]:
    """Sizes per platform of an image index, or of a lone (single-platform) manifest."""
    cache = cache or LayerSizeCache(None)
    digest, top = source.top()
    if "layers" in top:
        # A manifest outside an index records its platform in the image's config only.
        entries = [(platform_name(source.blob_json(top["config"]["digest"])), digest)]
    else:
        # Attestation manifests name no platform (os "unknown") and are left out.
        entries = [(platform_name(entry.get("platform")), entry["digest"]) for entry in top.get("manifests", [])]
    sizes = {platform: measure_manifest(source, platform, digest, cache) for platform, digest in entries if platform}
    cache.save()
    return sizes
