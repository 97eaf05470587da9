"""What a Dask cluster and an image prepuller are made of: frozen, validated pydantic models.

One schema for every way in: `start_dask_cluster(**fields)`, `ClusterSpec(**fields)` and a
YAML spec file (`buildtools up/render cluster --spec`, docs/CLUSTER-SPEC.md) all validate
here, and docs/cluster-spec.schema.json is `ClusterSpec.model_json_schema()`. A bad field
fails with a one-line ConfigError naming it, before anything talks to Kubernetes.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    Field,
)

from buildtools.cluster import kubetypes as k
from buildtools.cluster.contract import MANAGED_ENV, TLS_ENV, default_image
from buildtools.cluster.controller import tls_secret_name, worker_name
from buildtools.cluster.labels import MANAGED_LABELS, NAME_MAX_LENGTH
from buildtools.cluster.spec_parts import (
    AdaptPolicy,
    ClusterPlacement,
    ClusterResources,
    GroupName,
    Resources,
    SpecModel,
    WorkerGroupSpec,
)
from buildtools.errors import ConfigError

DEFAULT_PAUSE_IMAGE = "registry.k8s.io/pause:3.10"


def _not_managed(labels: dict[str, str]) -> dict[str, str]:
    if clash := sorted(set(labels) & set(MANAGED_LABELS)):
        k.fail(f"must not set {', '.join(clash)}: minimaldask sets it")
    return labels


class ClusterSpec(SpecModel):
    """One Dask cluster: a scheduler Deployment and its Service, and a worker Deployment.

    Lists are stored as tuples. `system_packages` makes the Dask containers run as root
    (runAsUser 0), which the image's entrypoint needs to install them; everything else runs
    as UID/GID 1000, or as whatever non-root UID the platform assigns (`platform_uid`).
    """

    name: Annotated[str, *k.dns_label(NAME_MAX_LENGTH, rfc1035=True)]
    """The cluster's name: its objects are <name>-scheduler and <name>-worker."""
    namespace: k.DnsLabel = "default"
    image: k.ImageRef = Field(default_factory=default_image)
    """Default: ghcr.io/minimaldask/minimaldask/debian:<the local distributed's version>."""
    n_workers: k.Count = 1
    resources: ClusterResources = ClusterResources()
    env: k.EnvVars = {}
    """Extra environment of every Dask container (not the variables minimaldask sets)."""
    pip_packages: k.PackageNames = ()
    """Installed by the entrypoint at start (EXTRA_PIP_PACKAGES)."""
    system_packages: k.PackageNames = ()
    """Installed by the entrypoint at start, as root (EXTRA_APT_PACKAGES or EXTRA_APK_PACKAGES)."""
    system_package_manager: Annotated[
        Literal["auto", "apt", "apk"], k.on_error("must be auto, apt or apk, got {value}")
    ] = "auto"
    """apt (Debian, RAPIDS images) or apk (Alpine); auto picks apk for an image named alpine."""
    platform_uid: bool = False
    """Leave runAsUser, runAsGroup and fsGroup to the platform (OpenShift's restricted SCC
    assigns them from the namespace's range and rejects a fixed 1000); runAsNonRoot stays."""
    scheduler_args: k.Words = ()
    worker_args: k.Words = ()
    service_type: Annotated[
        Literal["ClusterIP", "NodePort", "LoadBalancer"],
        k.on_error("must be one of ClusterIP, NodePort, LoadBalancer, got {value}"),
    ] = "ClusterIP"
    tls: bool = True
    """Mutual TLS between client, scheduler and workers, required (docs/TLS.md): with the
    credentials of tls_secret, else of a Secret <name>-tls that the start makes for the cluster
    (deleted with it). false: plain tcp://, which any pod that reaches the scheduler can use to
    run code on the workers."""
    tls_secret: k.DnsSubdomain | None = None
    """Your own Secret with ca.crt, tls.crt and tls.key (cert-manager's, say) instead of <name>-tls."""
    network_policy: bool = True
    """A NetworkPolicy <name>-dask: the cluster's pods take connections only from one another and
    from the namespace's pods labelled minimaldask/client-of: <name> (an exposed scheduler's two
    ports from anywhere). false: no policy (docs/TLS.md)."""
    image_pull_secrets: k.Names = ()
    placement: ClusterPlacement = ClusterPlacement()
    """Node selector, tolerations and affinity of the scheduler and of the workers, apart."""
    node_selector: k.Labels = {}
    """Both components' (placement's own win on a clash)."""
    tolerations: k.Tolerations = ()
    """Both components' (with placement's own)."""
    image_platforms: k.Platforms | None = None
    """The image's platforms: pods go only to nodes of their architectures (kubernetes.io/arch).
    Default: those in images/<name>/image.toml of the minimaldask image the image's repository
    names; none for another image. [] turns the constraint off."""
    worker_grace_seconds: k.Count = 60
    """How long a stopping worker has to hand over its data."""
    labels: Annotated[k.Labels, AfterValidator(_not_managed)] = {}
    """Extra labels of every object and pod (never in selectors)."""
    dask_resources: k.DaskResources = {}
    """The Dask resources each worker of the default group offers ({"GPU": 1}), as worker_groups' do."""
    worker_groups: dict[GroupName, WorkerGroupSpec] = {}
    """More worker types beside the default group (the fields above), each its own Deployment,
    scaled on its own: {"gpu": {"dask_resources": {"GPU": 1}, "adapt": {"maximum": 4}}}."""
    adapt: AdaptPolicy | None = None
    """Scale the workers with the load, from inside the cluster: it goes on after the client exits."""
    idle_timeout: (
        Annotated[int, Field(gt=0, strict=True), k.on_error("must be a number of seconds > 0, got {value}")] | None
    ) = None
    """Delete the whole cluster once it has been idle this many seconds: no task queued or
    running and no client connected (docs/AUTOSCALING.md)."""

    def check(self) -> None:
        if self.tls_secret is not None and self.tls is False:
            k.fail("tls_secret needs tls: a cluster with tls: false has no certificates")
        if self.platform_uid and self.system_packages:
            k.fail("system_packages need root (runAsUser 0): they cannot go with platform_uid")
        for group in self.worker_groups:
            if len(worker_name(self.name, group)) > 63:
                k.fail(f"worker_groups: {group}: {worker_name(self.name, group)} is longer than 63 characters")
        reserved = MANAGED_ENV + (TLS_ENV if self.tls else ())
        if clash := [key for key in self.env if key in reserved]:
            k.fail(f"env: {clash[0]} is set by minimaldask from the spec's fields; do not set it in env")

    def group(self, name: str | None) -> ClusterSpec:
        """The spec of one worker group's workers (None: the default group's): the cluster's
        fields with the group's own, and no further groups."""
        if name is None:
            return self
        if name not in self.worker_groups:
            known = ", ".join(self.worker_groups) or "none"
            raise ConfigError(f"cluster {self.name} has no worker group {name!r} (its groups: {known})")
        group = self.worker_groups[name]
        given = {key: getattr(group, key) for key in group.model_fields_set if getattr(group, key) is not None}
        update: dict[str, Any] = {**given, "env": {**self.env, **group.env}, "worker_groups": {}}
        if group.resources is not None:
            update["resources"] = self.resources.model_copy(update={"worker": group.resources})
        if group.placement is not None:
            update["placement"] = self.placement.model_copy(update={"worker": group.placement})
        return self.model_copy(update=update)

    @property
    def run_as_root(self) -> bool:
        """True when the containers must start as root: only to install system packages."""
        return bool(self.system_packages)

    @property
    def package_manager(self) -> str:
        if self.system_package_manager != "auto":
            return self.system_package_manager
        repository = self.image.split("@", 1)[0].rsplit("/", 1)[-1].split(":", 1)[0]
        return "apk" if "alpine" in repository else "apt"

    @property
    def tls_secret_name(self) -> str:
        """The Secret the pods mount (a TLS cluster's)."""
        return self.tls_secret or tls_secret_name(self.name)

    @property
    def owns_tls_secret(self) -> bool:
        """minimaldask makes (and deletes) the cluster's TLS Secret."""
        return self.tls and self.tls_secret is None

    @property
    def exposed(self) -> bool:
        """The scheduler is reachable from outside the cluster (a NodePort or LoadBalancer Service)."""
        return self.service_type != "ClusterIP"


