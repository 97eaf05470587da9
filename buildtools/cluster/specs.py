"""What a Dask cluster on Kubernetes is made of: validated specs, names, labels and addresses.

Pure: nothing here talks to Kubernetes. Every spec is checked when it is built, so a bad
option fails with a one-line ConfigError before anything is created. `buildtools.cluster.render`
turns the specs into manifests; the deploy code applies them.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from kubernetes.utils.quantity import parse_quantity

from buildtools.errors import ConfigError

# Where `default_image` looks: CI pushes to ghcr.io/<owner>/<repository>:<tag> (see images/*/image.toml).
DEFAULT_REGISTRY = "ghcr.io/minimaldask"
DEFAULT_REPOSITORY = "minimaldask/debian"
DEFAULT_PAUSE_IMAGE = "registry.k8s.io/pause:3.10"

# The image contract (images/*/Dockerfile, entrypoint.sh): user, ports, health endpoint.
DASK_UID = 1000
SCHEDULER_PORT = 8786
DASHBOARD_PORT = 8787
WORKER_DASHBOARD_PORT = 8788
COMM_PORT_NAME = "tcp-comm"
DASHBOARD_PORT_NAME = "http-dashboard"
HEALTH_PATH = "/health"

# Optional TLS: a Secret holding ca.crt, tls.crt and tls.key (the layout cert-manager writes),
# mounted in every Dask container. The one certificate serves the scheduler and the workers,
# which each check the other's against ca.crt (Dask checks the chain, not the host name).
TLS_MOUNT_PATH = "/etc/dask/tls"
TLS_CA_FILE = "ca.crt"
TLS_CERT_FILE = "tls.crt"
TLS_KEY_FILE = "tls.key"

SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer")
COMPONENTS = ("scheduler", "worker", "prepuller")
PACKAGE_MANAGERS = {"apt": "EXTRA_APT_PACKAGES", "apk": "EXTRA_APK_PACKAGES"}

# Installing system packages needs root, and apt/apk need a few of the capabilities every
# container runtime grants by default (file ownership, and apt's switch to its _apt user).
# Such pods still drop ALL and add back only these: Pod Security "baseline", not "restricted".
ROOT_CAPABILITIES = ("CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "SETGID", "SETUID")

# The pause container and the prepuller's init containers: they do nothing, so ask for nearly
# nothing. The memory limit leaves room for the runtime's own start-up inside the container.
PREPULL_RESOURCES: dict[str, dict[str, str]] = {
    "requests": {"cpu": "1m", "memory": "8Mi"},
    "limits": {"cpu": "100m", "memory": "32Mi"},
}

LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_CLUSTER = "dask.org/cluster-name"
LABEL_COMPONENT = "dask.org/component"
BASE_LABELS = {LABEL_NAME: "dask", LABEL_MANAGED_BY: "minimaldask"}
MANAGED_LABELS = (LABEL_NAME, LABEL_INSTANCE, LABEL_MANAGED_BY, LABEL_CLUSTER, LABEL_COMPONENT)

# Objects are named <name>-<component>, so a name leaves room for the longest suffix.
NAME_MAX_LENGTH = 63 - max(len(f"-{component}") for component in COMPONENTS)

# Set by the manifests from the spec's fields: `env` must not set them.
MANAGED_ENV = (
    "WORKER",
    "PORT",
    "DASHBOARD_PORT",
    "DASK_SCHEDULER_ADDRESS",
    "DASK_SCHEDULER_SERVICE",
    "ARGUMENTS",
    "EXTRA_PIP_PACKAGES",
    "EXTRA_APT_PACKAGES",
    "EXTRA_APK_PACKAGES",
)
TLS_ENV = (
    "DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION",
    "DASK_DISTRIBUTED__COMM__TLS__CA_FILE",
    "DASK_DISTRIBUTED__COMM__TLS__SCHEDULER__CERT",
    "DASK_DISTRIBUTED__COMM__TLS__SCHEDULER__KEY",
    "DASK_DISTRIBUTED__COMM__TLS__WORKER__CERT",
    "DASK_DISTRIBUTED__COMM__TLS__WORKER__KEY",
)

_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL_NAME_PART = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_QUANTITY = re.compile(r"\+?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+|[numkMGTPE]|[KMGTPE]i)?")
_STANDARD_RESOURCES = ("cpu", "memory", "ephemeral-storage")
_TOLERATION_KEYS = ("key", "operator", "value", "effect", "tolerationSeconds")
_TOLERATION_OPERATORS = ("Exists", "Equal")
_TOLERATION_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
_AFFINITY_KEYS = ("nodeAffinity", "podAffinity", "podAntiAffinity")


# --- checks: each raises a one-line ConfigError naming the field ---------------------------------


def check_dns_label(what: str, value: object, max_length: int = 63, *, rfc1035: bool = False) -> str:
    pattern = _DNS1035_LABEL if rfc1035 else _DNS1123_LABEL
    start = "a lowercase letter" if rfc1035 else "a lowercase letter or digit"
    if not isinstance(value, str) or not pattern.fullmatch(value) or len(value) > max_length:
        raise ConfigError(
            f"{what} must be at most {max_length} characters of lowercase letters, digits and '-', "
            f"starting with {start} and ending with a letter or digit, got {value!r}"
        )
    return value


def check_dns_subdomain(what: str, value: object) -> str:
    if not isinstance(value, str) or not _DNS1123_SUBDOMAIN.fullmatch(value) or len(value) > 253:
        raise ConfigError(f"{what} must be a DNS-1123 subdomain (lowercase letters, digits, '-', '.'), got {value!r}")
    return value


def check_label_key(what: str, key: object) -> str:
    if isinstance(key, str):
        prefix, _, name = key.rpartition("/")
        prefix_ok = not prefix or (_DNS1123_SUBDOMAIN.fullmatch(prefix) and len(prefix) <= 253)
        if prefix_ok and _LABEL_NAME_PART.fullmatch(name) and len(name) <= 63:
            return key
    raise ConfigError(f"{what}: {key!r} is not a valid label key ([prefix/]name, name at most 63 characters)")


def check_label_value(what: str, value: object) -> str:
    if not isinstance(value, str) or len(value) > 63 or (value and not _LABEL_NAME_PART.fullmatch(value)):
        raise ConfigError(
            f"{what}: {value!r} is not a valid label value (a string of at most 63 letters, digits, '-', '_', '.')"
        )
    return value


def check_quantity(what: str, value: object) -> str:
    """A Kubernetes quantity ("500m", "2", "1.5Gi"), returned as a string."""
    text = str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value
    if isinstance(text, str) and _QUANTITY.fullmatch(text):
        try:
            parse_quantity(text)
            return text
        except ValueError:
            pass
    raise ConfigError(f"{what}: {value!r} is not a Kubernetes quantity (like 500m, 2, 1.5Gi)")


def _check_int(what: str, value: object, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{what} must be an integer >= {minimum}, got {value!r}")
    return value


def _check_mapping(what: str, value: object) -> dict[Any, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{what} must be a mapping, got {type(value).__name__}")
    return dict(value)


def _check_words(what: str, values: object, *, options: bool = True) -> tuple[str, ...]:
    """Words for an entrypoint variable that the shell splits on whitespace (ARGUMENTS, EXTRA_*)."""
    if isinstance(values, str) or not isinstance(values, Sequence):
        raise ConfigError(f"{what} must be a list of strings, got {values!r}")
    for value in values:
        if not isinstance(value, str) or not value or any(c.isspace() for c in value):
            raise ConfigError(f"{what}: {value!r} must be a non-empty string without whitespace")
        if not options and value.startswith("-"):
            raise ConfigError(f"{what}: {value!r} looks like an option; give package names only")
    return tuple(values)


def _check_names(what: str, values: object) -> tuple[str, ...]:
    if isinstance(values, str) or not isinstance(values, Sequence):
        raise ConfigError(f"{what} must be a list of names, got {values!r}")
    return tuple(check_dns_subdomain(what, value) for value in values)


def _check_labels(what: str, labels: object, *, managed_ok: bool = True) -> dict[str, str]:
    result = {check_label_key(what, k): check_label_value(what, v) for k, v in _check_mapping(what, labels).items()}
    if not managed_ok and (clash := sorted(set(result) & set(MANAGED_LABELS))):
        raise ConfigError(f"{what} must not set {', '.join(clash)}: minimaldask sets it")
    return result


def _check_tolerations(what: str, tolerations: object) -> tuple[dict[str, Any], ...]:
    if isinstance(tolerations, str | Mapping) or not isinstance(tolerations, Sequence):
        raise ConfigError(f"{what} must be a list of tolerations, got {tolerations!r}")
    result = []
    for toleration in tolerations:
        item = _check_mapping(what, toleration)
        if unknown := sorted(set(item) - set(_TOLERATION_KEYS), key=str):
            raise ConfigError(f"{what}: unknown key {unknown[0]!r} (known: {', '.join(_TOLERATION_KEYS)})")
        operator = item.get("operator", "Equal")
        if operator not in _TOLERATION_OPERATORS:
            raise ConfigError(f"{what}: operator must be Exists or Equal, got {operator!r}")
        if operator == "Exists" and item.get("value"):
            raise ConfigError(f"{what}: a toleration with operator Exists takes no value")
        if item.get("effect", "") not in ("", *_TOLERATION_EFFECTS):
            raise ConfigError(f"{what}: effect must be one of {', '.join(_TOLERATION_EFFECTS)}, got {item['effect']!r}")
        if "tolerationSeconds" in item:
            _check_int(f"{what}: tolerationSeconds", item["tolerationSeconds"])
        result.append(item)
    return tuple(result)


def _check_image(what: str, image: object) -> str:
    if not isinstance(image, str) or not image or any(c.isspace() for c in image):
        raise ConfigError(f"{what} must be a non-empty image reference without whitespace, got {image!r}")
    return image


# --- resources -------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Resources:
    """One container's requests and limits, as Kubernetes quantities ({"cpu": "500m", "memory": "2Gi"})."""

    requests: Mapping[str, str] = field(default_factory=dict)
    limits: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def coerce(cls, what: str, value: object) -> Resources:
        if isinstance(value, Resources):
            value = {"requests": value.requests, "limits": value.limits}
        value = _check_mapping(what, value)
        if unknown := sorted(set(value) - {"requests", "limits"}, key=str):
            raise ConfigError(f"{what}: unknown key {unknown[0]!r} (known: requests, limits)")
        requests = _check_quantities(f"{what}.requests", value.get("requests", {}))
        limits = _check_quantities(f"{what}.limits", value.get("limits", {}))
        for resource in sorted(set(requests) & set(limits)):
            if parse_quantity(requests[resource]) > parse_quantity(limits[resource]):
                raise ConfigError(
                    f"{what}: the {resource} request ({requests[resource]}) exceeds its limit ({limits[resource]})"
                )
        return cls(requests=requests, limits=limits)


