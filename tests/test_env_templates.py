"""The config files env/k8s-node.sh and env/k8s-cluster.sh write are templates in env/templates/,
filled by `render` (env/lib.sh). Each is rendered here with sample values and parsed, so a broken
template fails the suite without a node."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from buildtools.settings import REPO_ROOT

TEMPLATES_DIR = REPO_ROOT / "env" / "templates"
PLACEHOLDER = re.compile(r"@[A-Za-z_][A-Za-z0-9_]*@")
# What env/k8s-node.sh sets (the facts of `env/k8s-node.sh env`), with this machine's layout.
SAMPLES = {
    "KUBERNETES_VERSION": "v1.33.13",
    "bin": "/var/cache/minimaldask/k8s/v1.33.13/bin",
    "bridge": "mdk0",
    "check_image": "127.0.0.1:5000/minimaldask/debian-base:trixie",
    "check_pod": "k8s-node-dns-check",
    "cluster_dir": "/tmp/minimaldask-node/clusters/sample",
    "cni_bin": "/usr/lib/cni",
    "ctr_root": "/tmp/minimaldask-node/node/sample/containerd/root",
    "ctr_state": "/tmp/minimaldask-node/node/sample/containerd/state",
    "kubeconfig": "/tmp/minimaldask-node/clusters/sample/kubeconfig.yaml",
    "logs_file": "/tmp/minimaldask-kwok/sample.container.log",
    "name": "sample",
    "node_dir": "/tmp/minimaldask-node/node/sample",
    "node_ip": "10.244.0.1",
    "pause_image": "127.0.0.1:5000/pause:3.10",
    "pod_cidr": "10.244.0.0/24",
    "registry": "127.0.0.1:5000",
    "runc": "/usr/sbin/runc",
    "service_cidr": "10.96.0.0/24",
    "sock": "/tmp/minimaldask-node/node/sample/run/containerd.sock",
}
TEMPLATES = sorted(path.name for path in TEMPLATES_DIR.iterdir())


def render(template: Path, values: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`render TEMPLATE` of env/lib.sh, the variables set from VALUES (through the environment)."""
    env = {"PATH": os.environ["PATH"], **values}
    return subprocess.run(
        ["sh", "-c", '. env/lib.sh; render "$1"', "render", str(template)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


def parse_corefile(text: str) -> list[str]:
    """The Corefile's server blocks: braces balanced, every block opened on a line of its own."""
    depth, servers = 0, []
    for line in (raw.split("#", 1)[0].strip() for raw in text.splitlines()):
        if line.endswith("{"):
            if depth == 0:
                servers.append(line.removesuffix("{").strip())
            depth += 1
        elif line == "}":
            depth -= 1
            assert depth >= 0, "a } without its {"
        else:
            assert "{" not in line and "}" not in line, f"brace inside a line: {line!r}"
    assert depth == 0, "a { is not closed"
    return servers


def parse_yaml(text: str) -> Any:
    return yaml.safe_load(text)


PARSERS: dict[str, Callable[[str], Any]] = {
    ".toml": tomllib.loads,
    ".yaml": parse_yaml,
    ".conflist": json.loads,
    "Corefile": parse_corefile,
}


def parser_for(name: str) -> Callable[[str], Any]:
    parser = PARSERS.get(Path(name).suffix) or PARSERS.get(name)
    assert parser, f"env/templates/{name}: no parser for this kind of file (add one to PARSERS)"
    return parser


def test_there_are_templates() -> None:
    assert {"containerd.toml", "kubelet.yaml", "Corefile", "cni.conflist", "kwokctl.yaml"} <= set(TEMPLATES)


@pytest.mark.parametrize("name", TEMPLATES)
def test_template_renders_to_a_valid_file(name: str) -> None:
    template = TEMPLATES_DIR / name
    used = {p.strip("@") for p in PLACEHOLDER.findall(template.read_text())}
    assert used, f"{name}: no placeholder; a fixed file belongs next to the script that uses it"
    assert used <= set(SAMPLES), f"{name}: add sample values for {sorted(used - set(SAMPLES))}"
    result = render(template, SAMPLES)
    assert result.returncode == 0, result.stderr
    assert not PLACEHOLDER.search(result.stdout), f"{name}: left unrendered: {PLACEHOLDER.findall(result.stdout)}"
    parsed = parser_for(name)(result.stdout)
    assert parsed, f"{name} renders to an empty document"
    used_values = [SAMPLES[key] for key in used]
    assert all(value in result.stdout for value in used_values)


def test_the_rendered_configs_carry_the_values() -> None:
    def rendered(name: str) -> Any:
        return parser_for(name)(render(TEMPLATES_DIR / name, SAMPLES).stdout)

    containerd = rendered("containerd.toml")
    assert containerd["grpc"]["address"] == SAMPLES["sock"]
    runc = containerd["plugins"]["io.containerd.cri.v1.runtime"]["containerd"]["runtimes"]["runc"]
    assert runc["options"]["BinaryName"] == SAMPLES["runc"]
    kubelet = rendered("kubelet.yaml")
    assert kubelet["kind"] == "KubeletConfiguration"
    assert kubelet["clusterDNS"] == [SAMPLES["node_ip"]]
    assert kubelet["authentication"]["x509"]["clientCAFile"] == f"{SAMPLES['cluster_dir']}/pki/ca.crt"
    cni = rendered("cni.conflist")
    assert cni["plugins"][0]["bridge"] == SAMPLES["bridge"]
    assert cni["plugins"][0]["ipam"]["ranges"] == [[{"subnet": SAMPLES["pod_cidr"], "gateway": SAMPLES["node_ip"]}]]
    assert rendered("Corefile") == [".:53"]
    kwokctl = rendered("kwokctl.yaml")
    assert kwokctl["options"]["kubeVersion"] == SAMPLES["KUBERNETES_VERSION"]
    assert kwokctl["options"]["etcdBinary"] == f"{SAMPLES['bin']}/etcd"
    node_patch = rendered("kwokctl-node.yaml")
    assert node_patch["kind"] == kwokctl["kind"], "kwokctl merges documents of one kind only"


def test_render_takes_values_literally(tmp_path: Path) -> None:
    template = tmp_path / "t.conf"
    template.write_text("a=@a@ b=@b@ again=@a@ mail=user@host\n")
    result = render(template, {"a": r"x|y&z\1/", "b": ""})
    assert result.returncode == 0, result.stderr
    assert result.stdout == "a=x|y&z\\1/ b= again=x|y&z\\1/ mail=user@host\n"


def test_render_refuses_an_unset_variable(tmp_path: Path) -> None:
    template = tmp_path / "t.conf"
    template.write_text("@set@ @misspelt@\n")
    result = render(template, {"set": "1"})
    assert result.returncode != 0
    assert "@misspelt@" in result.stderr and not result.stdout
