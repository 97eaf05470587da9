"""The only module that calls the Kubernetes API (the official client).

Configuration is loaded when a Kube is made, never at import. API errors become the
project's exceptions: 403 -> ForbiddenError naming the verb and resource, others DeployError.
The port-forward lives here too, being API traffic of its own (a websocket per connection);
it is the larger half of this module, and the reason it is over 250 lines.
"""

from __future__ import annotations

import json
import os
import select
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import DynamicApiError, NotFoundError
from kubernetes.stream import portforward

from buildtools.cluster.waits import pod_is_ready
from buildtools.errors import AdmissionError, ConfigError, DeployError, ForbiddenError, MinimalDaskError

FIELD_MANAGER = "minimaldask"
SERVICE_ACCOUNT_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"  # noqa: S105 - a path
Obj = dict[str, Any]


def in_cluster() -> bool:
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and os.path.exists(SERVICE_ACCOUNT_TOKEN)


def uses_in_cluster_config(kubeconfig: str | None = None, context: str | None = None) -> bool:
    """The pod's own ServiceAccount, unless a kubeconfig or context is given (an argument, or
    $KUBECONFIG): a notebook in one cluster may deploy to another."""
    return kubeconfig is None and context is None and not os.environ.get("KUBECONFIG") and in_cluster()


def load_api_client(kubeconfig: str | None = None, context: str | None = None) -> client.ApiClient:
    try:
        if uses_in_cluster_config(kubeconfig, context):
            config.load_incluster_config()
            return client.ApiClient()
        # $KUBECONFIG as it is now (the client reads it once, at its import).
        return config.new_client_from_config(config_file=kubeconfig or os.environ.get("KUBECONFIG"), context=context)
    except ConfigException as e:
        raise ConfigError(f"cannot load the Kubernetes configuration: {e}") from e
    except FileNotFoundError as e:
        raise ConfigError(f"kubeconfig not found: {e.filename}") from e


def _message(error: ApiException | DynamicApiError) -> str:
    body = getattr(error, "body", None) or getattr(error, "summary", lambda: "")()
    if isinstance(body, bytes):
        body = body.decode(errors="replace")
    try:
        return str(json.loads(body).get("message", body))
    except (TypeError, ValueError):
        return str(body or error)


def _is_rbac_refusal(message: str) -> bool:
    """RBAC's 403 says who `cannot <verb> resource ...`; admission's (quota, PodSecurity) does not."""
    return " cannot " in message and " resource " in message


def _json(response: Any) -> Obj:
    """A response's JSON as plain dicts: the dynamic client's own objects cost ~10x more for a
    list of hundreds of pods, polled during a rollout."""
    return dict(json.loads(response.data))


@contextmanager
def api_call(what: str) -> Iterator[None]:
    try:
        yield
    except (ApiException, DynamicApiError) as e:
        status = getattr(e, "status", None)
        message = _message(e)
        if status == 403 and not _is_rbac_refusal(message):
            raise AdmissionError(f"cannot {what}: {message}") from e
        if status == 403:
            raise ForbiddenError(
                f"forbidden: cannot {what}: {message} (the deploy needs the Role in docs/RBAC.md)"
            ) from e
        raise DeployError(f"cannot {what}: {message}") from e
    except (OSError, ValueError) as e:  # connection refused, TLS, bad URL
        raise DeployError(f"cannot {what}: the Kubernetes API is unreachable ({e})") from e


def kind_label(obj: Obj) -> str:
    return f"{obj['kind']} {obj['metadata'].get('namespace', '')}/{obj['metadata']['name']}".replace(" /", " ")


