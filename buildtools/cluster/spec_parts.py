"""The parts a spec is made of: the base model (frozen, no unknown fields, one-line errors) and
the nested models of ClusterSpec (specs.py): resources, placement, the adapt policy, a worker group.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from typing import Annotated, Any, Self

from kubernetes.utils.quantity import parse_quantity
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    ModelWrapValidatorHandler,
    ValidationError,
    model_validator,
)

from buildtools.cluster import kubetypes as k
from buildtools.cluster.contract import MANAGED_ENV
from buildtools.cluster.controller import Policy

_validating: ContextVar[bool] = ContextVar("validating", default=False)


class SpecModel(BaseModel):
    """Frozen, no unknown fields, and a ConfigError (not pydantic's report) for a bad field.

    A subclass checks across its fields in `check`, not with model validators of its own:
    pydantic would run those outside `_one_line`, and their errors would escape it.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    def check(self) -> None:
        """Checks across fields, once each field is valid; they reject with kubetypes.fail."""

    @model_validator(mode="before")
    @classmethod
    def _known_fields(cls, value: Any) -> Any:
        if isinstance(value, cls):
            return value
        if not isinstance(value, Mapping):
            k.fail(f"must be a mapping, got {value!r}")
        return k.check_keys(value, tuple(cls.model_fields))

    @model_validator(mode="after")
    def _check(self) -> Self:
        self.check()
        return self

    # Last, so that pydantic applies it around the validators above.
    @model_validator(mode="wrap")
    @classmethod
    def _one_line(cls, value: Any, handler: ModelWrapValidatorHandler[Any]) -> Any:
        # A nested model is validated inside its parent's validation: only the outermost one
        # turns pydantic's report into a ConfigError, so that the message has the whole path.
        if _validating.get():
            return handler(value)
        token = _validating.set(True)
        try:
            return handler(value)
        except ValidationError as error:
            raise k.config_error(error) from None
        finally:
            _validating.reset(token)


class Resources(SpecModel):
    """One container's requests and limits, as Kubernetes quantities ({"cpu": "500m", "memory": "2Gi"})."""

    requests: k.Quantities = {}
    limits: k.Quantities = {}

    def check(self) -> None:
        for resource in sorted(set(self.requests) & set(self.limits)):
            request, limit = self.requests[resource], self.limits[resource]
            if parse_quantity(request) > parse_quantity(limit):
                k.fail(f"the {resource} request ({request}) exceeds its limit ({limit})")


class ClusterResources(SpecModel):
    """Requests and limits of the scheduler's and each worker's container."""

    scheduler: Resources = Resources()
    worker: Resources = Resources()


class Placement(SpecModel):
    """Where one component's pods may run, as Kubernetes takes it."""

    node_selector: k.Labels = {}
    tolerations: k.Tolerations = ()
    affinity: k.AffinityRules = {}


class AdaptPolicy(SpecModel):
    """Adaptive scaling, done by the controller in the scheduler pod (docs/AUTOSCALING.md):
    the workers follow the scheduler's load within [minimum, maximum], with no client running."""

    minimum: k.Count = 0
    """0 keeps only the scheduler when there is no work; work submitted later brings workers back."""
    maximum: k.Count

    def check(self) -> None:
        if self.minimum > self.maximum:
            k.fail(f"minimum ({self.minimum}) exceeds maximum ({self.maximum})")

    @property
    def policy(self) -> Policy:
        return Policy(self.minimum, self.maximum)


class ClusterPlacement(SpecModel):
    """The scheduler's and the workers' placement, apart: GPU nodes for the workers only, say."""

    scheduler: Placement = Placement()
    worker: Placement = Placement()


class WorkerGroupSpec(SpecModel):
    """A worker group: its own Deployment (<cluster>-worker-<group>), its own scaling. Fields
    left out are the cluster's (its default group's); `env` adds to the cluster's."""

    n_workers: k.Count = 1
    image: k.ImageRef | None = None
    resources: Resources | None = None
    """The group's worker containers' requests and limits (an nvidia.com/gpu limit: GPU workers)."""
    env: k.EnvVars = {}
    worker_args: k.Words | None = None
    dask_resources: k.DaskResources = {}
    """The Dask resources each of its workers offers ({"GPU": 1}): tasks asking for them
    (`client.submit(f, resources={"GPU": 1})`) run here, and scale this group."""
    placement: Placement | None = None
    adapt: AdaptPolicy | None = None

    def check(self) -> None:
        if clash := [key for key in self.env if key in MANAGED_ENV]:
            k.fail(f"env: {clash[0]} is set by minimaldask from the spec's fields; do not set it in env")


# A group's name ends its Deployment's name; "default" is the default group's, whose
# Deployment is <cluster>-worker.
def _not_default(name: str) -> str:
    if name == "default":
        k.fail("default is the default group's name (the cluster's own worker fields)")
    return name


GroupName = Annotated[str, *k.dns_label(rfc1035=True), AfterValidator(_not_default)]
