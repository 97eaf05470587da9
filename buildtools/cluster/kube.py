"""The only module that calls the Kubernetes API (the official client).

Configuration is loaded when a Kube is made, never at import. API errors become the
project's exceptions: 403 -> ForbiddenError naming the verb and resource, others DeployError.
The port-forward, API traffic of its own (a websocket per connection), is in reach.py.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import DynamicApiError, NotFoundError

from buildtools.cluster.kinds import DEPLOYMENT, NAMESPACE, POD, SERVICE, Kind
from buildtools.cluster.waits import pod_is_ready
from buildtools.errors import AdmissionError, ConfigError, DeployError, ForbiddenError

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

    def resource(self, kind: Kind) -> Any:
        with api_call(f"find the {kind.name} API"):
            return self.dynamic.resources.get(api_version=kind.api_version, kind=kind.name)

    def apply(self, obj: Obj, dry_run: bool = False) -> Obj:
        """Server-side apply: only the fields we own change; the object is never recreated.
        With dry_run, the server validates and admits it (dryRun=All) and stores nothing."""
        resource = self.resource(Kind.of(obj))
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

    def get(self, kind: Kind, name: str, namespace: str | None = None) -> Obj | None:
        """The object, or None if there is none (the dynamic client raises NotFoundError on every 404)."""
        resource = self.resource(kind)
        with api_call(f"get {kind.name} {name}"), suppress(NotFoundError):
            return _json(resource.get(name=name, namespace=namespace, serialize=False))
        return None

    def list(self, kind: Kind, namespace: str | None, selector: str) -> list[Obj]:
        resource = self.resource(kind)
        with api_call(f"list {kind.name} in {namespace or 'all namespaces'}"):
            found = _json(resource.get(namespace=namespace, label_selector=selector, serialize=False))
        # As the dynamic client gives them: each item with its kind (a list's items have none).
        return [{"apiVersion": kind.api_version, "kind": kind.name, **item} for item in found.get("items") or []]

    def delete(self, kind: Kind, name: str, namespace: str | None) -> None:
        resource = self.resource(kind)
        # Already gone (e.g. garbage-collected since the list) is what we wanted.
        with api_call(f"delete {kind.name} {name}"), suppress(NotFoundError):
            resource.delete(name=name, namespace=namespace, body={"propagationPolicy": "Foreground"})

    def _merge_patch(self, what: str, kind: Kind, name: str, namespace: str, body: Obj) -> None:
        resource = self.resource(kind)
        with api_call(f"{what} {kind.name} {namespace}/{name}"):
            resource.patch(body=body, name=name, namespace=namespace, content_type="application/merge-patch+json")

    def annotate(self, kind: Kind, name: str, namespace: str, annotations: dict[str, str | None]) -> None:
        """Set annotations, None removing one (a merge patch): not the applied spec's, so apply keeps them."""
        self._merge_patch("annotate", kind, name, namespace, {"metadata": {"annotations": annotations}})

    def ready_pods(self, namespace: str, service: str) -> list[str]:
        """The Ready pods behind a Service (its selector's), where its traffic may go."""
        found = self.get(SERVICE, service, namespace)
        if found is None:
            raise DeployError(f"Service {namespace}/{service} is gone")
        selector = ",".join(f"{key}={value}" for key, value in sorted((found["spec"].get("selector") or {}).items()))
        return sorted(p["metadata"]["name"] for p in self.list(POD, namespace, selector) if pod_is_ready(p))

    def patch_scale(self, name: str, namespace: str, replicas: int) -> None:
        """A Deployment's replicas, by a patch of the Deployment (the Role's `patch`; no scale subresource)."""
        self._merge_patch("scale", DEPLOYMENT, name, namespace, {"spec": {"replicas": replicas}})

    def namespace_exists(self, namespace: str) -> bool:
        return self.get(NAMESPACE, namespace) is not None

    def pod_log(self, namespace: str, pod: str, container: str | None = None, tail: int | None = None) -> str:
        with api_call(f"read the log of pod {namespace}/{pod}"):
            return str(
                client.CoreV1Api(self.api).read_namespaced_pod_log(
                    pod, namespace, container=container, tail_lines=tail, previous=False
                )
            )

    def follow_log(self, namespace: str, pod: str, container: str | None = None) -> Iterator[str]:
        """A container's log line by line as it is written, from its start until it ends."""
        what = f"follow the log of pod {namespace}/{pod}"
        with api_call(what):
            response = client.CoreV1Api(self.api).read_namespaced_pod_log(
                pod, namespace, container=container, follow=True, _preload_content=False
            )
        try:
            pending = b""
            with api_call(what):
                for chunk in response.stream(4096):
                    *lines, pending = (pending + chunk).split(b"\n")
                    yield from (line.decode(errors="replace") for line in lines)
            if pending:
                yield pending.decode(errors="replace")
        finally:
            response.release_conn()

    def dry_run_create(self, obj: Obj) -> None:
        """A create with dryRun=All: validated and admitted (quota, PodSecurity, webhooks), never stored."""
        resource = self.resource(Kind.of(obj))
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

    def any(self, kind: Kind, namespace: str, selector: str) -> bool:
        """Whether any object matches: a list of at most one, cheap however many there are."""
        resource = self.resource(kind)
        with api_call(f"list {kind.name} in {namespace}"):
            return bool(resource.get(namespace=namespace, label_selector=selector, limit=1).items)
