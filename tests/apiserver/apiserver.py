#!/usr/bin/env python3
"""A Kubernetes API server for stowage's tests and benchmarks: real HTTP, real watches, no etcd.

    apiserver.py [--port 0] [--port-file F] [--cert C --key K] [--token T] [--token-user TOKEN=USER ...]
                 [--basic-auth USER:PASSWORD ...] [--client-ca CA] [--authorize-rbac [--enforce-owner-references]]
                 [--webhook-service NAMESPACE/NAME[:PORT]=HOST:PORT ...] [--bookmark-interval S]
                 [--watch-timeout S] [--history N] [--rv0-unpaged] [--keep-running] [--verbose]

Listens on 127.0.0.1 only, HTTP or (with --cert/--key) HTTPS, HTTP/1.1 with keep-alive. With any of
--token, --token-user, --basic-auth or --client-ca, every API request (discovery included) must
authenticate by one of them (else 401 and a Status); see auth.py. Prints
`listening on http(s)://127.0.0.1:PORT` once ready and writes PORT to --port-file. It exits when the
process that started it does (unless --keep-running), so a crashed test leaves no server behind.

Authorization: with --authorize-rbac, every user but the --token administrator is allowed a resource
request only when the Roles, ClusterRoles and bindings stored here grant it (rbac.py); a denial is the
real server's 403 and is counted in /__stats (`forbidden`, `denials`); --enforce-owner-references adds
the OwnerReferencesPermissionEnforcement admission plugin's checks. Discovery, OpenAPI and
`POST /apis/authentication.k8s.io/v1/selfsubjectreviews` (`kubectl auth whoami`) are open to every
authenticated user.

Admission: every write goes through the admission webhooks the stored Mutating/ValidatingWebhookConfigurations
name (admission.py): AdmissionReview over TLS verified against their caBundle, failurePolicy, timeoutSeconds,
rules and selectors as a real server honours them. A clientConfig.service is reached at the address
--webhook-service maps it to (a test-only stand-in for cluster DNS); webhook warnings become Warning headers.

Kinds: core/v1 namespaces (also created implicitly by the first object in a namespace), secrets,
configmaps, serviceaccounts, pods; events.k8s.io/v1 events; coordination.k8s.io/v1 leases; batch/v1 jobs
(no job controller: tests write job status themselves); apps/v1 deployments (no controller either);
rbac.authorization.k8s.io/v1 roles, clusterroles, rolebindings, clusterrolebindings;
admissionregistration.k8s.io/v1 mutatingwebhookconfigurations, validatingwebhookconfigurations;
storage.kubestash.com/v1alpha1 backupstorages, repositories and snapshots.
Verbs: get, list (label/field selectors, limit/continue), watch, create (generateName), update,
patch (merge, JSON patch, strategic merge for built-in kinds only, server-side apply approximated as
a merge), delete (finalizers), deletecollection, the status subresource, dryRun=All. Discovery,
OpenAPI v3 and the meta.k8s.io Table / PartialObjectMetadata(List) views are served; see
resources.py and store.py for the rules.

Watches (GET collection ?watch=1): resourceVersion, allowWatchBookmarks (a BOOKMARK every
--bookmark-interval seconds), timeoutSeconds (default --watch-timeout), sendInitialEvents with
resourceVersionMatch=NotOlderThan (ADDED for the current state, then a BOOKMARK annotated
k8s.io/initial-events-end). A resourceVersion older than the event history gives HTTP 200, one ERROR
event with a 410 Expired Status, then EOF; a newer one than the server has gives 504 with cause
ResourceVersionTooLarge.

Lists page with limit/continue at any resourceVersion (so clients always exercise paging); with
--rv0-unpaged, resourceVersion=0 lists ignore limit as a 1.32 server's watch cache does.

Test controls (no token needed; faults apply to resource requests, not to discovery or controls):
  GET  /__stats     request counters by verb and by "verb path", responses by code, list continues,
                    watch connections (total, active), 401s, 403s from RBAC (and their messages),
                    faults armed and served, resourceVersion, object counts.
  POST /__control   {"action": A, ...} with A one of
       fail | delay | drop_watch | stall_watch | garbage_watch   arm a fault (see faults.py)
       clear_faults   disarm all faults and release stalled watches
       compact        drop the event history and every list snapshot (old watches/continues -> 410)
       close_watches  end every open watch cleanly (EOF)
       stall_open_watches  every watch open now goes silent with its socket open (a hung load
                      balancer): no events, no bookmarks, no EOF, until the client closes it or
                      clear_faults releases it (then the server closes it); later watches are served
       reset_stats
       create         {"objects": [...]} create many objects at once (benchmark seeding)
       set            {"bookmark_interval": S, "watch_timeout": S, "token": T,
                       "webhook_services": ["NAMESPACE/NAME[:PORT]=HOST:PORT", ...]}
"""
import argparse
import gc
import json
import os
import select
import socket
import ssl
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import admission as admission_module  # noqa: E402
import auth  # noqa: E402
import faults as faults_module  # noqa: E402
import label_selectors  # noqa: E402
import protobuf  # noqa: E402
import rbac  # noqa: E402
import resources  # noqa: E402
import store as store_module  # noqa: E402
from store import ApiError, bad_request  # noqa: E402

