"""RBAC authorization (--authorize-rbac) from the Roles, ClusterRoles and bindings stored in the server.

What a real server's RBAC authorizer decides, for resource requests:
- system:masters (the --token administrator) may do anything, without any binding.
- ClusterRoleBindings grant their ClusterRole's rules everywhere (cluster-scoped requests, every
  namespace, lists across all namespaces).
- RoleBindings grant their Role's (same namespace) or ClusterRole's rules in the binding's namespace only.
- Subjects: kind User matches the user name; kind Group one of the user's groups; kind ServiceAccount
  matches `system:serviceaccount:NS:NAME` (NS defaults to the RoleBinding's namespace).
- A rule matches when apiGroups has the request's group or "*", resources has the resource, or
  "resource/subresource" for a subresource, or "*" (or "*/subresource"), verbs has the verb or "*", and
  resourceNames is empty or names the object (requests without a name, create and list, never match a
  rule with resourceNames; a list or watch with the field selector metadata.name=X counts as naming X).
Discovery and non-resource paths are not checked here (the server lets any authenticated user read them,
as the system:discovery role does). ClusterRole aggregation is not modelled.

With --enforce-owner-references, the OwnerReferencesPermissionEnforcement admission plugin's rule too
(check_owner_references): setting blockOwnerDeletion on an ownerReference needs `update` on the owner's
`finalizers` subresource, and changing ownerReferences of an existing object needs `delete` on it.

A denial is the real server's 403: `secrets is forbidden: User "u" cannot list resource "secrets" in API
group "" in the namespace "demo"` (`at the cluster scope` without a namespace), with `: RBAC: ...` added
when a binding names a role that does not exist, as the real authorizer reports it.
"""
from dataclasses import dataclass

from store import ApiError


@dataclass(frozen=True)
class Request:
    verb: str
    group: str
    resource: str
    subresource: str
    namespace: str   # "" for cluster-scoped requests and lists across all namespaces
    name: str        # "" when the request names no object
    group_resource: str  # "secrets", "backupstorages.storage.kubestash.com": the Status' qualified resource

    @property
    def full_resource(self):
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource


def _listed(values, wanted):
    return "*" in (values or ()) or wanted in (values or ())


def rule_allows(rule, request):
    if not _listed(rule.get("verbs"), request.verb) or not _listed(rule.get("apiGroups"), request.group):
        return False
    resources = rule.get("resources") or ()
    if request.subresource:
        if not ("*" in resources or request.full_resource in resources or f"*/{request.subresource}" in resources):
            return False
    elif not ("*" in resources or request.resource in resources):
        return False
    names = rule.get("resourceNames") or ()
    return not names or request.name in names


def subject_matches(subject, user, binding_namespace):
    kind = subject.get("kind")
    if kind == "User":
        return subject.get("name") == user.name
    if kind == "Group":
        return subject.get("name") in user.groups
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace
        return user.name == f"system:serviceaccount:{namespace}:{subject.get('name')}"
    return False