def _check_quantities(what: str, value: object) -> dict[str, str]:
    result = {}
    for resource, quantity in _check_mapping(what, value).items():
        known = resource in _STANDARD_RESOURCES or (isinstance(resource, str) and resource.startswith("hugepages-"))
        if not known and not (isinstance(resource, str) and "/" in resource):
            raise ConfigError(
                f"{what}: unknown resource {resource!r} (cpu, memory, ephemeral-storage, hugepages-*, or vendor/name)"
            )
        check_label_key(what, resource)
        result[resource] = check_quantity(f"{what}.{resource}", quantity)
        if parse_quantity(result[resource]) < 0:
            raise ConfigError(f"{what}.{resource} must not be negative, got {quantity!r}")
    return result


@dataclass(frozen=True, kw_only=True)
class ClusterResources:
    """Requests and limits of the scheduler's and each worker's container."""

    scheduler: Resources = field(default_factory=Resources)
    worker: Resources = field(default_factory=Resources)

    @classmethod
    def coerce(cls, value: object) -> ClusterResources:
        """From a ClusterResources or {"scheduler": {"requests": {...}, "limits": {...}}, "worker": {...}}."""
        if isinstance(value, ClusterResources):
            value = {"scheduler": value.scheduler, "worker": value.worker}
        value = _check_mapping("resources", value)
        if unknown := sorted(set(value) - {"scheduler", "worker"}, key=str):
            raise ConfigError(f"resources: unknown key {unknown[0]!r} (known: scheduler, worker)")
        return cls(
            scheduler=Resources.coerce("resources.scheduler", value.get("scheduler", {})),
            worker=Resources.coerce("resources.worker", value.get("worker", {})),
        )