WATCH_BATCH = 1000
SELF_SUBJECT_REVIEWS = "/apis/authentication.k8s.io/v1/selfsubjectreviews"
REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed",
           409: "Conflict", 410: "Expired", 422: "Invalid", 429: "TooManyRequests", 500: "InternalError",
           503: "ServiceUnavailable", 504: "Timeout"}


def dumps(obj):
    return json.dumps(obj, separators=(",", ":")).encode()


class WatchAborted(Exception):
    """The watch connection is closed or must be: dropped, stalled, or the client went away."""


class State:
    """Everything the request handlers share."""

    def __init__(self, args):
        self.store = store_module.Store(max_history=args.history, rv0_unpaged=args.rv0_unpaged)
        self.faults = faults_module.Faults()
        self.stats = faults_module.Stats()
        self.token = args.token
        self.authenticator = auth.Authenticator(args.token, args.token_user, args.basic_auth, bool(args.client_ca))
        self.authorizer = rbac.Authorizer(self.store, resources) if args.authorize_rbac else None
        self.admission = admission_module.Admission(self.store, self.stats, args.webhook_service)
        self.enforce_owner_references = args.enforce_owner_references
        self.bookmark_interval = args.bookmark_interval
        self.watch_timeout = args.watch_timeout
        self.verbose = args.verbose
        self.close_generation = 0
        self.stall_generation = 0   # stall_open_watches bumps it: watches opened before it go silent
        self.address = ""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "stowage-test-apiserver"
    sys_version = ""
    state = None

    def setup(self):
        super().setup()
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    def log_message(self, fmt, *args):
        if self.state.verbose:
            sys.stderr.write("apiserver: %s\n" % (fmt % args))

    def do_GET(self):
        self.dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    # ------------------------------------------------------------------------------------------ plumbing

    def dispatch(self):
        url = urlsplit(self.path)
        self.url_path = url.path
        self.query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        self.streaming = False
        self.warnings = []  # admission webhooks' warnings: Warning headers on the response
        try:
            self.body = self.read_body()
            if self.url_path.startswith("/__"):
                return self.control()
            self.user = self.authenticate()
            self.route()
        except ApiError as e:
            if self.streaming:
                self.close_connection = True
            else:
                self.send_status(e)
        except (WatchAborted, BrokenPipeError, ConnectionResetError, ssl.SSLError, socket.timeout):
            self.close_connection = True
        except Exception as e:  # a bug here must show as a 500 and a trace, not a hung client
            traceback.print_exc()
            if self.streaming:
                self.close_connection = True
            else:
                self.send_status(ApiError(500, "InternalError", f"test API server bug: {e!r}"))

    def authenticate(self):
        """The User making this request (see auth.py), or a 401 Status."""
        certificate = None
        if isinstance(self.connection, ssl.SSLSocket):
            certificate = self.connection.getpeercert()
        user = self.state.authenticator.authenticate(self.headers.get("Authorization"), certificate)
        if user is None:
            self.state.stats.add("unauthorized")
            raise ApiError(401, "Unauthorized", "Unauthorized")
        return user

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def json_body(self):
        if (self.headers.get("Content-Type") or "").startswith("application/vnd.kubernetes.protobuf"):
            try:
                return protobuf.decode(self.body)
            except (protobuf.Unsupported, IndexError, UnicodeDecodeError) as e:
                raise ApiError(415, "UnsupportedMediaType", f"the body of the request was in an unknown format - "
                               f"accepted media types include: application/json ({e})")
        try:
            return json.loads(self.body or b"null")
        except ValueError as e:
            raise bad_request(f"the request body is not JSON: {e}")

    def send_raw(self, code, body, content_type="application/json", headers=None):
        self.state.stats.code(code)
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache, private")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        for text in self.warnings:  # k8s.io/apiserver/pkg/warning: 299 - "text", quoted-string escapes
            quoted = text.replace("\\", "\\\\").replace('"', '\\"').encode("latin-1", "replace").decode("latin-1")
            self.send_header("Warning", f'299 - "{quoted}"')
        # One write for headers and body (flush_headers joins the buffer): no Nagle delay between them.
        self._headers_buffer.append(b"\r\n")
        self._headers_buffer.append(body)
        self.flush_headers()

    def send_json(self, code, obj, headers=None):
        self.send_raw(code, dumps(obj), headers=headers)

    def send_status(self, error):
        headers = {"Retry-After": str(int(error.retry_after))} if error.retry_after is not None else None
        self.send_json(error.code, error.status(), headers)

    def begin_stream(self):
        self.state.stats.code(200)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        self.streaming = True

    def write_chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def end_stream(self):
        self.wfile.write(b"0\r\n\r\n")
        self.streaming = False

    def abort_connection(self):
        """Close the TCP connection without ending the HTTP response: the client sees a cut stream."""
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.close_connection = True

    def client_gone(self, timeout):
        """A client never writes while it reads a watch, so readable means EOF (or a TLS close)."""
        try:
            return bool(select.select([self.connection], [], [], timeout)[0])
        except (OSError, ValueError):
            return True

    def negotiate(self):
        """The view the Accept header asks for first among those served: json, table or partial."""
        for part in (self.headers.get("Accept") or "application/json").split(","):
            fields = [f.strip() for f in part.split(";")]
            params = dict(f.split("=", 1) for f in fields[1:] if "=" in f)
            if "as" in params:
                if params.get("g") == "meta.k8s.io" and params.get("v") in ("v1", "v1beta1"):
                    if params["as"] == "Table":
                        return "table"
                    if params["as"] in ("PartialObjectMetadata", "PartialObjectMetadataList"):
                        return "partial"
                continue
            if fields[0].lower() in ("application/json", "*/*", "application/*", ""):
                return "json"
        raise ApiError(406, "NotAcceptable", "only the following media types are accepted: application/json, "
                       "application/json;as=Table;v=v1;g=meta.k8s.io, "
                       "application/json;as=PartialObjectMetadata(List);v=v1;g=meta.k8s.io")

    # ------------------------------------------------------------------------------------------ routing

    def route(self):
        path = self.url_path.rstrip("/") or "/"
        segments = [s for s in path.split("/") if s]
        document = self.discovery(path, segments)
        if document is not None:
            self.state.stats.request("discovery", path)
            return self.send_json(200, document)
        if path in ("/healthz", "/readyz", "/livez"):
            return self.send_raw(200, b"ok", "text/plain; charset=utf-8")
        if self.command == "POST" and path == SELF_SUBJECT_REVIEWS:
            return self.self_subject_review()
        self.resource_request(segments)

    def self_subject_review(self):
        """`kubectl auth whoami`: who the server thinks the caller is (any authenticated user may ask)."""
        self.state.stats.request("create", self.url_path)
        user = {"username": self.user.name, "groups": list(self.user.groups)}
        self.send_json(201, {"kind": "SelfSubjectReview", "apiVersion": "authentication.k8s.io/v1",
                             "metadata": {"creationTimestamp": None}, "status": {"userInfo": user}})

    def discovery(self, path, segments):
        if self.command != "GET":
            return None
        if path == "/version":
            return resources.version_info()
        if path == "/api":
            return resources.api_versions(self.state.address)
        if path == "/apis":
            return resources.api_group_list()
        if path == "/openapi/v3":
            return resources.openapi_index()
        if path.startswith("/openapi/v3/"):
            return resources.openapi_for_path(path[len("/openapi/v3/"):]) or self.not_found()
        if len(segments) == 2 and segments[0] == "apis":
            return resources.api_group(segments[1]) or self.not_found()
        if (len(segments) == 2 and segments[0] == "api") or (len(segments) == 3 and segments[0] == "apis"):
            return resources.api_resource_list("/".join(segments[1:])) or self.not_found()
        return None

    @staticmethod
    def not_found():
        raise ApiError(404, "NotFound", "the server could not find the requested resource")

    def parse_resource_path(self, segments):
        """(resource, namespace, name, subresource) of /api/v1/... or /apis/G/V/..."""
        if len(segments) >= 3 and segments[0] == "api":
            group_version, rest = segments[1], segments[2:]
        elif len(segments) >= 4 and segments[0] == "apis":
            group_version, rest = f"{segments[1]}/{segments[2]}", segments[3:]
        else:
            self.not_found()
        namespace = None
        if len(rest) >= 3 and rest[0] == "namespaces" and resources.find(group_version, rest[2]):
            namespace, rest = rest[1], rest[2:]
        r = resources.find(group_version, rest[0])
        if r is None or len(rest) > 3:
            self.not_found()
        name = rest[1] if len(rest) > 1 else None
        subresource = rest[2] if len(rest) > 2 else None
        if subresource and (subresource != "status" or not r.status):
            self.not_found()
        if (r.namespaced and name and namespace is None) or (not r.namespaced and namespace is not None):
            self.not_found()
        return r, namespace, name, subresource

    def verb_of(self, name):
        if self.command == "GET":
            if name:
                return "get"
            return "watch" if self.query.get("watch") in ("1", "true") else "list"
        verbs = {("POST", False): "create", ("PUT", True): "update", ("PATCH", True): "patch",
                 ("DELETE", True): "delete", ("DELETE", False): "deletecollection"}
        verb = verbs.get((self.command, bool(name)))
        if verb is None:
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        return verb

    def resource_request(self, segments):
        r, namespace, name, subresource = self.parse_resource_path(segments)
        verb = self.verb_of(name)
        if self.state.authorizer:
            self.authorize(r, namespace, name, subresource, verb)
            if self.state.enforce_owner_references and verb in ("create", "update", "patch") and not subresource:
                self.admit_owner_references(r, namespace, name, verb)
        self.state.stats.request(verb, self.url_path)
        if self.apply_faults(verb):
            return
        if verb == "create" and r.namespaced and namespace is None:
            raise ApiError(405, "MethodNotAllowed", "create needs a namespace in the path")
        dry_run = self.query.get("dryRun") == "All"
        store, admission = self.state.store, self.state.admission
        if verb == "get":
            return self.send_view(r, store.get(r, namespace, name))
        if verb == "list":
            return self.serve_list(r, namespace)
        if verb == "watch":
            return self.serve_watch(r, namespace)
        if verb == "create":
            return self.send_json(201, admission.create(r, namespace, self.json_body(), self.admission_context(),
                                                        dry_run))
        if verb == "update":
            return self.send_json(200, admission.update(r, namespace, name, self.json_body(), subresource,
                                                        self.admission_context(), dry_run))
        if verb == "patch":
            obj, created = admission.patch(r, namespace, name, self.headers.get("Content-Type"), self.body,
                                           subresource, self.admission_context(), dry_run)
            return self.send_json(201 if created else 200, obj)
        if verb == "delete":
            return self.serve_delete(r, namespace, name, dry_run)
        return self.serve_delete_collection(r, namespace, dry_run)

    def admission_context(self):
        return admission_module.Context(self.user, self.query.get("fieldManager"), self.warnings)

    def authorize(self, r, namespace, name, subresource, verb):
        """--authorize-rbac: a 403 Status (counted in the stats) unless RBAC grants the request.
        The request's attributes as a real server derives them (requestinfo.go): a namespace's own
        namespace is its name; a list or watch with the field selector metadata.name=X names X."""
        if r.plural == "namespaces" and not r.group and name:
            namespace = name
        if not name and verb in ("list", "watch"):
            try:
                fields = label_selectors.parse_field_selector(self.query.get("fieldSelector"))
            except label_selectors.SelectorError:
                fields = []
            name = next((v for f, op, v in fields if f == "metadata.name" and op in ("=", "==")), None)
        request = rbac.Request(verb, r.group, r.plural, subresource or "", namespace or "", name or "",
                               r.group_resource)
        try:
            self.state.authorizer.check(self.user, request)
        except ApiError as e:
            self.state.stats.deny(e.message)
            raise

    def admit_owner_references(self, r, namespace, name, verb):
        """--enforce-owner-references: the object as this write would store it (a dry run for a patch),
        checked against the stored one by rbac.check_owner_references."""
        store = self.state.store
        if verb == "create":
            new, old = self.json_body(), None
            name = ((new or {}).get("metadata") or {}).get("name") or "" if isinstance(new, dict) else ""
        else:
            with store.cond:
                old = store.objects[r].get((namespace or "", name))
            if old is None:
                return  # the write itself answers 404 (or creates, for a patch of a missing object)
            new = self.json_body() if verb == "update" else store.patch(
                r, namespace, name, self.headers.get("Content-Type"), self.body, None, True)
        if not isinstance(new, dict):
            return
        request = rbac.Request(verb, r.group, r.plural, "", namespace or "", name or "", r.group_resource)
        try:
            self.state.authorizer.check_owner_references(self.user, request, new, old, resources.by_kind)
        except ApiError as e:
            self.state.stats.deny(e.message)
            raise

    def apply_faults(self, verb):
        """Serve an armed fault for this request; True when it answered the request."""
        faults = self.state.faults
        delay = faults.take(("delay",), self.url_path, verb, self.command)
        if delay:
            time.sleep(delay["ms"] / 1000.0)
        fault = faults.take(("fail",), self.url_path, verb, self.command)
        if not fault:
            return False
        code = fault["code"]
        error = ApiError(code, fault.get("reason") or REASONS.get(code, "InternalError"),
                         fault.get("message") or f"injected fault: {code}", retry_after=fault.get("retry_after"))
        if verb == "watch" and code == 410 and not fault.get("http"):
            error.message = fault.get("message") or "too old resource version: 1 (2)"
            self.begin_stream()
            self.write_chunk(dumps({"type": "ERROR", "object": error.status()}) + b"\n")
            self.end_stream()
        else:
            self.send_status(error)
        return True

    # ------------------------------------------------------------------------------------------ verbs

    def send_view(self, r, obj):
        view = self.negotiate()
        if view == "partial":
            return self.send_json(200, resources.partial_metadata(obj))
        if view == "table":
            meta = {"resourceVersion": obj["metadata"].get("resourceVersion", "")}
            return self.send_json(200, resources.table(r, [obj], meta, self.query.get("includeObject", "Metadata")))
        self.send_json(200, obj)

    def make_filter(self, r, namespace):
        return store_module.make_filter(r, namespace, self.query.get("labelSelector"), self.query.get("fieldSelector"))

    def serve_list(self, r, namespace):
        view = self.negotiate()
        try:
            limit = max(0, int(self.query.get("limit") or 0))
        except ValueError:
            raise bad_request(f"limit: Invalid value: {self.query.get('limit')!r}")
        token = self.query.get("continue")
        items, rv, next_token, remaining = self.state.store.list(
            r, self.make_filter(r, namespace), limit, token, self.query.get("resourceVersion"),
            self.query.get("resourceVersionMatch"))
        if token:
            self.state.stats.add("list_continues")
        meta = {"resourceVersion": str(rv)}
        if next_token:
            self.state.stats.add("list_pages_with_continue")
            meta["continue"] = next_token
            meta["remainingItemCount"] = remaining
        if view == "partial":
            return self.send_json(200, resources.partial_metadata_list(items, meta))
        if view == "table":
            return self.send_json(200, resources.table(r, items, meta, self.query.get("includeObject", "Metadata")))
        if not r.custom:  # built-in lists carry no kind/apiVersion on their items
            items = [{k: v for k, v in o.items() if k not in ("kind", "apiVersion")} for o in items]
        self.send_json(200, {"kind": r.list_kind, "apiVersion": r.api_version, "metadata": meta, "items": items})

    def delete_options(self):
        options = self.json_body() if self.body else {}
        if not isinstance(options, dict):
            raise bad_request("DeleteOptions must be an object")
        return options

    def serve_delete(self, r, namespace, name, dry_run):
        options = self.delete_options()
        dry_run = dry_run or "All" in (options.get("dryRun") or [])
        obj, gone = self.state.admission.delete(r, namespace, name, options, self.admission_context(), dry_run)
        if gone and not r.custom:
            return self.send_json(200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                                        "details": {"name": name, "group": r.group, "kind": r.plural,
                                                    "uid": obj["metadata"].get("uid")}})
        self.send_json(200, obj)

    def serve_delete_collection(self, r, namespace, dry_run):
        options = self.delete_options()
        dry_run = dry_run or "All" in (options.get("dryRun") or [])
        items = self.state.admission.delete_collection(r, self.make_filter(r, namespace), options,
                                                       self.admission_context(), dry_run)
        self.send_json(200, {"kind": r.list_kind, "apiVersion": r.api_version,
                             "metadata": {"resourceVersion": str(self.state.store.current_rv())}, "items": items})

    def serve_watch(self, r, namespace):
        q = self.query
        bookmarks = q.get("allowWatchBookmarks") in ("1", "true")
        send_initial = q.get("sendInitialEvents")
        if send_initial == "true" and q.get("resourceVersionMatch") != "NotOlderThan":
            raise ApiError(422, "Invalid", "resourceVersionMatch: Forbidden: sendInitialEvents requires setting "
                           "resourceVersionMatch to NotOlderThan")
        if send_initial == "true" and not bookmarks:
            raise ApiError(422, "Invalid", "allowWatchBookmarks: Forbidden: sendInitialEvents requires setting "
                           "allowWatchBookmarks to true")
        try:
            timeout = float(q.get("timeoutSeconds") or 0) or self.state.watch_timeout
        except ValueError:
            raise bad_request(f"timeoutSeconds: Invalid value: {q.get('timeoutSeconds')!r}")
        stream = WatchStream(self, r, self.make_filter(r, namespace), self.negotiate(), bookmarks)
        try:
            initial, position, start_rv = self.state.store.open_watch(
                r, stream.matches, q.get("resourceVersion"), send_initial)
        except ApiError as e:
            if e.code != 410:
                raise
            self.begin_stream()
            self.write_chunk(stream.error_line(e))
            return self.end_stream()
        self.state.stats.add("watch_connections")
        self.state.stats.add("active_watches")
        try:
            stream.run(initial, send_initial == "true", position, start_rv, time.monotonic() + timeout)
        finally:
            self.state.stats.add("active_watches", -1)

    # ------------------------------------------------------------------------------------------ controls

    def control(self):
        state = self.state
        if self.command == "GET" and self.url_path == "/__stats":
            counts, history = state.store.counts()
            stats = dict(state.stats.snapshot(), faults=state.faults.snapshot(), objects=counts,
                         events_in_history=history, resourceVersion=str(state.store.current_rv()))
            return self.send_json(200, stats)
        if self.command != "POST" or self.url_path != "/__control":
            return self.send_json(404, {"error": f"no control {self.command} {self.url_path}"})
        try:
            spec = json.loads(self.body or b"{}")
            result = self.control_action(spec.get("action"), spec)
        except (ValueError, KeyError, TypeError) as e:
            return self.send_json(400, {"error": str(e)})
        except ApiError as e:
            return self.send_json(e.code, {"error": e.message, "status": e.status()})
        self.send_json(200, dict({"ok": True}, **(result or {})))

    def control_action(self, action, spec):
        state = self.state
        if action in faults_module.KINDS:
            return {"fault": state.faults.arm(spec)}
        if action == "clear_faults":
            return state.faults.clear()
        if action == "compact":
            return state.store.compact()
        if action == "close_watches":
            state.close_generation += 1
            return state.store.wake_watchers()
        if action == "stall_open_watches":
            state.stall_generation += 1
            return state.store.wake_watchers()
        if action == "reset_stats":
            return state.stats.reset()
        if action == "create":
            return self.bulk_create(spec.get("objects") or [])
        if action == "set":
            for spec_text in spec.get("webhook_services") or []:
                state.admission.map_service(spec_text)
            for key in ("bookmark_interval", "watch_timeout", "token"):
                if key in spec:
                    setattr(state, key, spec[key])
            if "token" in spec:
                state.authenticator.admin_token = spec["token"]
            return None
        raise ValueError(f"unknown action {action!r}")

    def bulk_create(self, objects):
        for obj in objects:
            r = resources.by_kind(obj.get("apiVersion"), obj.get("kind"))
            if r is None:
                raise ValueError(f"unknown kind {obj.get('apiVersion')}/{obj.get('kind')}")
            namespace = (obj.get("metadata") or {}).get("namespace") or "default" if r.namespaced else None
            self.state.store.create(r, namespace, obj)
        return {"created": len(objects), "resourceVersion": str(self.state.store.current_rv())}


