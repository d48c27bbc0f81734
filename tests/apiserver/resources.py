"""The kinds this test API server knows, and the documents that describe them to clients.

Everything a client learns before it touches an object comes from here: /version, the legacy
discovery documents (APIVersions, APIGroupList, APIGroup, APIResourceList), an OpenAPI v3 index and
per-group-version documents (enough for `kubectl apply` with its default --validate=strict: every
PATCH operation declares the `fieldValidation` parameter, so kubectl leaves validation to the server;
no PATCH declares a strategic-merge-patch body, so kubectl sends merge patches for custom resources
and builds strategic merge patches for built-in kinds from its own types), and the
meta.k8s.io/v1 Table, PartialObjectMetadata and PartialObjectMetadataList views of objects.
"""
import datetime
import hashlib
import json
from dataclasses import dataclass

VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    json_path: str
    description: str = ""
    priority: int = 0
    count: bool = False  # the cell is the length of the list at json_path (kubectl's WEBHOOKS column)


@dataclass(frozen=True, eq=False)  # identity hash: resources key the store's dicts
class Resource:
    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    short_names: tuple = ()
    categories: tuple = ()
    status: bool = False          # has a /status subresource: main writes keep .status, status writes keep the rest
    custom: bool = False          # a CustomResourceDefinition: strategic merge patch is refused (415)
    columns: tuple = ()           # printer columns after Name (Age is added last)
    field_labels: tuple = ()      # field selector labels beyond metadata.name and metadata.namespace
    name_is_label: bool = False   # the name must be a DNS-1123 label (namespaces), not a subdomain
    has_generation: bool = False  # built-in kinds with metadata.generation (custom resources always have it)

    @property
    def tracks_generation(self):
        return self.custom or self.has_generation

    @property
    def group_version(self):
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def api_version(self):
        return self.group_version

    @property
    def group_resource(self):
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def list_kind(self):
        return self.kind + "List"

    @property
    def base_path(self):
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"


KUBESTASH_CATEGORIES = ("kubestash", "appscode", "all")

