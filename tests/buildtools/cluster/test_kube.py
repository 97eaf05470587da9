"""reach.PortForward against a real TCP server on 127.0.0.1 that accepts connections and never
answers: an API server whose port-forward upgrade stalls, as seen on a cold node. No Kubernetes
is needed; the websocket client and the forward's threads are the real ones."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from buildtools.cluster import kube as kube_module
from buildtools.cluster.kube import Kube
from buildtools.cluster.reach import PortForward
from buildtools.errors import DeployError


@pytest.fixture
def silent_api_server() -> Iterator[str]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                connection, _ = server.accept()
            except OSError:
                return
            accepted.append(connection)  # held open, never answered

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    server.close()
    for connection in accepted:
        connection.close()


class FixedPod(PortForward):
    """A PortForward whose Service always has one Ready pod (no Service here: the API is silent);
    picks are recorded, and `no_pod` stands for a Service with no Ready pod."""

    picked: list[str]
    no_pod = False

    def pick_pod(self, failed: set[str]) -> str:
        if self.no_pod:
            raise DeployError("no Ready pod behind Service dask/demo-scheduler to forward to")
        self.picked.append("demo-scheduler-0")
        return "demo-scheduler-0"


def fixed_pod(host: str, cls: type[FixedPod] = FixedPod, **options: Any) -> FixedPod:
    forward = cls(kube_at(host), "dask", "demo-scheduler", 8786, **options)
    forward.picked = []
    return forward


def kube_at(host: str) -> Kube:
    configuration = client.Configuration()
    configuration.host = host
    return Kube(client.ApiClient(configuration))


def test_a_stalled_upgrade_closes_the_client_connection_after_the_last_attempt(silent_api_server: str) -> None:
    forward = fixed_pod(silent_api_server, open_timeout=1.0, attempts=2)
    forward.start()
    try:
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", forward.local_port), timeout=30) as connection:
            assert connection.recv(1) == b""  # closed by the forward, not by our 30 s timeout
        elapsed = time.monotonic() - started
    finally:
        forward.close()
    assert elapsed < 10
    assert forward.picked == ["demo-scheduler-0", "demo-scheduler-0"]  # a pod picked per attempt
    assert "dask/demo-scheduler-0:8786, attempt 2/2: no answer within 1 s" in forward.last_error


def test_no_ready_pod_is_retried_then_reported(silent_api_server: str) -> None:
    forward = fixed_pod(silent_api_server, open_timeout=1.0, attempts=2)
    forward.no_pod = True
    forward.start()
    try:
        with socket.create_connection(("127.0.0.1", forward.local_port), timeout=30) as connection:
            assert connection.recv(1) == b""
    finally:
        forward.close()
    assert forward.last_error.endswith("attempt 2/2: no Ready pod behind Service dask/demo-scheduler to forward to")


class SocketPairStream:
    """Stands in for the Kubernetes port-forward websocket (which needs a real pod): the
    forward gets one end of a socket pair; the test plays the pod on the other."""

    def __init__(self) -> None:
        self.forward_end, self.pod_end = socket.socketpair()

    def socket(self, _port: int) -> socket.socket:
        return self.forward_end

    def close(self) -> None:
        self.forward_end.close()


class ScriptedForward(FixedPod):
    """A PortForward whose streams are SocketPairStreams: the first pod never answers, the next echoes."""

    streams: list[SocketPairStream]

    def _open_stream(self, pod: str) -> SocketPairStream:
        stream = SocketPairStream()
        self.streams.append(stream)
        if len(self.streams) > 1:
            threading.Thread(target=self.echo, args=(stream.pod_end,), daemon=True).start()
        return stream

    @staticmethod
    def echo(pod_end: socket.socket) -> None:
        while data := pod_end.recv(65536):
            pod_end.sendall(data)


def test_a_stream_that_never_answers_is_replaced_and_the_client_bytes_sent_again(silent_api_server: str) -> None:
    forward = fixed_pod(silent_api_server, ScriptedForward, answer_timeout=1.0)
    forward.streams = []
    forward.start()
    try:
        with socket.create_connection(("127.0.0.1", forward.local_port), timeout=30) as connection:
            connection.sendall(b"handshake")
            assert connection.recv(65536) == b"handshake"  # from the second pod: the first was silent
            connection.sendall(b" more")
            assert connection.recv(65536) == b" more"
    finally:
        forward.close()
    assert len(forward.streams) == 2
    silent = forward.streams[0].pod_end
    silent.settimeout(5)
    assert silent.recv(65536) == b"handshake"  # it was asked, and never answered
    assert "attempt 1/3: no answer from the pod within 1 s" in forward.last_error


def test_an_explicit_kubeconfig_or_context_wins_over_the_pods_account(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = tmp_path / "token"
    token.write_text("not used")
    monkeypatch.setattr(kube_module, "SERVICE_ACCOUNT_TOKEN", str(token))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.delenv("KUBECONFIG", raising=False)
    assert kube_module.uses_in_cluster_config()
    assert not kube_module.uses_in_cluster_config(kubeconfig="/some/kubeconfig")
    assert not kube_module.uses_in_cluster_config(context="other")
    monkeypatch.setenv("KUBECONFIG", "/some/kubeconfig")
    assert not kube_module.uses_in_cluster_config()
    monkeypatch.delenv("KUBECONFIG")
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST")
    assert not kube_module.uses_in_cluster_config()