# --- the cluster -----------------------------------------------------------------------------------


def default_image(registry: str = DEFAULT_REGISTRY) -> str:
    """The Debian image of the locally installed distributed's version, so client and cluster agree."""
    try:
        version = metadata.version("distributed")
    except metadata.PackageNotFoundError:
        raise ConfigError("distributed is not installed: give the image explicitly") from None
    return f"{registry.rstrip('/')}/{DEFAULT_REPOSITORY}:{version}"


@dataclass(frozen=True, kw_only=True)
class ClusterSpec:
    """One Dask cluster: a scheduler Deployment and its Service, and a worker Deployment.

    Lists may be given as any sequence and mappings as any mapping; they are stored as tuples
    and dicts. `system_packages` makes the Dask containers run as root (runAsUser 0), which
    the image's entrypoint needs to install them; everything else runs as UID/GID 1000.
    """

    name: str
    namespace: str = "default"
    image: str = field(default_factory=default_image)
    n_workers: int = 1
    resources: ClusterResources = field(default_factory=ClusterResources)
    env: Mapping[str, str] = field(default_factory=dict)
    pip_packages: tuple[str, ...] = ()
    system_packages: tuple[str, ...] = ()
    # "apt" (Debian, RAPIDS images) or "apk" (Alpine); "auto" picks apk for an image named alpine.
    system_package_manager: str = "auto"
    scheduler_args: tuple[str, ...] = ()
    worker_args: tuple[str, ...] = ()
    service_type: str = "ClusterIP"
    tls_secret: str | None = None
    image_pull_secrets: tuple[str, ...] = ()
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Mapping[str, Any], ...] = ()
    worker_grace_seconds: int = 60
    labels: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_dns_label("name", self.name, NAME_MAX_LENGTH, rfc1035=True)
        check_dns_label("namespace", self.namespace)
        _check_image("image", self.image)
        _check_int("n_workers", self.n_workers)
        set_ = object.__setattr__  # frozen: store the normalised values once
        set_(self, "resources", ClusterResources.coerce(self.resources))
        set_(self, "env", self._check_env())
        set_(self, "pip_packages", _check_words("pip_packages", self.pip_packages, options=False))
        set_(self, "system_packages", _check_words("system_packages", self.system_packages, options=False))
        if self.system_package_manager not in ("auto", *PACKAGE_MANAGERS):
            raise ConfigError(f"system_package_manager must be auto, apt or apk, got {self.system_package_manager!r}")
        set_(self, "scheduler_args", _check_words("scheduler_args", self.scheduler_args))
        set_(self, "worker_args", _check_words("worker_args", self.worker_args))
        if self.service_type not in SERVICE_TYPES:
            raise ConfigError(f"service_type must be one of {', '.join(SERVICE_TYPES)}, got {self.service_type!r}")
        if self.tls_secret is not None:
            check_dns_subdomain("tls_secret", self.tls_secret)
        set_(self, "image_pull_secrets", _check_names("image_pull_secrets", self.image_pull_secrets))
        set_(self, "node_selector", _check_labels("node_selector", self.node_selector))
        set_(self, "tolerations", _check_tolerations("tolerations", self.tolerations))
        _check_int("worker_grace_seconds", self.worker_grace_seconds)
        set_(self, "labels", _check_labels("labels", self.labels, managed_ok=False))

    def _check_env(self) -> dict[str, str]:
        env = _check_mapping("env", self.env)
        reserved = MANAGED_ENV + (TLS_ENV if self.tls_secret is not None else ())
        for key, value in env.items():
            if not isinstance(key, str) or not _ENV_NAME.fullmatch(key):
                raise ConfigError(
                    f"env: {key!r} is not a valid variable name (letters, digits, '_', not a digit first)"
                )
            if key in reserved:
                raise ConfigError(f"env: {key} is set by minimaldask from the spec's fields; do not set it in env")
            if not isinstance(value, str):
                raise ConfigError(f"env: the value of {key} must be a string, got {value!r}")
        return env

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
    def use_tls(self) -> bool:
        return self.tls_secret is not None


