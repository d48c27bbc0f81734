"""The object store of the test API server: what a real server keeps in etcd and its watch cache.

Guarantees
- One global resourceVersion counter; every committed write (create, update, patch, delete, the
  deletionTimestamp a DELETE sets) takes the next value and appends exactly one event to the history.
  A write that changes nothing commits nothing (no new resourceVersion, no event), as on etcd.
- Stored objects are never modified after commit: a write builds a new dict. Readers may hold and
  serialize them without the lock, but must not change them.
- The event history is bounded (max_history); `horizon` is the resourceVersion after which every event
  is still held. A watch from an older resourceVersion is Expired (410). `compact()` moves the horizon
  to now and forgets every list snapshot, so old continue tokens and old watch positions expire too.
- A paged list reads one snapshot: the first page fixes the matching objects and the resourceVersion,
  the continue token points into that snapshot; a token whose snapshot is gone is Expired (410).
- Write rules: a stale resourceVersion is a Conflict (409); with a status subresource, main writes keep
  .status and status writes change only .status; generation (custom resources and Jobs only, as on a
  real server) moves when anything outside metadata (and outside status, with a status subresource)
  changes, and when deletion starts; DELETE with finalizers sets deletionTimestamp and keeps the object
  until its finalizers are empty, then it is removed with a DELETED event; no finalizer may be added
  while deleting (422).

Admission webhooks are admission.py's business: it calls them, then writes here. Not modelled: schema
validation, defaulting beyond Secrets, Namespaces and webhook configurations, garbage collection
(ownerReferences, propagationPolicy), managedFields, server-side apply conflicts.
"""
import base64
import bisect
import copy
import datetime
import json
import re
import secrets as random_source
import threading
import uuid
from collections import OrderedDict

import patches
import resources
import label_selectors as selectors

DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
SERVER_OWNED_META = ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation",
                     "name", "namespace", "generateName")


class ApiError(Exception):
    """A failure the server answers with a Status object."""

    def __init__(self, code, reason, message, details=None, retry_after=None):
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message
        self.details, self.retry_after = details, retry_after

    def status(self):
        result = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": self.message}
        if self.reason:  # omitempty: kubectl prints "Error from server (REASON): ..." only when there is one
            result["reason"] = self.reason
        result["code"] = self.code
        details = dict(self.details or {})
        if self.retry_after is not None:
            details["retryAfterSeconds"] = int(self.retry_after)
        if details:
            result["details"] = details
        return result


def bad_request(message):
    return ApiError(400, "BadRequest", message)


def expired(message):
    return ApiError(410, "Expired", message)


def _details(r, name, causes=None):
    details = {"name": name, "group": r.group, "kind": r.plural}
    if causes:
        details["causes"] = causes
    return details


def not_found(r, name):
    return ApiError(404, "NotFound", f'{r.group_resource} "{name}" not found', _details(r, name))


def conflict(r, name):
    return ApiError(409, "Conflict", f'Operation cannot be fulfilled on {r.group_resource} "{name}": the object has '
                    "been modified; please apply your changes to the latest version and try again", _details(r, name))


def invalid(r, name, field, reason, detail):
    """errors.NewInvalid: details name the kind (not the resource) and one cause per field."""
    kind = f"{r.kind}.{r.group}" if r.group else r.kind
    return ApiError(422, "Invalid", f'{kind} "{name}" is invalid: {field}: {detail}',
                    {"name": name, "group": r.group, "kind": r.kind,
                     "causes": [{"reason": reason, "message": detail, "field": field}]})


def patch_failed(message):
    """errors.NewGenericServerResponse(422, ...), which the real server answers for a JSON patch that fails."""
    return ApiError(422, "Invalid", "the server rejected our request due to an error in our request",
                    {"causes": [{"reason": "UnexpectedServerResponse", "message": message}]})


