"""What the tests and the benchmarks (bench/) share: the local kwok control plane
(kwok_cluster), the real node of env/k8s-node.sh (node), container runs on this host (host)."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
