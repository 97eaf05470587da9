"""Machine-wide defaults (registry, cache, mirror): env/defaults.env, overridden by the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
ENV_DIR = REPO_ROOT / "env"
SYSTEM_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def read_env_file(path: Path) -> dict[str, str]:
    """Parse the KEY=VALUE lines that env/*.env files share with the shell scripts."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


@dataclass(frozen=True)
class Settings:
    cache_dir: Path
    registry: str
    debian_mirror: str

    @property
    def default_ca_bundle(self) -> Path | None:
        """The system bundle, which also trusts a TLS-intercepting proxy configured on the host."""
        return SYSTEM_CA_BUNDLE if SYSTEM_CA_BUNDLE.is_file() else None

    @classmethod
    def load(cls) -> Settings:
        defaults = read_env_file(ENV_DIR / "defaults.env")

        def get(key: str) -> str:
            return os.environ.get(key) or defaults[key]

        return cls(
            cache_dir=Path(get("MINIMALDASK_CACHE")),
            registry=get("MINIMALDASK_REGISTRY"),
            debian_mirror=get("MINIMALDASK_DEBIAN_MIRROR"),
        )