def component_name(name: str, component: str) -> str:
    """The name of a cluster's object for one component: <name>-scheduler, <name>-worker, <name>-prepuller."""
    if component not in COMPONENTS:
        raise ConfigError(f"component must be one of {', '.join(COMPONENTS)}, got {component!r}")
    return f"{name}-{component}"


def scheduler_service_name(name: str) -> str:
    return component_name(name, "scheduler")


def cluster_labels(name: str) -> dict[str, str]:
    """The labels every object of cluster `name` carries."""
    return {**BASE_LABELS, LABEL_INSTANCE: name, LABEL_CLUSTER: name}


def component_labels(name: str, component: str) -> dict[str, str]:
    component_name(name, component)  # checks the component
    return {**cluster_labels(name), LABEL_COMPONENT: component}


def selector_labels(name: str, component: str) -> dict[str, str]:
    """The (immutable) selector of a component's pods: a subset of `component_labels`."""
    labels = component_labels(name, component)
    return {key: labels[key] for key in (LABEL_CLUSTER, LABEL_COMPONENT)}


def label_selector(name: str, component: str | None = None) -> str:
    """A label selector string for list/watch calls: the cluster's objects, or one component's."""
    labels = {LABEL_CLUSTER: name} if component is None else selector_labels(name, component)
    return ",".join(f"{key}={value}" for key, value in labels.items())


