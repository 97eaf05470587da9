"""The real Kubernetes node of env/k8s-node.sh, for the end-to-end tests and bench/prepull.py:
``Node.up`` starts it (or reuses it) and reads its facts (``env/k8s-node.sh env``); ``ctr`` asks
the node's own containerd."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.helpers import REPO_ROOT

NODE_SCRIPT = REPO_ROOT / "env" / "k8s-node.sh"
#: Lines of the script's stderr that a failure to start quotes.
ERROR_TAIL = 60


class NodeError(RuntimeError):
    """``env/k8s-node.sh up`` failed or timed out; the message ends with the last lines it wrote."""


def node_script(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", str(NODE_SCRIPT), *args], capture_output=True, text=True, timeout=timeout, check=False)


def _tail(output: str | bytes | None) -> str:
    # A TimeoutExpired carries bytes whatever text= said.
    text = output.decode(errors="replace") if isinstance(output, bytes) else output or ""
    return "\n".join(text.splitlines()[-ERROR_TAIL:])


@dataclass(frozen=True)
class Node:
    name: str
    kubeconfig: Path
    containerd: str  # the socket of the node's own containerd
    namespace: str  # the containerd namespace of the kubelet's containers
    log_dir: Path
    start_seconds: float

    @classmethod
    def up(cls, name: str, timeout: float = 3600) -> Node:
        """Start node NAME (reused when up). The first start on a machine builds binaries, hence the timeout."""
        started = time.monotonic()
        try:
            result = node_script("up", name, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            raise NodeError(f"{NODE_SCRIPT} up {name} timed out after {timeout:.0f} s:\n{_tail(e.stderr)}") from None
        if result.returncode != 0:
            raise NodeError(f"{NODE_SCRIPT} up {name} failed (exit {result.returncode}):\n{_tail(result.stderr)}")
        facts = dict(
            line.split("=", 1) for line in node_script("env", name, timeout=60).stdout.splitlines() if "=" in line
        )
        return cls(
            name=name,
            kubeconfig=Path(result.stdout.strip().splitlines()[-1]),
            containerd=facts["CONTAINERD_ADDRESS"],
            namespace=facts["CONTAINERD_NAMESPACE"],
            log_dir=Path(facts["LOG_DIR"]),
            start_seconds=time.monotonic() - started,
        )

    def down(self, timeout: float = 300) -> None:
        """Stop everything the node runs and remove its pods, network and rules (images stay cached)."""
        node_script("down", self.name, timeout=timeout)

    def ctr(self, *args: str, check: bool = True, timeout: float = 300) -> str:
        """``ctr ARGS`` against the node's containerd; its stdout."""
        out = subprocess.run(
            ["ctr", "--address", self.containerd, "--namespace", self.namespace, *args],
            capture_output=True,
            text=True,
            check=check,
            timeout=timeout,
        )
        return out.stdout

    def table(self, *args: str) -> list[list[str]]:
        """The rows of a ``ctr ... list`` table (header dropped), split into columns."""
        return [line.split() for line in self.ctr(*args).splitlines()[1:] if line.strip()]

    def containers_of(self, namespace: str) -> list[str]:
        """IDs of the containers (sandboxes included) of the pods of a Kubernetes namespace."""
        selector = f'labels."io.kubernetes.pod.namespace"=={namespace}'
        return self.ctr("containers", "list", "--quiet", selector).split()

    def api_server_pid(self) -> int:
        """The node's kube-apiserver (kwokctl's binary runtime runs it from the cluster's directory)."""
        binary = str(self.kubeconfig.parent / "bin" / "kube-apiserver").encode()
        for process in Path("/proc").iterdir():
            try:
                if process.name.isdigit() and (process / "cmdline").read_bytes().split(b"\0")[0] == binary:
                    return int(process.name)
            except OSError:  # gone meanwhile
                continue
        raise NodeError(f"no kube-apiserver of node {self.name} is running")

    def log_tail(self, lines: int = 20) -> str:
        """The last LINES lines of every log of the node's processes."""
        parts = []
        for log in sorted(self.log_dir.glob("*.log")):
            tail = log.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {log}\n" + "\n".join(tail))
        return "\n".join(parts)
