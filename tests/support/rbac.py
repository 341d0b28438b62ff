"""`kubectl auth can-i`, answered from RBAC objects as Kubernetes' RBAC authorizer answers it.

Read from kubernetes/kubernetes (plugin/pkg/auth/authorizer/rbac/rbac.go and
pkg/apis/rbac/v1/evaluation_helpers.go): a request is allowed when any binding that names the
subject grants a rule that matches it. A ClusterRoleBinding grants its ClusterRole everywhere;
a RoleBinding grants its Role or ClusterRole in its own namespace only, and never on
cluster-scoped resources, except the namespace object itself: the API server files a request
for /api/v1/namespaces/NAME under namespace NAME (k8s.io/apiserver endpoints/request/
requestinfo.go), so a RoleBinding in NAME may grant rights on it. A rule matches when its verbs, apiGroups, resources and
resourceNames all do: "*" matches anything, "pods/log" names a subresource, "*/scale" a
subresource of any resource, and an empty resourceNames any name.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Request:
    verb: str
    resource: str               # "pods", or "pods/portforward" for a subresource
    namespace: str | None = None  # None: a cluster-scoped request
    group: str = ""             # "" is the core group
    name: str | None = None


def _matches(rule: dict, req: Request) -> bool:
    verbs, groups = rule.get("verbs") or [], rule.get("apiGroups") or []
    if not ({"*", req.verb} & set(verbs) and {"*", req.group} & set(groups)):
        return False
    resource, _, sub = req.resource.partition("/")
    if not any(r in ("*", req.resource) or (sub and r == f"*/{sub}") for r in rule.get("resources") or []):
        return False
    names = rule.get("resourceNames") or []
    return not names or req.name in names


def _names(subject: dict, account: tuple[str, str]) -> bool:
    namespace, name = account
    kind, who = subject.get("kind"), subject.get("name")
    return (kind == "ServiceAccount" and (subject.get("namespace"), who) == account
            or kind == "User" and who == f"system:serviceaccount:{namespace}:{name}"
            or kind == "Group" and who in ("system:serviceaccounts", f"system:serviceaccounts:{namespace}",
                                           "system:authenticated"))


def can_i(objects: list[dict], account: tuple[str, str], req: Request) -> bool:
    """Whether ServiceAccount `account` = (namespace, name) may make `req`, given these RBAC objects."""
    roles = {(o["kind"], (o["metadata"].get("namespace") if o["kind"] == "Role" else None), o["metadata"]["name"]): o
             for o in objects if o["kind"] in ("Role", "ClusterRole")}
    for binding in objects:
        if binding["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        if not any(_names(s, account) for s in binding.get("subjects") or []):
            continue
        where = binding["metadata"].get("namespace") if binding["kind"] == "RoleBinding" else None
        filed_under = req.name if req.resource == "namespaces" and req.name else req.namespace
        if where is not None and filed_under != where:
            continue  # a RoleBinding grants nothing outside its namespace, nor cluster-scoped
        ref = binding["roleRef"]
        role = roles.get((ref["kind"], where if ref["kind"] == "Role" else None, ref["name"]))
        if role and any(_matches(rule, req) for rule in role.get("rules") or []):
            return True
    return False