RESOURCES = [
    Resource("", "v1", "namespaces", "namespace", "Namespace", False, ("ns",), status=True, name_is_label=True,
             columns=(Column("Status", "string", ".status.phase", "The phase of the namespace"),),
             field_labels=("status.phase",)),
    Resource("", "v1", "secrets", "secret", "Secret", True,
             columns=(Column("Type", "string", ".type", "The type of the secret"),),
             field_labels=("type",)),
    Resource("", "v1", "configmaps", "configmap", "ConfigMap", True, ("cm",)),
    Resource("", "v1", "serviceaccounts", "serviceaccount", "ServiceAccount", True, ("sa",)),
    Resource("", "v1", "pods", "pod", "Pod", True, ("po",), ("all",), status=True,
             columns=(Column("Status", "string", ".status.phase", "The phase of the pod"),
                      Column("Node", "string", ".spec.nodeName", "The node the pod runs on", priority=1)),
             field_labels=("spec.nodeName", "spec.serviceAccountName", "spec.restartPolicy", "status.phase")),
    Resource("", "v1", "services", "service", "Service", True, ("svc",), ("all",), status=True,
             columns=(Column("Type", "string", ".spec.type"), Column("Cluster-IP", "string", ".spec.clusterIP"))),
    Resource("apps", "v1", "deployments", "deployment", "Deployment", True, ("deploy",), ("all",), status=True,
             has_generation=True,
             columns=(Column("Up-to-date", "integer", ".status.updatedReplicas"),
                      Column("Available", "integer", ".status.availableReplicas"))),
    Resource("policy", "v1", "poddisruptionbudgets", "poddisruptionbudget", "PodDisruptionBudget", True, ("pdb",),
             status=True, has_generation=True),
    Resource("rbac.authorization.k8s.io", "v1", "roles", "role", "Role", True),
    Resource("rbac.authorization.k8s.io", "v1", "clusterroles", "clusterrole", "ClusterRole", False),
    Resource("rbac.authorization.k8s.io", "v1", "rolebindings", "rolebinding", "RoleBinding", True,
             columns=(Column("Role", "string", ".roleRef.name"),)),
    Resource("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "clusterrolebinding", "ClusterRoleBinding",
             False, columns=(Column("Role", "string", ".roleRef.name"),)),
    Resource("events.k8s.io", "v1", "events", "event", "Event", True, ("ev",),
             field_labels=("reason", "type", "reportingController", "regarding.kind", "regarding.name",
                           "regarding.namespace", "regarding.uid")),
    Resource("coordination.k8s.io", "v1", "leases", "lease", "Lease", True,
             columns=(Column("Holder", "string", ".spec.holderIdentity", "The holder of the lease"),)),
    Resource("batch", "v1", "jobs", "job", "Job", True, categories=("all",), status=True,
             field_labels=("status.successful",), has_generation=True),
    # A stored CRD's kinds are served from then on (serve_crd), unless listed here; schemas are neither
    # checked nor enforced.
    Resource("apiextensions.k8s.io", "v1", "customresourcedefinitions", "customresourcedefinition",
             "CustomResourceDefinition", False, ("crd", "crds"), ("api-extensions",), status=True, has_generation=True),
    # Served and enforced: admission.py calls the webhooks they name on every write.
    Resource("admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations", "mutatingwebhookconfiguration",
             "MutatingWebhookConfiguration", False, categories=("api-extensions",), has_generation=True,
             columns=(Column("Webhooks", "integer", ".webhooks", "Webhooks indicates the number of webhooks in "
                             "the configuration.", count=True),)),
    Resource("admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations",
             "validatingwebhookconfiguration", "ValidatingWebhookConfiguration", False,
             categories=("api-extensions",), has_generation=True,
             columns=(Column("Webhooks", "integer", ".webhooks", "Webhooks indicates the number of webhooks in "
                             "the configuration.", count=True),)),
    Resource("storage.kubestash.com", "v1alpha1", "backupstorages", "backupstorage", "BackupStorage", True,
             ("bs",), KUBESTASH_CATEGORIES, status=True, custom=True,
             columns=(Column("Provider", "string", ".spec.storage.provider"),
                      Column("Default", "boolean", ".spec.default"),
                      Column("Deletion-Policy", "string", ".spec.deletionPolicy"),
                      Column("Total-Size", "string", ".status.totalSize"),
                      Column("Phase", "string", ".status.phase"))),
    Resource("storage.kubestash.com", "v1alpha1", "repositories", "repository", "Repository", True,
             ("repo",), KUBESTASH_CATEGORIES, status=True, custom=True,
             columns=(Column("Phase", "string", ".status.phase"),)),
    # KubeStash's Snapshot (no short name; categories kubestash and appscode only, as its CRD).
    Resource("storage.kubestash.com", "v1alpha1", "snapshots", "snapshot", "Snapshot", True,
             (), ("kubestash", "appscode"), status=True, custom=True,
             columns=(Column("Repository", "string", ".spec.repository"), Column("Phase", "string", ".status.phase"))),
]


def group_versions():
    return sorted({r.group_version for r in RESOURCES})


def resources_of(group_version):
    return [r for r in RESOURCES if r.group_version == group_version]


def find(group_version, plural):
    for r in RESOURCES:
        if r.group_version == group_version and r.plural == plural:
            return r
    return None