def cluster_spec(spec: ClusterSpec | Mapping[Any, Any] | None = None, **fields: Any) -> ClusterSpec:
    """A ClusterSpec from another or from a mapping (a spec file's), `fields` overriding theirs."""
    given = dict(spec or {})  # a model iterates over its fields, already validated
    return k.validate(ClusterSpec, "", {**given, **fields})


def read_spec_file(path: Path) -> dict[Any, Any]:
    """The fields a YAML spec file gives, to be validated by `cluster_spec` (with any overrides)."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read the spec file {path}: {getattr(error, 'strerror', None) or error}") from None
    try:
        fields = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ConfigError(f"{where}: not valid YAML: {getattr(error, 'problem', None) or error}") from None
    if fields is None:
        return {}
    if not isinstance(fields, dict):
        raise ConfigError(f"{path}: a spec file is a mapping of ClusterSpec fields, got {type(fields).__name__}")
    return fields


Command = Annotated[
    tuple[Annotated[str, Field(min_length=1)], ...],
    Field(min_length=1),
    *k.listing("must be a non-empty list of non-empty strings (the command and its arguments), got {value}"),
]
Seconds = Annotated[int, Field(gt=0, strict=True), k.on_error("must be a number of seconds > 0, got {value}")]


class JobSpec(SpecModel):
    """A batch job (docs/JOBS.md): a Kubernetes Job runs `command` against a cluster of its own,
    which the Job owns: the cluster goes when the command ends, and the Job after its TTL."""

    cluster: ClusterSpec
    command: Command
    """Run by the image's entrypoint (after EXTRA_PIP_PACKAGES, once the scheduler answers),
    with DASK_SCHEDULER_ADDRESS set: `distributed.Client()` connects to the job's cluster."""
    image: k.ImageRef | None = None
    """The runner's image (default: the cluster's). Another image runs `command` with its own entrypoint."""
    env: k.EnvVars = {}
    """The runner's environment, over the cluster's `env`."""
    resources: Resources = Resources()
    """The runner container's requests and limits."""
    backoff_limit: k.Count = 0
    """Retries of a failed runner (a new pod each time) before the Job fails."""
    active_deadline_seconds: Seconds | None = None
    """The longest the Job may run; Kubernetes stops it then and it fails."""
    ttl_seconds_after_finished: k.Count = 300
    """How long the finished Job (its status and the runner's log) stays; its cluster is gone at once."""

    def check(self) -> None:
        if clash := [key for key in self.env if key in MANAGED_ENV]:
            k.fail(f"env: {clash[0]} is set by minimaldask from the spec's fields; do not set it in env")

    @property
    def name(self) -> str:
        return self.cluster.name

    @property
    def runner_image(self) -> str:
        return self.image or self.cluster.image


class PrepullSpec(SpecModel):
    """A DaemonSet that pulls `images` onto every (selected) node ahead of the Dask pods.

    Each image runs once as an init container with `/bin/sh -c ...`: every prepulled image
    must have /bin/sh (the minimaldask images do).
    """

    name: Annotated[str, *k.dns_label(NAME_MAX_LENGTH)]
    namespace: k.DnsLabel = "default"
    images: k.ImageRefs
    tolerations: k.Tolerations = ()
    node_selector: k.Labels = {}
    affinity: k.AffinityRules = {}
    priority_class: k.DnsSubdomain | None = None
    image_pull_secrets: k.Names = ()
    pause_image: k.ImageRef = DEFAULT_PAUSE_IMAGE
    platform_uid: bool = False
    """As ClusterSpec.platform_uid: the platform assigns the pods' UID, GID and fsGroup."""

    @property
    def unique_images(self) -> tuple[str, ...]:
        """The images, sorted and without duplicates: the order they are given in changes nothing."""
        return tuple(sorted(set(self.images)))
