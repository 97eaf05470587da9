"""How this process reaches a cluster's scheduler: by the Service's DNS name inside the
cluster, the LoadBalancer's address or a node's port when the Service has one, else through a
port-forward over the API server (PortForward: no kubectl, only `pods/portforward`)."""

from __future__ import annotations

import select
import socket
import threading
import time
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.stream import portforward

from buildtools.cluster import labels
from buildtools.cluster.address import service_host
from buildtools.cluster.kinds import POD, SERVICE
from buildtools.cluster.kube import Kube
from buildtools.errors import DeployError, MinimalDaskError


class SchedulerReach:
    """The addresses of one cluster's scheduler ports from here; the forwards it opened stay
    open until `close`."""

    def __init__(self, kube: Kube, name: str, namespace: str) -> None:
        self.kube, self.name, self.namespace = kube, name, namespace
        self.service = labels.scheduler_service_name(name)
        self._forwards: dict[int, PortForward] = {}

    def address(self, port_name: str, port: int, scheme: str) -> str:
        if self.kube.in_cluster:
            return f"{scheme}://{service_host(self.name, self.namespace)}:{port}"
        service = self.kube.get(SERVICE, self.service, self.namespace)
        if service is None:
            raise DeployError(f"the scheduler Service of cluster {self.namespace}/{self.name} is gone")
        service_port = next(p for p in service["spec"]["ports"] if p["name"] == port_name)
        if service["spec"]["type"] == "LoadBalancer":
            ingress = (service.get("status", {}).get("loadBalancer", {}).get("ingress") or [{}])[0]
            address = ingress.get("ip") or ingress.get("hostname")
            if not address:
                raise DeployError(f"the LoadBalancer of cluster {self.name} has no address yet")
            return f"{scheme}://{address}:{service_port['port']}"
        if service["spec"]["type"] == "NodePort":
            return f"{scheme}://{self._node_address()}:{service_port['nodePort']}"
        if port not in self._forwards:
            if not self.kube.ready_pods(self.namespace, self.service):  # fail now, not at the first connection
                raise DeployError(f"no Ready scheduler pod in cluster {self.namespace}/{self.name} to forward to")
            forward = PortForward(self.kube, self.namespace, self.service, port)
            forward.start()
            self._forwards[port] = forward
        return f"{scheme}://127.0.0.1:{self._forwards[port].local_port}"

    def _node_address(self) -> str:
        for pod in self.kube.list(POD, self.namespace, labels.label_selector(self.name, "scheduler")):
            if host_ip := pod.get("status", {}).get("hostIP"):
                return str(host_ip)
        raise DeployError(f"the scheduler pod of cluster {self.name} has no node yet")

    def close(self) -> None:
        for forward in self._forwards.values():
            forward.close()
        self._forwards.clear()