def serve_crd(crd):
    """The kinds of a stored CustomResourceDefinition's served versions, served from now on unless this
    server already serves them (as it does storage.kubestash.com). Returns the Resources added. A deleted
    CRD's kinds stay served."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    group, plural, kind = spec.get("group"), names.get("plural"), names.get("kind")
    if not (isinstance(group, str) and isinstance(plural, str) and isinstance(kind, str)):
        return []
    added = []
    for v in spec.get("versions") or []:
        if not isinstance(v, dict) or not v.get("served", True) or not isinstance(v.get("name"), str):
            continue
        if find(f"{group}/{v['name']}", plural):
            continue
        columns = tuple(Column(c["name"], c.get("type", "string"), c["jsonPath"], c.get("description", ""),
                               c.get("priority", 0))
                        for c in v.get("additionalPrinterColumns") or [] if c.get("name") and c.get("jsonPath"))
        r = Resource(group, v["name"], plural, names.get("singular") or kind.lower(), kind,
                     spec.get("scope") == "Namespaced", tuple(names.get("shortNames") or ()),
                     tuple(names.get("categories") or ()), status="status" in (v.get("subresources") or {}),
                     custom=True, columns=columns)
        RESOURCES.append(r)
        added.append(r)
    return added


def by_kind(api_version, kind):
    for r in RESOURCES:
        if r.api_version == api_version and r.kind == kind:
            return r
    return None


# ---------------------------------------------------------------------------------------------- discovery

def version_info():
    return {"major": "1", "minor": "32", "gitVersion": "v1.32.0-stowage-test", "gitCommit": "0" * 40,
            "gitTreeState": "clean", "buildDate": "2025-01-01T00:00:00Z", "goVersion": "go1.23",
            "compiler": "gc", "platform": "linux/amd64"}


def api_versions(server_address):
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]}


def _api_group(group):
    versions = sorted({r.version for r in RESOURCES if r.group == group})
    entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": entries, "preferredVersion": entries[0]}


def api_group(group):
    if not any(r.group == group for r in RESOURCES if r.group):
        return None
    return dict(_api_group(group), kind="APIGroup", apiVersion="v1")


def api_group_list():
    groups = sorted({r.group for r in RESOURCES if r.group})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [_api_group(g) for g in groups]}


def _storage_hash(r):
    return hashlib.sha256(f"{r.group_version}/{r.plural}".encode()).hexdigest()[:11]


def api_resource_list(group_version):
    rs = resources_of(group_version)
    if not rs:
        return None
    entries = []
    for r in rs:
        entry = {"name": r.plural, "singularName": r.singular, "namespaced": r.namespaced, "kind": r.kind,
                 "verbs": VERBS, "storageVersionHash": _storage_hash(r)}
        if r.short_names:
            entry["shortNames"] = list(r.short_names)
        if r.categories:
            entry["categories"] = list(r.categories)
        entries.append(entry)
        if r.status:
            entries.append({"name": f"{r.plural}/status", "singularName": "", "namespaced": r.namespaced,
                            "kind": r.kind, "verbs": ["get", "patch", "update"]})
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": entries}


# ---------------------------------------------------------------------------------------------- OpenAPI v3

def _openapi_key(group_version):
    return f"apis/{group_version}" if "/" in group_version else f"api/{group_version}"


def _openapi_hash(group_version):
    return hashlib.sha512(json.dumps(openapi_document(group_version), sort_keys=True).encode()).hexdigest()[:32]


def openapi_index():
    return {"paths": {_openapi_key(gv): {"serverRelativeURL": f"/openapi/v3/{_openapi_key(gv)}?hash={_openapi_hash(gv)}"}
                      for gv in group_versions()}}


def _schema_name(r):
    group = ".".join(reversed(r.group.split("."))) if r.group else "io.k8s.api.core"
    return f"{group}.{r.version}.{r.kind}"


def _operation(r, action, with_body=False, patch=False):
    gvk = {"group": r.group, "version": r.version, "kind": r.kind}
    schema_ref = {"$ref": f"#/components/schemas/{_schema_name(r)}"}
    op = {"operationId": f"{action}{r.kind}", "x-kubernetes-action": action, "x-kubernetes-group-version-kind": gvk,
          "parameters": [{"name": "dryRun", "in": "query", "schema": {"type": "string"}},
                         {"name": "fieldManager", "in": "query", "schema": {"type": "string"}},
                         {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}],
          "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": schema_ref}}}}}
    if patch:
        # No strategic-merge-patch here, even for built-in kinds: kubectl would then compute the patch from
        # these (schema-less) documents and warn; without it, it uses its compiled-in types, as it must for
        # CRDs anyway. The server still accepts strategic merge patches for built-in kinds.
        types = ["application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml"]
        op["requestBody"] = {"content": {t: {"schema": {"type": "object"}} for t in types}}
    elif with_body:
        op["requestBody"] = {"content": {"application/json": {"schema": schema_ref}}}
    return op


def openapi_document(group_version):
    rs = resources_of(group_version)
    if not rs:
        return None
    paths, schemas = {}, {}
    for r in rs:
        scope = "/namespaces/{namespace}" if r.namespaced else ""
        collection = f"{r.base_path}{scope}/{r.plural}"
        item = collection + "/{name}"
        paths[collection] = {"post": _operation(r, "post", with_body=True)}
        paths[item] = {"put": _operation(r, "put", with_body=True), "patch": _operation(r, "patch", patch=True)}
        if r.status:
            paths[item + "/status"] = {"put": _operation(r, "put", with_body=True),
                                       "patch": _operation(r, "patch", patch=True)}
        schemas[_schema_name(r)] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True,
                                    "x-kubernetes-group-version-kind": [{"group": r.group, "version": r.version,
                                                                         "kind": r.kind}]}
    return {"openapi": "3.0.0", "info": {"title": "stowage test API server", "version": group_version},
            "paths": paths, "components": {"schemas": schemas}}


def openapi_for_path(key):
    for gv in group_versions():
        if _openapi_key(gv) == key:
            return openapi_document(gv)
    return None


# ---------------------------------------------------------------------------------------------- object views

META_V1 = "meta.k8s.io/v1"


def partial_metadata(obj):
    return {"kind": "PartialObjectMetadata", "apiVersion": META_V1, "metadata": obj.get("metadata", {})}


def partial_metadata_list(items, list_meta):
    return {"kind": "PartialObjectMetadataList", "apiVersion": META_V1, "metadata": list_meta,
            "items": [partial_metadata(o) for o in items]}


def human_duration(seconds):
    """kubectl's duration.HumanDuration, so Age reads as on a real cluster."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 10:
        return f"{m}m" if s % 60 == 0 else f"{m}m{s % 60}s"
    if m < 180:
        return f"{m}m"
    h = m // 60
    if h < 8:
        return f"{h}h" if m % 60 == 0 else f"{h}h{m % 60}m"
    if h < 48:
        return f"{h}h"
    if h < 24 * 8:
        return f"{h // 24}d" if h % 24 == 0 else f"{h // 24}d{h % 24}h"
    if h < 24 * 365 * 2:
        return f"{h // 24}d"
    if h < 24 * 365 * 8:
        years, days = h // 24 // 365, (h // 24) % 365
        return f"{years}y" if days == 0 else f"{years}y{days}d"
    return f"{h // 24 // 365}y"