class WatchStream:
    """One watch response: initial events, then history events through the filter, bookmarks, faults."""

    def __init__(self, handler, r, matches, view, bookmarks):
        self.handler, self.r, self.matches, self.view, self.bookmarks = handler, r, matches, view, bookmarks
        self.state = handler.state
        self.include_object = handler.query.get("includeObject", "Metadata")
        self.table_headers_sent = False
        self.stall_generation = self.state.stall_generation  # stalled once stall_open_watches moves it

    # ---- encoding

    def encode(self, type_, obj, event=None):
        if self.view == "json" and event is not None and event.type == type_ and event.obj is obj:
            return event.json_line()
        if self.view == "partial":
            obj = resources.partial_metadata(obj)
        elif self.view == "table":
            meta = {"resourceVersion": obj["metadata"].get("resourceVersion", "")}
            obj = resources.table(self.r, [obj], meta, self.include_object, headers=not self.table_headers_sent)
            self.table_headers_sent = True
        return dumps({"type": type_, "object": obj}) + b"\n"

    def bookmark_line(self, rv, initial_end=False):
        meta = {"resourceVersion": str(rv)}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        if self.view == "partial":
            obj = {"kind": "PartialObjectMetadata", "apiVersion": resources.META_V1, "metadata": meta}
        elif self.view == "table":
            obj = {"kind": "Table", "apiVersion": resources.META_V1, "metadata": meta, "rows": []}
        else:
            obj = {"kind": self.r.kind, "apiVersion": self.r.api_version, "metadata": dict(meta, creationTimestamp=None)}
        return dumps({"type": "BOOKMARK", "object": obj}) + b"\n"

    @staticmethod
    def error_line(error):
        return dumps({"type": "ERROR", "object": error.status()}) + b"\n"

    def translate(self, event):
        """The line this watcher sees for an event, or None (other kind, or outside its selectors)."""
        if event.resource is not self.r:
            return None
        now_matches = self.matches(event.obj)
        if event.type in ("ADDED", "DELETED"):
            return self.encode(event.type, event.obj, event) if now_matches else None
        was_matching = event.old is not None and self.matches(event.old)
        if now_matches:
            return self.encode("MODIFIED" if was_matching else "ADDED", event.obj, event)
        if was_matching:  # left the selection: DELETED with the old content at the new resourceVersion
            old = dict(event.old)
            old["metadata"] = dict(event.old["metadata"], resourceVersion=str(event.rv))
            return self.encode("DELETED", old)
        return None

    # ---- sending

    def send(self, lines):
        if self.state.stall_generation != self.stall_generation:
            self.stall()
        fault = self.state.faults.take(("stall_watch", "drop_watch", "garbage_watch"), self.handler.url_path,
                                       "watch", "GET")
        if fault and fault["kind"] == "stall_watch":
            self.stall()
        if fault and fault["kind"] == "garbage_watch":
            self.handler.write_chunk(b"<html>502 Bad Gateway</html>\n")
            self.handler.wfile.flush()
            self.handler.abort_connection()
            raise WatchAborted()
        if fault:
            first = lines[0]
            self.handler.write_chunk(first[:max(1, len(first) // 2)])
            self.handler.wfile.flush()
            self.handler.abort_connection()
            raise WatchAborted()
        for start in range(0, len(lines), WATCH_BATCH):
            self.handler.write_chunk(b"".join(lines[start:start + WATCH_BATCH]))

    def stall(self):
        generation = self.state.faults.release_generation
        while self.state.faults.release_generation == generation:
            if self.handler.client_gone(0.2):
                break
        self.handler.abort_connection()
        raise WatchAborted()

    def run(self, initial, initial_end_bookmark, position, start_rv, deadline):
        handler, state = self.handler, self.state
        handler.begin_stream()
        if state.faults.take(("stall_watch",), handler.url_path, "watch", "GET"):
            self.stall()
        if initial:
            self.send([self.encode("ADDED", obj) for obj in initial])
        if initial_end_bookmark and self.bookmarks:
            self.send([self.bookmark_line(start_rv, initial_end=True)])
        seen_rv, close_generation = start_rv, state.close_generation
        next_bookmark = time.monotonic() + state.bookmark_interval
        while True:
            if state.stall_generation != self.stall_generation:
                self.stall()
            now = time.monotonic()
            if now >= deadline or state.close_generation != close_generation:
                break
            wait = min(deadline - now, 1.0, max(0.0, next_bookmark - now) if self.bookmarks else 1.0)
            events, position, expired = state.store.wait_events(position, wait)
            if expired:
                self.send([self.error_line(store_module.expired(
                    f"too old resource version: {seen_rv} ({state.store.horizon + 1})"))])
                break
            if events:
                seen_rv = events[-1].rv
                lines = [line for line in map(self.translate, events) if line]
                if lines:
                    self.send(lines)
            if self.bookmarks and time.monotonic() >= next_bookmark:
                self.send([self.bookmark_line(seen_rv)])
                next_bookmark = time.monotonic() + state.bookmark_interval
            if not events and handler.client_gone(0):
                raise WatchAborted()
        handler.end_stream()


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def handle_error(self, request, client_address):
        if Handler.state.verbose:
            super().handle_error(request, client_address)


def exit_with_parent():
    """A test that crashes never runs its cleanup: do not outlive it."""
    parent = os.getppid()
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: any free port)")
    p.add_argument("--port-file", help="write the port here once listening")
    p.add_argument("--cert", help="PEM certificate chain: serve HTTPS")
    p.add_argument("--key", help="PEM private key of --cert")
    p.add_argument("--token", help="the administrator's bearer token (always authorized)")
    p.add_argument("--token-user", action="append", default=[], metavar="TOKEN=USERNAME",
                   help="another bearer token and the user it authenticates as (repeatable)")
    p.add_argument("--basic-auth", action="append", default=[], metavar="USER:PASSWORD",
                   help="accept HTTP basic authentication with this user and password (repeatable)")
    p.add_argument("--client-ca", help="HTTPS: ask for client certificates and accept those this CA signed "
                                       "(user = the certificate's CN, groups = its O)")
    p.add_argument("--authorize-rbac", action="store_true",
                   help="authorize every user but the --token administrator by the RBAC objects stored here")
    p.add_argument("--enforce-owner-references", action="store_true",
                   help="with --authorize-rbac: the OwnerReferencesPermissionEnforcement admission plugin "
                        "(blockOwnerDeletion needs update on the owner's finalizers)")
    p.add_argument("--webhook-service", action="append", default=[], metavar="NAMESPACE/NAME[:PORT]=HOST:PORT",
                   help="admission webhooks: send calls for this service (port 443 unless given) to HOST:PORT, "
                        "verifying the certificate for NAME.NAMESPACE.svc (repeatable; test-only stand-in for "
                        "cluster DNS)")
    p.add_argument("--bookmark-interval", type=float, default=60.0, help="seconds between BOOKMARK events")
    p.add_argument("--watch-timeout", type=float, default=1800.0, help="watch length when timeoutSeconds is unset")
    p.add_argument("--history", type=int, default=100000, help="events kept for watches to resume from")
    p.add_argument("--rv0-unpaged", action="store_true",
                   help="lists with resourceVersion=0 ignore limit and come in one page, as from a 1.32 watch cache")
    p.add_argument("--keep-running", action="store_true", help="do not exit when the parent process exits")
    p.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = p.parse_args()
    if bool(args.cert) != bool(args.key):
        p.error("--cert and --key go together")
    if args.enforce_owner_references and not args.authorize_rbac:
        p.error("--enforce-owner-references needs --authorize-rbac")
    if args.client_ca and not args.cert:
        p.error("--client-ca needs HTTPS (--cert and --key)")
    try:
        auth.Authenticator(args.token, args.token_user, args.basic_auth)
        for spec in args.webhook_service:
            admission_module.Admission.parse_service(spec)
    except ValueError as e:
        p.error(str(e))

    # The store holds many long-lived small objects: with the default thresholds the cyclic collector
    # rescans all of them over and over while a benchmark fills it. Nothing here makes cycles that matter.
    gc.set_threshold(200000, 50, 1000)
    Handler.state = State(args)
    server = Server(("127.0.0.1", args.port), Handler)
    scheme = "http"
    if args.cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.cert, args.key)
        if args.client_ca:
            context.verify_mode = ssl.CERT_OPTIONAL  # ask for a certificate; clients without one are let in
            context.load_verify_locations(cafile=args.client_ca)
        context.set_alpn_protocols(["http/1.1"])
        # Handshakes happen in the connection's thread, on its first read, not in the accept loop.
        server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
        scheme = "https"
    port = server.server_address[1]
    Handler.state.address = f"127.0.0.1:{port}"
    if not args.keep_running:
        threading.Thread(target=exit_with_parent, daemon=True).start()
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as f:
            f.write(str(port))
        os.replace(args.port_file + ".tmp", args.port_file)
    print(f"listening on {scheme}://127.0.0.1:{port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