def too_large(rv, current):
    return ApiError(504, "Timeout", f"Too large resource version: {rv}, current: {current}",
                    {"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}]},
                    retry_after=1)


def now_rfc3339():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Event:
    """One committed change. `line` caches the JSON watch line of (type, obj) for plain-JSON watchers."""
    __slots__ = ("rv", "resource", "type", "obj", "old", "line")

    def __init__(self, rv, resource, type_, obj, old):
        self.rv, self.resource, self.type, self.obj, self.old, self.line = rv, resource, type_, obj, old, None

    def json_line(self):
        if self.line is None:
            self.line = json.dumps({"type": self.type, "object": self.obj}, separators=(",", ":")).encode() + b"\n"
        return self.line


def make_filter(r, namespace, label_selector, field_selector):
    """A predicate on objects of r, or ApiError 400 for a selector the server would refuse."""
    try:
        labels = selectors.parse_label_selector(label_selector)
        fields = selectors.parse_field_selector(field_selector)
    except selectors.SelectorError as e:
        raise bad_request(str(e))
    allowed = ("metadata.name", "metadata.namespace") + r.field_labels
    for field, _, _ in fields:
        if field not in allowed:
            raise bad_request(f'field label not supported: {field}')

    def matches(obj):
        meta = obj.get("metadata", {})
        if namespace is not None and meta.get("namespace") != namespace:
            return False
        return selectors.labels_match(labels, meta.get("labels")) and selectors.fields_match(fields, obj)
    return matches


def _spec_part(r, obj):
    """What generation tracks: everything but metadata (and status when it is a subresource)."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "resourceVersion") and not (r.status and k == "status")}


class Store:
    def __init__(self, max_history=100000, max_snapshots=256, rv0_unpaged=False):
        self.cond = threading.Condition()
        self.rv = 100
        self.objects = {r: {} for r in resources.RESOURCES}
        self.history = []
        self.base = 0                  # sequence number of history[0]
        self.horizon = self.rv         # every event with rv > horizon is in history
        self.max_history = max_history
        self.snapshots = OrderedDict()  # id -> (rv, items)
        self.max_snapshots = max_snapshots
        self.next_snapshot = 1
        self.rv0_unpaged = rv0_unpaged  # like a 1.32 watch cache: resourceVersion=0 lists ignore limit
        self.namespaces = resources.find("v1", "namespaces")
        for name in ("default", "kube-system"):
            self.create(self.namespaces, None, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})

    # ------------------------------------------------------------------------------------------ commit

    def _commit(self, r, key, new, type_, old, dry_run):
        """Give `new` (a fresh dict with a fresh metadata dict) the next resourceVersion and store it."""
        if dry_run:
            return new
        self.rv += 1
        new["metadata"]["resourceVersion"] = str(self.rv)
        if type_ == "DELETED":
            self.objects[r].pop(key, None)
        else:
            self.objects[r][key] = new
            if r.plural == "customresourcedefinitions":
                for served in resources.serve_crd(new):
                    self.objects[served] = {}
        self.history.append(Event(self.rv, r, type_, new, old))
        if len(self.history) > self.max_history + max(1, self.max_history // 10):
            drop = len(self.history) - self.max_history
            self.horizon = self.history[drop - 1].rv
            del self.history[:drop]
            self.base += drop
        self.cond.notify_all()
        return new

    def compact(self):
        with self.cond:
            self.base += len(self.history)
            self.history = []
            self.horizon = self.rv
            self.snapshots.clear()
            self.cond.notify_all()

    def current_rv(self):
        with self.cond:
            return self.rv

    # ------------------------------------------------------------------------------------------ checks

    @staticmethod
    def check_type(r, body):
        if not isinstance(body, dict):
            raise bad_request("the request body must be a JSON object")
        if not body.get("kind"):
            raise bad_request("Object 'Kind' is missing in the request body")
        if body.get("apiVersion") != r.api_version or body.get("kind") != r.kind:
            raise bad_request(f"the API version in the data ({body.get('apiVersion')}) and kind ({body.get('kind')}) "
                              f"do not match the expected {r.api_version}, Kind={r.kind}")
        if "metadata" in body and not isinstance(body["metadata"], dict):
            raise bad_request("metadata must be an object")

    @staticmethod
    def check_scope(r, namespace, meta):
        if r.namespaced:
            if meta.get("namespace") and meta["namespace"] != namespace:
                raise bad_request("the namespace of the provided object does not match the namespace sent on the request")
        elif meta.get("namespace"):
            meta.pop("namespace")

    @staticmethod
    def _check_name(r, name):
        pattern, limit = (DNS1123_LABEL, 63) if r.name_is_label else (DNS1123_SUBDOMAIN, 253)
        if not name:
            raise invalid(r, "", "metadata.name", "FieldValueRequired", "Required value: name or generateName is required")
        if len(name) > limit or not pattern.match(name):
            raise invalid(r, name, "metadata.name", "FieldValueInvalid",
                          f'Invalid value: "{name}": a lowercase RFC 1123 '
                          f'{"label" if r.name_is_label else "subdomain"} must consist of lower case alphanumeric '
                          "characters, '-' or '.', and must start and end with an alphanumeric character")

    @staticmethod
    def _normalize(r, obj):
        """The defaulting and conversion a real server applies to built-in kinds."""
        if r.kind == "Secret":
            data = dict(obj.get("data") or {})
            for key, value in (obj.pop("stringData", None) or {}).items():
                data[key] = base64.b64encode(str(value).encode()).decode()
            for key, value in data.items():
                try:
                    base64.b64decode(value or "", validate=True)
                except Exception:
                    raise bad_request(f"illegal base64 data in Secret key {key!r}")
            if data:
                obj["data"] = data
            obj["type"] = obj.get("type") or "Opaque"
        if r.group == "admissionregistration.k8s.io":
            import admission  # here, not at the top: admission.py imports this module
            admission.normalize_configuration(r, obj)
        if r.kind == "Namespace":
            meta = obj["metadata"]
            meta["labels"] = dict(meta.get("labels") or {}, **{"kubernetes.io/metadata.name": meta["name"]})
            obj["spec"] = obj.get("spec") or {"finalizers": ["kubernetes"]}
            obj.setdefault("status", {"phase": "Active"})

    # ------------------------------------------------------------------------------------------ reads

    def get(self, r, namespace, name):
        with self.cond:
            obj = self.objects[r].get((namespace or "", name))
        if obj is None:
            raise not_found(r, name)
        return obj

    def list(self, r, matches, limit=0, continue_token=None, rv=None, rv_match=None):
        """(items, list resourceVersion, next continue token or None, remainingItemCount or None)."""
        with self.cond:
            if continue_token:
                if rv:
                    raise bad_request("specifying resource version is not allowed when using continue")
                sid, list_rv, offset = self._decode_continue(continue_token)
                snapshot = self.snapshots.get(sid)
                if snapshot is None:
                    raise expired("The provided continue parameter is too old to display a consistent list result. "
                                  "You can start a new list without the continue parameter.")
                self.snapshots.move_to_end(sid)
                items = snapshot[1]
            else:
                self._check_list_rv(rv, rv_match)
                list_rv, offset = self.rv, 0
                if rv == "0" and self.rv0_unpaged:
                    limit = 0
                items = [obj for _, obj in sorted(self.objects[r].items()) if matches(obj)]
                sid = None
            if not limit or offset + limit >= len(items):
                return items[offset:], list_rv, None, None
            if sid is None:
                sid = self._remember_snapshot(list_rv, items)
            end = offset + limit
            return items[offset:end], list_rv, self._encode_continue(sid, list_rv, end), len(items) - end

    def _check_list_rv(self, rv, rv_match):
        if not rv or rv == "0":
            if rv_match == "Exact":
                raise bad_request("resourceVersionMatch: Exact requires a resourceVersion other than 0")
            return
        value = self._parse_rv(rv)
        if value > self.rv:
            raise too_large(rv, self.rv)
        if rv_match == "Exact" and value != self.rv:
            raise expired(f"too old resource version: {rv} ({self.rv})")

    @staticmethod
    def _parse_rv(rv):
        try:
            return int(rv)
        except ValueError:
            raise bad_request(f'resourceVersion: Invalid value: "{rv}": must be an integer')

    def _remember_snapshot(self, list_rv, items):
        sid = self.next_snapshot
        self.next_snapshot += 1
        self.snapshots[sid] = (list_rv, items)
        while len(self.snapshots) > self.max_snapshots:
            self.snapshots.popitem(last=False)
        return sid

    @staticmethod
    def _encode_continue(sid, list_rv, offset):
        raw = json.dumps({"v": "meta.k8s.io/v1", "rv": list_rv, "s": sid, "o": offset}, separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @staticmethod
    def _decode_continue(token):
        try:
            data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
            return int(data["s"]), int(data["rv"]), int(data["o"])
        except Exception:
            raise bad_request("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)")

    # ------------------------------------------------------------------------------------------ watch

    def open_watch(self, r, matches, rv, send_initial):
        """Where a new watch starts: (initial objects, history position, resourceVersion at start).

        send_initial: "true", "false" or None (the legacy rule: initial ADDED events when rv is "" or "0")."""
        with self.cond:
            if send_initial is None:
                send_initial = "true" if rv in (None, "", "0") else "false"
            if rv in (None, "", "0"):
                start_rv = self.rv
            else:
                start_rv = self._parse_rv(rv)
                if start_rv > self.rv:
                    raise too_large(rv, self.rv)
                if start_rv < self.horizon and send_initial != "true":
                    raise expired(f"too old resource version: {rv} ({self.horizon + 1})")
            initial = None
            if send_initial == "true":
                initial = [obj for _, obj in sorted(self.objects[r].items()) if matches(obj)]
                start_rv = self.rv
            position = self.base + bisect.bisect_right(self.history, start_rv, key=lambda e: e.rv)
            return initial, position, start_rv

    def wait_events(self, position, timeout):
        """(events after position, new position, expired?) waiting up to timeout seconds for one."""
        with self.cond:
            if position < self.base:
                return [], position, True
            if position - self.base >= len(self.history) and timeout > 0:
                self.cond.wait(timeout)
                if position < self.base:
                    return [], position, True
            events = self.history[position - self.base:]
            return events, position + len(events), False

    def wake_watchers(self):
        with self.cond:
            self.cond.notify_all()

    # ------------------------------------------------------------------------------------------ writes

    def create(self, r, namespace, body, dry_run=False):
        self.check_type(r, body)
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        self.check_scope(r, namespace, meta)
        if meta.get("resourceVersion"):
            raise ApiError(500, "InternalError", "resourceVersion should not be set on objects to be created")
        with self.cond:
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = self._generate_name(r, namespace, meta["generateName"])
            self._check_name(r, meta.get("name"))
            key = (namespace or "", meta["name"])
            if key in self.objects[r]:
                raise ApiError(409, "AlreadyExists", f'{r.group_resource} "{meta["name"]}" already exists',
                               _details(r, meta["name"]))
            if r.namespaced:
                meta["namespace"] = namespace
                self._ensure_namespace(namespace, dry_run)
            for field in ("deletionTimestamp", "deletionGracePeriodSeconds"):
                meta.pop(field, None)
            meta.pop("generation", None)
            meta.update(uid=str(uuid.uuid4()), creationTimestamp=now_rfc3339())
            if r.tracks_generation:
                meta["generation"] = 1
            if r.status:
                obj.pop("status", None)
            self._normalize(r, obj)
            return self._commit(r, key, obj, "ADDED", None, dry_run)

    def _generate_name(self, r, namespace, prefix):
        for _ in range(100):
            name = prefix[:58] + "".join(random_source.choice(GENERATE_ALPHABET) for _ in range(5))
            if (namespace or "", name) not in self.objects[r]:
                return name
        raise ApiError(409, "AlreadyExists", "could not generate a unique name")

    def _ensure_namespace(self, namespace, dry_run):
        if (("", namespace) in self.objects[self.namespaces]) or dry_run:
            return
        self._check_name(self.namespaces, namespace)
        obj = {"apiVersion": "v1", "kind": "Namespace",
               "metadata": {"name": namespace, "uid": str(uuid.uuid4()), "creationTimestamp": now_rfc3339()}}
        self._normalize(self.namespaces, obj)
        self._commit(self.namespaces, ("", namespace), obj, "ADDED", None, False)

    def update(self, r, namespace, name, body, subresource=None, dry_run=False):
        self.check_type(r, body)
        meta = body.get("metadata") or {}
        if meta.get("name") != name:
            raise bad_request(f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})")
        self.check_scope(r, namespace, dict(meta))
        with self.cond:
            old = self._current(r, namespace, name)
            if meta.get("resourceVersion") and meta["resourceVersion"] != old["metadata"]["resourceVersion"]:
                raise conflict(r, name)
            return self._write(r, namespace, name, old, body, subresource, dry_run)

    @staticmethod
    def decode_patch(content_type, raw):
        """(media type without parameters, the patch document) of a PATCH request; 400 if it is not JSON."""
        try:
            return (content_type or "").split(";")[0].strip(), json.loads(raw or b"null")
        except ValueError as e:
            raise bad_request(f"error decoding patch: {e}")

    def patch_creates(self, r, namespace, name, content_type, subresource):
        """Whether this PATCH is a server-side apply that creates the object (a 404 for a subresource)."""
        with self.cond:
            if content_type != "application/apply-patch+yaml" or (namespace or "", name) in self.objects[r]:
                return False
        if subresource:
            raise not_found(r, name)
        return True

    def patched(self, r, namespace, name, content_type, document):
        """(the stored object, what the patch makes of it), after the checks a patch gets before it is written."""
        with self.cond:
            old = self._current(r, namespace, name)
        patched = self._apply_patch(r, name, old, content_type, document)
        if not isinstance(patched, dict):
            raise patch_failed("the patched object is not a JSON object")
        patched_meta = patched.get("metadata") or {}
        if patched_meta.get("resourceVersion") != old["metadata"]["resourceVersion"]:
            if patched_meta.get("resourceVersion"):
                raise conflict(r, name)
        if patched_meta.get("name") != name:
            raise bad_request(f"the name of the object ({patched_meta.get('name')}) does not match the name on the "
                              f"URL ({name})")
        self.check_type(r, patched)
        return old, patched

    def patch(self, r, namespace, name, content_type, raw, subresource=None, dry_run=False):
        content_type, document = self.decode_patch(content_type, raw)
        with self.cond:
            if self.patch_creates(r, namespace, name, content_type, subresource):
                return self.create(r, namespace, document, dry_run)
            old, patched = self.patched(r, namespace, name, content_type, document)
            return self._write(r, namespace, name, old, patched, subresource, dry_run)

    @staticmethod
    def _apply_patch(r, name, old, content_type, document):
        try:
            if content_type == "application/json-patch+json":
                return patches.json_patch(old, document)
            if content_type in ("application/merge-patch+json", "application/apply-patch+yaml"):
                return patches.merge_patch(old, document)
            if content_type == "application/strategic-merge-patch+json" and not r.custom:
                return patches.merge_patch(old, patches.strip_strategic_directives(document))
        except patches.PatchMalformed as e:
            raise bad_request(str(e))
        except patches.PatchFailed as e:
            raise patch_failed(str(e))
        accepted = "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
        if not r.custom:
            accepted += ", application/strategic-merge-patch+json"
        raise ApiError(415, "UnsupportedMediaType", "the body of the request was in an unknown format - accepted media "
                       f"types include: {accepted}")

    def _current(self, r, namespace, name):
        obj = self.objects[r].get((namespace or "", name))
        if obj is None:
            raise not_found(r, name)
        return obj

    def _write(self, r, namespace, name, old, incoming, subresource, dry_run):
        """Commit incoming over old under the write rules; a write that changes nothing returns old."""
        old_meta = old["metadata"]
        if subresource == "status":
            new = dict(old)
            new["metadata"] = dict(old_meta)
            if incoming.get("status") is not None:
                new["status"] = copy.deepcopy(incoming["status"])
            else:
                new.pop("status", None)
        else:
            new = copy.deepcopy(incoming)
            meta = new.setdefault("metadata", {})
            for field in SERVER_OWNED_META:
                if field in old_meta:
                    meta[field] = old_meta[field]
                else:
                    meta.pop(field, None)
            if r.status:
                if "status" in old:
                    new["status"] = old["status"]
                else:
                    new.pop("status", None)
            self._normalize(r, new)
            self._check_finalizers(r, name, old_meta, meta)
            if r.tracks_generation and _spec_part(r, new) != _spec_part(r, old):
                meta["generation"] = old_meta.get("generation", 0) + 1
        new["metadata"]["resourceVersion"] = old_meta["resourceVersion"]
        if new == old:
            return old
        key = (namespace or "", name)
        if new["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers"):
            return self._commit(r, key, new, "DELETED", old, dry_run)
        return self._commit(r, key, new, "MODIFIED", old, dry_run)

    @staticmethod
    def _check_finalizers(r, name, old_meta, new_meta):
        if not old_meta.get("deletionTimestamp"):
            return
        added = [f for f in new_meta.get("finalizers") or [] if f not in (old_meta.get("finalizers") or [])]
        if added:
            quoted = ", ".join(f'"{f}"' for f in added)
            raise invalid(r, name, "metadata.finalizers", "FieldValueForbidden",
                          "Forbidden: no new finalizers can be added if the object is being deleted, found new "
                          f"finalizers []string{{{quoted}}}")

    def delete(self, r, namespace, name, options=None, dry_run=False):
        """(the object as it now is, whether it is gone)."""
        options = options or {}
        with self.cond:
            old = self._current(r, namespace, name)
            self._check_preconditions(r, name, old, options.get("preconditions") or {})
            key = (namespace or "", name)
            if r is self.namespaces and not dry_run:
                for other in resources.RESOURCES:
                    if other.namespaced:
                        for (ns, other_name) in [k for k in self.objects[other] if k[0] == name]:
                            self.delete(other, ns, other_name)
            meta = old["metadata"]
            if meta.get("finalizers"):
                if meta.get("deletionTimestamp"):
                    return old, False
                new = dict(old)
                new["metadata"] = dict(meta, deletionTimestamp=now_rfc3339(), deletionGracePeriodSeconds=0)
                if "generation" in meta:  # markAsDeleting: deletion is a change of intent
                    new["metadata"]["generation"] = meta["generation"] + 1
                return self._commit(r, key, new, "MODIFIED", old, dry_run), False
            new = dict(old)
            new["metadata"] = dict(meta)
            return self._commit(r, key, new, "DELETED", old, dry_run), True

    @staticmethod
    def _check_preconditions(r, name, old, preconditions):
        meta = old["metadata"]
        if preconditions.get("uid") and preconditions["uid"] != meta.get("uid"):
            raise ApiError(409, "Conflict", f"Precondition failed: UID in precondition: {preconditions['uid']}, "
                           f"UID in object meta: {meta.get('uid')}", _details(r, name))
        if preconditions.get("resourceVersion") and preconditions["resourceVersion"] != meta.get("resourceVersion"):
            raise ApiError(409, "Conflict", "Precondition failed: ResourceVersion in precondition: "
                           f"{preconditions['resourceVersion']}, ResourceVersion in object meta: "
                           f"{meta.get('resourceVersion')}", _details(r, name))

    def delete_collection(self, r, matches, options=None, dry_run=False):
        with self.cond:
            targets = [obj for _, obj in sorted(self.objects[r].items()) if matches(obj)]
            return [self.delete(r, o["metadata"].get("namespace"), o["metadata"]["name"], options, dry_run)[0]
                    for o in targets]

    def counts(self):
        with self.cond:
            return {r.group_resource: len(objs) for r, objs in self.objects.items()}, len(self.history)