def _lookup(obj, json_path):
    value = obj
    for part in json_path.strip(".").split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _cell(obj, column):
    value = _lookup(obj, column.json_path)
    if column.count:
        return len(value) if isinstance(value, list) else 0
    return value


def _age(obj, now):
    stamp = obj.get("metadata", {}).get("creationTimestamp")
    if not stamp:
        return "<unknown>"
    created = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    return human_duration((now - created).total_seconds())


def column_definitions(r):
    columns = [{"name": "Name", "type": "string", "format": "name", "priority": 0,
                "description": "Name must be unique within a namespace."}]
    columns += [{"name": c.name, "type": c.type, "format": "", "priority": c.priority, "description": c.description}
                for c in r.columns]
    columns.append({"name": "Age", "type": "string", "format": "", "priority": 0,
                    "description": "CreationTimestamp is a timestamp representing the server time when this object "
                                   "was created."})
    return columns


def table(r, items, list_meta, include_object="Metadata", headers=True):
    now = datetime.datetime.now(datetime.timezone.utc)
    rows = []
    for obj in items:
        cells = [obj.get("metadata", {}).get("name", "")]
        cells += [_cell(obj, c) for c in r.columns]
        cells.append(_age(obj, now))
        row = {"cells": cells}
        if include_object == "Object":
            row["object"] = obj
        elif include_object != "None":
            row["object"] = partial_metadata(obj)
        rows.append(row)
    result = {"kind": "Table", "apiVersion": META_V1, "metadata": list_meta}
    if headers:
        result["columnDefinitions"] = column_definitions(r)
    result["rows"] = rows
    return result