class Authorizer:
    def __init__(self, store, resources_module):
        self.store = store
        find = resources_module.find
        self.roles = find("rbac.authorization.k8s.io/v1", "roles")
        self.cluster_roles = find("rbac.authorization.k8s.io/v1", "clusterroles")
        self.role_bindings = find("rbac.authorization.k8s.io/v1", "rolebindings")
        self.cluster_role_bindings = find("rbac.authorization.k8s.io/v1", "clusterrolebindings")

    def _objects(self, r):
        with self.store.cond:  # stored objects are immutable; a copy of the dict is a consistent view
            return dict(self.store.objects[r])

    def _role(self, role_ref, namespace, errors):
        kind, name = role_ref.get("kind"), role_ref.get("name")
        if kind == "ClusterRole":
            role = self._objects(self.cluster_roles).get(("", name))
            what = f'clusterrole.rbac.authorization.k8s.io "{name}" not found'
        elif kind == "Role":
            role = self._objects(self.roles).get((namespace, name))
            what = f'role.rbac.authorization.k8s.io "{name}" not found'
        else:
            return None
        if role is None:
            errors.append(what)
        return role

    def allowed(self, user, request):
        """(True, "") or (False, reason): reason names missing roles, as the real authorizer's does."""
        if user.is_admin:
            return True, ""
        errors = []
        bindings = [(b, "") for b in self._objects(self.cluster_role_bindings).values()]
        if request.namespace:
            bindings += [(b, request.namespace) for (ns, _), b in self._objects(self.role_bindings).items()
                         if ns == request.namespace]
        for binding, namespace in bindings:
            if not any(subject_matches(s, user, namespace) for s in binding.get("subjects") or ()):
                continue
            role = self._role(binding.get("roleRef") or {}, namespace, errors)
            if role and any(rule_allows(rule, request) for rule in role.get("rules") or ()):
                return True, ""
        if not errors:
            return False, ""
        # utilerrors.NewAggregate's text: one error as is, several as "[a, b]".
        return False, "RBAC: " + (errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]")

    def check_owner_references(self, user, request, new, old, find_kind):
        """The OwnerReferencesPermissionEnforcement admission plugin (gc_admission.go) for a write of
        `new` over `old` (None on create); find_kind(apiVersion, kind) -> Resource or None."""
        if user.is_admin or not owner_references_changed(new, old):
            return
        if old is not None and not self.allowed(user, Request("delete", request.group, request.resource, "",
                                                               request.namespace, request.name,
                                                               request.group_resource))[0]:
            raise owner_reference_forbidden(request, "cannot set an ownerRef on a resource you can't delete")
        for ref in new_blocking_owner_references(new, old):
            owner = find_kind(ref.get("apiVersion"), ref.get("kind"))
            group = owner.group if owner else (ref.get("apiVersion") or "").rpartition("/")[0]
            resource = owner.plural if owner else (ref.get("kind") or "").lower() + "s"
            finalizers = Request("update", group, resource, "finalizers", request.namespace, ref.get("name") or "",
                                 owner.group_resource if owner else resource)
            ok, reason = self.allowed(user, finalizers)
            if not ok:
                raise owner_reference_forbidden(
                    request, "cannot set blockOwnerDeletion if an ownerReference refers to a resource you can't set "
                             f"finalizers on: {forbidden(user, finalizers, reason).message.split(': ', 1)[1]}")

    def check(self, user, request):
        """Raise the real server's 403 Forbidden Status when `user` may not make `request`."""
        ok, reason = self.allowed(user, request)
        if ok:
            return
        raise forbidden(user, request, reason)


def _owner_references(obj):
    refs = ((obj or {}).get("metadata") or {}).get("ownerReferences") or []
    return [ref for ref in refs if isinstance(ref, dict)]


def new_blocking_owner_references(new, old):
    """The ownerReferences of `new` with blockOwnerDeletion true that `old` did not block with."""
    blocking_before = {ref.get("uid") for ref in _owner_references(old) if ref.get("blockOwnerDeletion")}
    return [ref for ref in _owner_references(new)
            if ref.get("blockOwnerDeletion") and ref.get("uid") not in blocking_before]


def owner_references_changed(new, old):
    return _owner_references(new) != _owner_references(old)


def owner_reference_forbidden(request, message):
    subject = f'{request.group_resource} "{request.name}"' if request.name else request.group_resource
    return ApiError(403, "Forbidden", f"{subject} is forbidden: {message}",
                    {"name": request.name, "group": request.group, "kind": request.resource})


def forbidden(user, request, reason=""):
    where = f'in the namespace "{request.namespace}"' if request.namespace else "at the cluster scope"
    message = (f'User "{user.name}" cannot {request.verb} resource "{request.full_resource}" in API group '
               f'"{request.group}" {where}')
    if reason:
        message += f": {reason}"
    subject = f'{request.group_resource} "{request.name}"' if request.name else request.group_resource
    return ApiError(403, "Forbidden", f"{subject} is forbidden: {message}",
                    {"name": request.name, "group": request.group, "kind": request.resource} if request.name
                    else {"group": request.group, "kind": request.resource})
