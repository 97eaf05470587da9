"""The only module that speaks the registry HTTP API (OCI distribution), for manifests and blobs."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from buildtools.errors import RegistryError

MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)
CHUNK = 1 << 20


def split_ref(ref: str) -> tuple[str, str, str]:
    """'127.0.0.1:5000/minimaldask/debian:tag' -> (host, repository, tag-or-digest)."""
    host, _, rest = ref.partition("/")
    if "@" in rest:
        repository, _, reference = rest.partition("@")
    else:
        repository, _, reference = rest.rpartition(":") if ":" in rest else (rest, "", "latest")
    return host, repository, reference


@dataclass(frozen=True)
class Registry:
    """A registry reached over plain HTTP: the local one on 127.0.0.1, or a mirror in a LAN."""

    host: str
    timeout: float = 30.0

    def _open(self, path: str, accept: str | None = None) -> Any:
        request = urllib.request.Request(f"http://{self.host}/v2/{path}")
        if accept:
            request.add_header("Accept", accept)
        try:
            return urllib.request.urlopen(request, timeout=self.timeout)  # noqa: S310 - http(s) only
        except urllib.error.HTTPError as e:
            if e.code == 404:
                raise KeyError(path) from e
            raise RegistryError(f"registry {self.host}: {path}: HTTP {e.code} {e.reason}") from e
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise RegistryError(
                f"registry {self.host} is unreachable ({reason}); start it with: env/bootstrap.sh registry"
            ) from e

    def ping(self) -> None:
        self._open("").close()

    def manifest(self, repository: str, reference: str) -> tuple[str, dict[str, Any]]:
        """(digest, manifest JSON); KeyError when the repository or tag does not exist."""
        with self._open(f"{repository}/manifests/{reference}", MANIFEST_TYPES) as response:
            return response.headers["Docker-Content-Digest"], json.load(response)

    def blob_chunks(self, repository: str, digest: str) -> Iterator[bytes]:
        with self._open(f"{repository}/blobs/{digest}") as response:
            while chunk := response.read(CHUNK):
                yield chunk

    def blob_json(self, repository: str, digest: str) -> dict[str, Any]:
        return json.loads(b"".join(self.blob_chunks(repository, digest)))