@dataclass
class Kube:
    """A connection to one cluster."""

    api: client.ApiClient
    in_cluster: bool = False
    """Connected with the pod's own ServiceAccount: the cluster's .svc names resolve from here."""
    _dynamic: DynamicClient | None = field(default=None, init=False)

    @classmethod
    def connect(cls, kubeconfig: str | None = None, context: str | None = None) -> Kube:
        return cls(load_api_client(kubeconfig, context), uses_in_cluster_config(kubeconfig, context))

    @property
    def dynamic(self) -> DynamicClient:
        if self._dynamic is None:
            with api_call("discover the API"):
                self._dynamic = DynamicClient(self.api)
        return self._dynamic

    def resource(self, api_version: str, kind: str) -> Any:
        with api_call(f"find the {kind} API"):
            return self.dynamic.resources.get(api_version=api_version, kind=kind)

    def apply(self, obj: Obj, dry_run: bool = False) -> Obj:
        """Server-side apply: only the fields we own change; the object is never recreated.
        With dry_run, the server validates and admits it (dryRun=All) and stores nothing."""
        resource = self.resource(obj["apiVersion"], obj["kind"])
        with api_call(f"{'dry-run ' if dry_run else ''}apply {kind_label(obj)}"):
            result = resource.server_side_apply(
                body=obj,
                name=obj["metadata"]["name"],
                namespace=obj["metadata"].get("namespace"),
                field_manager=FIELD_MANAGER,
                force_conflicts=True,
                **({"dry_run": "All"} if dry_run else {}),
            )
        return result.to_dict()

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> Obj | None:
        """The object, or None if there is none (the dynamic client raises NotFoundError on every 404)."""
        resource = self.resource(api_version, kind)
        with api_call(f"get {kind} {name}"), suppress(NotFoundError):
            return _json(resource.get(name=name, namespace=namespace, serialize=False))
        return None

    def list(self, api_version: str, kind: str, namespace: str | None, selector: str) -> list[Obj]:
        resource = self.resource(api_version, kind)
        with api_call(f"list {kind} in {namespace or 'all namespaces'}"):
            found = _json(resource.get(namespace=namespace, label_selector=selector, serialize=False))
        # As the dynamic client gives them: each item with its kind (a list's items have none).
        return [{"apiVersion": api_version, "kind": kind, **item} for item in found.get("items") or []]

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None) -> None:
        resource = self.resource(api_version, kind)
        # Already gone (e.g. garbage-collected since the list) is what we wanted.
        with api_call(f"delete {kind} {name}"), suppress(NotFoundError):
            resource.delete(name=name, namespace=namespace, body={"propagationPolicy": "Foreground"})

    def _merge_patch(self, what: str, api_version: str, kind: str, name: str, namespace: str, body: Obj) -> None:
        resource = self.resource(api_version, kind)
        with api_call(f"{what} {kind} {namespace}/{name}"):
            resource.patch(body=body, name=name, namespace=namespace, content_type="application/merge-patch+json")

    def annotate(
        self, api_version: str, kind: str, name: str, namespace: str, annotations: dict[str, str | None]
    ) -> None:
        """Set annotations, None removing one (a merge patch): not the applied spec's, so apply keeps them."""
        self._merge_patch("annotate", api_version, kind, name, namespace, {"metadata": {"annotations": annotations}})

    def ready_pods(self, namespace: str, service: str) -> list[str]:
        """The Ready pods behind a Service (its selector's), where its traffic may go."""
        found = self.get("v1", "Service", service, namespace)
        if found is None:
            raise DeployError(f"Service {namespace}/{service} is gone")
        selector = ",".join(f"{key}={value}" for key, value in sorted((found["spec"].get("selector") or {}).items()))
        return sorted(p["metadata"]["name"] for p in self.list("v1", "Pod", namespace, selector) if pod_is_ready(p))

    def patch_scale(self, name: str, namespace: str, replicas: int) -> None:
        """A Deployment's replicas, by a patch of the Deployment (the Role's `patch`; no scale subresource)."""
        self._merge_patch("scale", "apps/v1", "Deployment", name, namespace, {"spec": {"replicas": replicas}})

    def namespace_exists(self, namespace: str) -> bool:
        return self.get("v1", "Namespace", namespace) is not None

    def pod_log(self, namespace: str, pod: str, container: str | None = None, tail: int | None = None) -> str:
        with api_call(f"read the log of pod {namespace}/{pod}"):
            return str(
                client.CoreV1Api(self.api).read_namespaced_pod_log(
                    pod, namespace, container=container, tail_lines=tail, previous=False
                )
            )

    def dry_run_create(self, obj: Obj) -> None:
        """A create with dryRun=All: validated and admitted (quota, PodSecurity, webhooks), never stored."""
        resource = self.resource(obj["apiVersion"], obj["kind"])
        with api_call(f"dry-run create {kind_label(obj)}"):
            resource.create(body=obj, namespace=obj["metadata"].get("namespace"), dry_run="All")

    def can_i(self, verb: str, group: str, resource: str, namespace: str) -> bool:
        """A SelfSubjectAccessReview: may this identity do verb on resource ("pods/log") here?"""
        resource, _, subresource = resource.partition("/")
        attributes = {"verb": verb, "group": group, "resource": resource, "namespace": namespace}
        if subresource:
            attributes["subresource"] = subresource
        body = {"spec": {"resourceAttributes": attributes}}
        with api_call(f"review the access to {verb} {resource}"):
            review = client.AuthorizationV1Api(self.api).create_self_subject_access_review(body)
        return bool(review.status.allowed)

    def warning_events(self, namespace: str) -> list[Obj]:
        """The namespace's Warning events, oldest first."""
        with api_call(f"list the events in {namespace}"):
            events = client.CoreV1Api(self.api).list_namespaced_event(namespace, field_selector="type=Warning")
        found = [self.api.sanitize_for_serialization(event) for event in events.items]
        return sorted(found, key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""))

    def any(self, api_version: str, kind: str, namespace: str, selector: str) -> bool:
        """Whether any object matches: a list of at most one, cheap however many there are."""
        resource = self.resource(api_version, kind)
        with api_call(f"list {kind} in {namespace}"):
            return bool(resource.get(namespace=namespace, label_selector=selector, limit=1).items)

    def port_forward(self, namespace: str, service: str, port: int) -> PortForward:
        forward = PortForward(self, namespace, service, port)
        forward.start()
        return forward


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