@dataclass
class PortForward:
    """127.0.0.1:local_port -> a Ready pod of a Service, port `port`, over the API server, one
    websocket per connection.

    Each connection picks among the Service's Ready pods, so a replaced pod is found again, and
    an attempt that fails re-picks, preferring a pod that has not failed yet. Every
    step is bounded: an upgrade that stalls, or a stream that never answers what the client
    sent (both seen on a cold node), is retried on a new stream with the client's bytes sent
    again; after the last attempt the local connection is closed and last_error says why,
    instead of leaving the client waiting. Needs only the `pods/portforward` permission, no kubectl.
    """

    kube: Kube
    namespace: str
    service: str
    port: int
    local_port: int = 0
    open_timeout: float = 10.0
    answer_timeout: float = 10.0
    attempts: int = 3
    last_error: str = ""
    _server: socket.socket | None = None
    _closed: threading.Event = field(default_factory=threading.Event)

    def pick_pod(self, failed: set[str]) -> str:
        """A Ready pod of the Service, one that has not failed this connection when there is one."""
        ready = self.kube.ready_pods(self.namespace, self.service)
        if not ready:
            raise DeployError(f"no Ready pod behind Service {self.namespace}/{self.service} to forward to")
        fresh = [pod for pod in ready if pod not in failed]
        return (fresh or ready)[0]

    def start(self) -> None:
        server = socket.socket()
        server.bind(("127.0.0.1", self.local_port))
        server.listen(16)
        self.local_port = server.getsockname()[1]
        self._server = server
        threading.Thread(target=self._accept, name=f"port-forward-{self.port}", daemon=True).start()

    def _accept(self) -> None:
        assert self._server is not None
        while not self._closed.is_set():
            try:
                connection, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._pipe, args=(connection,), daemon=True).start()

    def _open_stream(self, pod: str) -> Any:
        """The port-forward websocket to pod, or TimeoutError after open_timeout. The opener
        runs in a thread of its own (the client's websocket connect has no timeout); one
        that answers after the caller gave up closes its stream itself. The stream gets an
        ApiClient of its own: the client's `portforward` swaps the request method of the
        ApiClient it is given while it connects, which would send the API calls other threads
        make meanwhile (the handle's, adapt's) down the websocket path."""
        core = client.CoreV1Api(client.ApiClient(self.kube.api.configuration))
        outcome: list[Any] = []
        answered = threading.Condition()

        def open_() -> None:
            try:
                result: Any = portforward(
                    core.connect_get_namespaced_pod_portforward, pod, self.namespace, ports=str(self.port)
                )
            except Exception as e:  # handed to the caller, whatever it is
                result = e
            with answered:
                if outcome:  # the caller gave up (it put None)
                    if not isinstance(result, Exception):
                        result.close()
                    return
                outcome.append(result)
                answered.notify()

        threading.Thread(target=open_, name=f"port-forward-open-{pod}", daemon=True).start()
        with answered:
            if not answered.wait_for(lambda: bool(outcome), timeout=self.open_timeout):
                outcome.append(None)
                raise TimeoutError(f"no answer within {self.open_timeout:.0f} s")
        (result,) = outcome
        if isinstance(result, ApiException | OSError):
            raise result
        if isinstance(result, Exception):
            raise DeployError(f"cannot open a port-forward to {self.namespace}/{pod}: {result}") from result
        return result

    def _pipe(self, connection: socket.socket) -> None:
        """Relay one client connection. Each attempt opens a stream to a ready pod; a stream
        that never answers what the client sent (seen on a cold node: the upgrade succeeds,
        no byte ever comes back) is dropped and the client's bytes are sent again on a new one."""
        unanswered = bytearray()  # what the client sent before the pod's first byte
        failed: set[str] = set()
        try:
            for attempt in range(1, self.attempts + 1):
                pod = "?"
                try:
                    pod = self.pick_pod(failed)
                    failure = self._relay(connection, self._open_stream(pod), unanswered)
                    if failure is None:
                        return
                except (MinimalDaskError, ApiException, OSError) as e:
                    failure = str(e)
                failed.add(pod)
                self.last_error = (
                    f"port-forward to {self.namespace}/{pod}:{self.port}, attempt {attempt}/{self.attempts}: {failure}"
                )
                if attempt < self.attempts and self._closed.wait(1.0):
                    return
        finally:
            connection.close()

    def _relay(self, connection: socket.socket, stream: Any, unanswered: bytearray) -> str | None:
        """Pipe until either side closes (None), or why the pod never answered: the client's
        bytes got no answer within answer_timeout, or the stream ended first (a pod that is
        gone or not listening). A client that sends nothing is waited for: the protocol may
        be one where the client speaks first, later."""
        remote = stream.socket(self.port)
        remote.setblocking(True)
        try:
            return self._relay_until_done(connection, remote, unanswered)
        except OSError:  # a side reset: the connection is over, not worth another attempt
            return None
        finally:
            remote.close()
            with suppress(Exception):
                stream.close()

    def _relay_until_done(self, connection: socket.socket, remote: Any, unanswered: bytearray) -> str | None:
        answered = False
        asked_at = time.monotonic() if unanswered else None
        if unanswered:
            remote.sendall(unanswered)
        while not self._closed.is_set():
            if not answered and asked_at is not None and time.monotonic() - asked_at > self.answer_timeout:
                return f"no answer from the pod within {self.answer_timeout:.0f} s"
            readable, _, _ = select.select([connection, remote], [], [], 0.5)
            for sock in readable:
                data = sock.recv(65536)
                if not data:
                    return None if answered or sock is connection else "the pod closed the stream without answering"
                if sock is connection:
                    remote.sendall(data)
                    if not answered:
                        unanswered += data
                        asked_at = asked_at or time.monotonic()
                else:
                    answered = True
                    connection.sendall(data)
        return None

    def close(self) -> None:
        self._closed.set()
        if self._server:
            self._server.close()
