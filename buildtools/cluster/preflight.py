"""What start_dask_cluster checks before it creates anything.

1. Permissions: a SelfSubjectAccessReview for each verb on each resource of the Role the
   deploy needs (manifests/rbac.yaml.j2, docs/RBAC.md), so that a missing one is named at
   once instead of half-way through a deploy (or at its deletion).
2. A server-side dry run (dryRun=All) of every object, and of one pod of each Deployment's
   template: the namespace's admission (ResourceQuota, LimitRange, PodSecurity, webhooks)
   judges the pods as it will judge the real ones, and nothing is left behind when it refuses.
   A namespace made moments ago has no ServiceAccount yet (the controller-manager adds
   "default" within seconds) and admission refuses pods until then: that refusal is waited
   out within the start's deadline, as a ReplicaSet controller would retry it.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from buildtools.cluster.kinds import ROLE, SERVICE_ACCOUNT
from buildtools.cluster.kube import Kube, kind_label
from buildtools.cluster.render import render_rbac
from buildtools.cluster.waits import Deadline, Progress, wait_until
from buildtools.errors import AdmissionError, ForbiddenError

Obj = dict[str, Any]
Permission = tuple[str, str, str]  # (API group, resource, verb)
# The reviews are independent requests: a few at once keep the preflight short.
CONCURRENT_REVIEWS = 8
# The ServiceAccount admission plugin's words when a pod's account does not exist (yet).
MISSING_SERVICE_ACCOUNT = "error looking up service account"


def needed_permissions(namespace: str, prepull: bool) -> list[Permission]:
    """Every (group, resource, verb) of the deployer's Role; DaemonSets only for a prepull."""
    (role,) = [obj for obj in render_rbac(namespace) if obj["kind"] == "Role"]
    return [
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        if prepull or resource != "daemonsets"
        for verb in rule["verbs"]
    ]


def describe(permission: Permission) -> str:
    """kubectl's words for it: "delete deployments.apps", "get pods/log"."""
    group, resource, verb = permission
    return f"{verb} {resource}{'.' + group if group else ''}"


def check_permissions(kube: Kube, namespace: str, prepull: bool) -> None:
    """Raise ForbiddenError naming every verb the identity lacks in the namespace."""
    needed = needed_permissions(namespace, prepull)
    with ThreadPoolExecutor(CONCURRENT_REVIEWS, thread_name_prefix="access-review") as pool:
        allowed = list(pool.map(lambda p: kube.can_i(p[2], p[0], p[1], namespace), needed))
    if missing := [describe(p) for p, ok in zip(needed, allowed, strict=True) if not ok]:
        raise ForbiddenError(
            f"forbidden: the deploy to namespace {namespace} needs permissions this identity lacks: "
            f"{', '.join(missing)} (the Role in docs/RBAC.md: buildtools render rbac -n {namespace})"
        )


def template_pod(workload: Obj) -> Obj:
    """A pod as a Deployment's (DaemonSet's, Job's) controller would create it, for a dry run."""
    template = workload["spec"]["template"]
    name = workload["metadata"]["name"]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {**template["metadata"], "name": f"{name}-dry-run", "namespace": workload["metadata"]["namespace"]},
        "spec": template["spec"],
    }


def dry_run_pod(kube: Kube, pod: Obj, deadline: Deadline, progress: Progress) -> None:
    """The pod through admission; while its ServiceAccount does not exist yet, again."""
    account = pod["spec"].get("serviceAccountName", "default")

    def admitted() -> tuple[bool, str]:
        try:
            kube.dry_run_create(pod)
        except AdmissionError as refusal:
            if MISSING_SERVICE_ACCOUNT not in str(refusal):
                raise
            return False, f"ServiceAccount {pod['metadata']['namespace']}/{account} does not exist (yet)"
        return True, "admitted"

    wait_until(admitted, f"admission of {kind_label(pod)}", deadline, progress)


def as_admitted_now(kube: Kube, pod: Obj, planned_accounts: set[str]) -> Obj:
    """The pod, with the namespace's default ServiceAccount in place of one the start will create
    (the scheduler's): admission refuses a pod whose account does not exist yet."""
    account = pod["spec"].get("serviceAccountName")
    if account not in planned_accounts or kube.get(SERVICE_ACCOUNT, account, pod["metadata"]["namespace"]):
        return pod
    return {**pod, "spec": {key: value for key, value in pod["spec"].items() if key != "serviceAccountName"}}


def binds_a_role_to_come(kube: Kube, obj: Obj, planned_roles: set[str]) -> bool:
    """A RoleBinding of a Role the start creates: the server judges a binding by the Role's rules
    (the binder must hold them), so it cannot judge it before the Role exists; the Role's own
    dry run checks those rules, and the real apply the binding."""
    role = obj.get("roleRef", {}).get("name")
    return (
        obj["kind"] == "RoleBinding"
        and role in planned_roles
        and kube.get(ROLE, role, obj["metadata"]["namespace"]) is None
    )


def dry_run(kube: Kube, objects: Iterable[Obj], deadline: Deadline, progress: Progress) -> None:
    """Each object, then one pod of each workload's template, through the server's admission."""
    objects = list(objects)
    roles = {obj["metadata"]["name"] for obj in objects if obj["kind"] == "Role"}
    for obj in objects:
        if not binds_a_role_to_come(kube, obj, roles):
            kube.apply(obj, dry_run=True)
    accounts = {obj["metadata"]["name"] for obj in objects if obj["kind"] == "ServiceAccount"}
    for obj in objects:
        if obj["kind"] in ("Deployment", "DaemonSet", "Job"):
            dry_run_pod(kube, as_admitted_now(kube, template_pod(obj), accounts), deadline, progress)