def scheduler_address(spec: ClusterSpec) -> str:
    """The scheduler's in-cluster address, by its Service's DNS name (never an IP)."""
    scheme = "tls" if spec.use_tls else "tcp"
    return f"{scheme}://{scheduler_service_name(spec.name)}.{spec.namespace}.svc:{SCHEDULER_PORT}"


def tls_env() -> dict[str, str]:
    ca, cert, key = (f"{TLS_MOUNT_PATH}/{file}" for file in (TLS_CA_FILE, TLS_CERT_FILE, TLS_KEY_FILE))
    return dict(zip(TLS_ENV, ("true", ca, cert, key, cert, key), strict=True))


def dask_env(spec: ClusterSpec, component: str) -> dict[str, str]:
    """The environment of a Dask container (the image's entrypoint contract), `spec.env` last.

    A worker's WORKER_NTHREADS (the CPU limit rounded up) and WORKER_MEMORY_LIMIT (bytes) come
    from its limits when given; `spec.env` may override both.
    """
    if component not in ("scheduler", "worker"):
        raise ConfigError(f"component must be scheduler or worker, got {component!r}")
    env: dict[str, str] = {}
    if component == "scheduler":
        env |= {"WORKER": "false", "PORT": str(SCHEDULER_PORT), "DASHBOARD_PORT": str(DASHBOARD_PORT)}
        arguments = spec.scheduler_args
    else:
        env |= {
            "WORKER": "true",
            "DASK_SCHEDULER_ADDRESS": scheduler_address(spec),
            "DASHBOARD_PORT": str(WORKER_DASHBOARD_PORT),
        }
        limits = spec.resources.worker.limits
        if "cpu" in limits:
            env["WORKER_NTHREADS"] = str(max(1, math.ceil(parse_quantity(limits["cpu"]))))
        if "memory" in limits:
            env["WORKER_MEMORY_LIMIT"] = str(int(parse_quantity(limits["memory"])))
        arguments = spec.worker_args
    if arguments:
        env["ARGUMENTS"] = " ".join(arguments)
    if spec.pip_packages:
        env["EXTRA_PIP_PACKAGES"] = " ".join(spec.pip_packages)
    if spec.system_packages:
        env[PACKAGE_MANAGERS[spec.package_manager]] = " ".join(spec.system_packages)
    if spec.use_tls:
        env |= tls_env()
    return env | {key: spec.env[key] for key in sorted(spec.env)}


# --- the image prepuller ---------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class PrepullSpec:
    """A DaemonSet that pulls `images` onto every (selected) node ahead of the Dask pods.

    Each image runs once as an init container with `/bin/sh -c ...`: every prepulled image
    must have /bin/sh (the minimaldask images do).
    """

    name: str
    namespace: str = "default"
    images: tuple[str, ...]
    tolerations: tuple[Mapping[str, Any], ...] = ()
    node_selector: Mapping[str, str] = field(default_factory=dict)
    affinity: Mapping[str, Any] = field(default_factory=dict)
    priority_class: str | None = None
    image_pull_secrets: tuple[str, ...] = ()
    pause_image: str = DEFAULT_PAUSE_IMAGE

    def __post_init__(self) -> None:
        check_dns_label("name", self.name, NAME_MAX_LENGTH)
        check_dns_label("namespace", self.namespace)
        if isinstance(self.images, str) or not isinstance(self.images, Sequence) or not self.images:
            raise ConfigError(f"images must be a non-empty list of image references, got {self.images!r}")
        set_ = object.__setattr__
        set_(self, "images", tuple(_check_image("images", image) for image in self.images))
        set_(self, "tolerations", _check_tolerations("tolerations", self.tolerations))
        set_(self, "node_selector", _check_labels("node_selector", self.node_selector))
        affinity = _check_mapping("affinity", self.affinity)
        if unknown := sorted(set(affinity) - set(_AFFINITY_KEYS), key=str):
            raise ConfigError(f"affinity: unknown key {unknown[0]!r} (known: {', '.join(_AFFINITY_KEYS)})")
        set_(self, "affinity", affinity)
        if self.priority_class is not None:
            check_dns_subdomain("priority_class", self.priority_class)
        set_(self, "image_pull_secrets", _check_names("image_pull_secrets", self.image_pull_secrets))
        _check_image("pause_image", self.pause_image)

    @property
    def unique_images(self) -> tuple[str, ...]:
        """The images, sorted and without duplicates: the order they are given in changes nothing."""
        return tuple(sorted(set(self.images)))


def images_checksum(images: Iterable[str]) -> str:
    """The sha256 of the sorted, de-duplicated image list: it changes iff the set of images does."""
    return hashlib.sha256("\n".join(sorted(set(images))).encode()).hexdigest()
