"""Admission webhooks, as kube-apiserver's MutatingAdmissionWebhook and ValidatingAdmissionWebhook plugins
run them (k8s.io/apiserver/pkg/admission/plugin/webhook), for every kind this server serves.

Configurations: admissionregistration.k8s.io/v1 MutatingWebhookConfiguration and
ValidatingWebhookConfiguration (cluster-scoped), defaulted as a real server does (failurePolicy Fail,
matchPolicy Equivalent, namespaceSelector and objectSelector {}, timeoutSeconds 10, rules[].scope "*",
service port 443, reinvocationPolicy Never) and validated with its messages (names with three segments and
unique, sideEffects None or NoneOnDryRun, admissionReviewVersions with v1 or v1beta1, timeoutSeconds 1-30,
rules, selectors, exactly one of url and service). Writing them is never sent to a webhook.

Which webhooks a write calls: those with a rule matching the request (operations CREATE, UPDATE, DELETE
or `*`; apiGroups and apiVersions or `*`; resources `res`, `res/sub`, `res/*`, `*`, `*/sub`, `*/*`; scope
Cluster, Namespaced or `*`, a Namespace counting as cluster-scoped), whose namespaceSelector matches the
labels of the object's namespace (cluster-scoped objects always match; a Namespace is judged by its own
labels; a namespace this server is about to create implicitly has only kubernetes.io/metadata.name) and
whose objectSelector matches the labels of the new or of the old object.

A write (create; update and patch, which are UPDATE, or CREATE when a server-side apply creates; delete,
and each item of a deletecollection) goes:
1. through the mutating webhooks, ordered by configuration name then list order, each one seeing the
   object the previous ones made (an answer's base64 JSON patch, patchType JSONPatch, is applied);
2. through the store's write rules as a dry run: what would be stored;
3. through the validating webhooks (one after the other in the same order; a real server calls them in
   parallel, which changes only which denial wins when several deny) with that object;
4. into the store, pinned to the resourceVersion the webhooks saw: when another write came in between,
   it starts again at 1, as the real server's GuaranteedUpdate does.

A call: POST of an AdmissionReview (v1; v1beta1 when that is all the webhook lists) over HTTPS to
clientConfig.url, or for clientConfig.service to https://NAME.NAMESPACE.svc:PORT/PATH?timeout=Ns, which
is sent to the address `--webhook-service NAMESPACE/NAME:PORT=HOST:PORT` (or the control `set` with
`webhook_services`) maps that service to: a test-only stand-in for cluster DNS and the service's endpoints.
The server certificate is verified against caBundle (the system roots without one) for the name
NAME.NAMESPACE.svc (for a url, its host); the whole call has timeoutSeconds. The answer must be an
AdmissionReview of the request's version whose response.uid is the request's uid.

Outcomes, with the real server's Status objects:
- allowed: the webhook's warnings go back as `Warning: 299 - "..."` headers (kubectl prints them);
- denied: the webhook's status with a code of at least 400 and the message
  `admission webhook "NAME" denied the request: MESSAGE` (or `: REASON`, or ` without explanation`);
- not called (no such service, refused, TLS, timeout, HTTP error, an answer that is not a valid review):
  failurePolicy Ignore carries on without it; Fail answers 500 InternalError
  `Internal error occurred: failed calling webhook "NAME": failed to call webhook: Post "URL": REASON`,
  REASON in Go's words (`dial tcp 127.0.0.1:1: connect: connection refused`,
  `tls: failed to verify certificate: x509: certificate signed by unknown authority`,
  `context deadline exceeded`, ...) or `received invalid webhook response: ...`;
- a patch that does not apply, or any patch on a DELETE: 500 whatever the failurePolicy.
- dryRun: the review says `dryRun: true` and nothing is stored. (A v1 configuration can only say
  sideEffects None or NoneOnDryRun, so every matching webhook is called on dry runs, as on a real server.)

Not modelled: reinvocationPolicy IfNeeded (each mutating webhook is called once), matchPolicy Equivalent
across versions (every kind here has one version), matchConditions (a configuration with them is refused),
client credentials for webhooks, audit annotations; the deletes a namespace deletion makes of what it holds
are internal here and call no webhook; ValidatingAdmissionPolicy. A create of a name that exists is
refused (409 AlreadyExists) before the validating webhooks are asked; a real server asks them first.
"""
import base64
import copy
import http.client
import ipaddress
import json
import socket
import ssl
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import label_selectors
import patches
import resources
from store import DNS1123_SUBDOMAIN, ApiError, bad_request

GROUP = "admissionregistration.k8s.io"
MUTATING_KIND = "MutatingWebhookConfiguration"
REVIEW_VERSIONS = ("v1", "v1beta1")
MAX_ATTEMPTS = 10  # writes that keep losing the race against other writers give up with the 409


# ---------------------------------------------------------------------------------------------- configurations

def _go_value(value):
    """A value as Go's field errors print it (%#v for lists of strings)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[]string{" + ", ".join(json.dumps(str(v)) for v in value) + "}"
    return "null" if value is None else str(value)


def _unsupported(value, supported):
    return f"Unsupported value: {_go_value(value)}: supported values: " + ", ".join(f'"{s}"' for s in supported)


def _invalid(value, detail):
    return f"Invalid value: {_go_value(value)}: {detail}"


def _choice(errors, path, value, supported):
    if value is not None and value not in supported:
        errors.append((path, _unsupported(value, supported)))


def _rule_errors(rule, path):
    errors = []
    operations = rule.get("operations") or []
    if not operations:
        errors.append((f"{path}.operations", "Required value"))
    elif len(operations) > 1 and "*" in operations:
        errors.append((f"{path}.operations",
                       _invalid(operations, "if '*' is present, must not specify other operations")))
    for i, operation in enumerate(operations):
        _choice(errors, f"{path}.operations[{i}]", operation, ["*", "CONNECT", "CREATE", "DELETE", "UPDATE"])
    for key, what in (("apiGroups", "API groups"), ("apiVersions", "API versions")):
        values = rule.get(key)
        if not values:  # [""] names the core group: not empty
            errors.append((f"{path}.{key}", "Required value"))
        elif len(values) > 1 and "*" in values:
            errors.append((f"{path}.{key}", _invalid(values, f"if '*' is present, must not specify other {what}")))
    for i, version in enumerate(rule.get("apiVersions") or []):
        if not version:
            errors.append((f"{path}.apiVersions[{i}]", "Required value"))
    names = rule.get("resources") or []
    if not names:
        errors.append((f"{path}.resources", "Required value"))
    with_sub = [n for n in names if "/" in n]
    if len(names) > 1 and "*/*" in names:
        errors.append((f"{path}.resources", _invalid(names, "if '*/*' is present, must not specify other resources")))
    if "*" in names and any(n != "*" and "/" not in n for n in names):
        errors.append((f"{path}.resources",
                       _invalid(names, "if '*' is present, must not specify other resources without subresources")))
    for i, name in enumerate(names):
        if not name:
            errors.append((f"{path}.resources[{i}]", "Required value"))
        elif name in with_sub:
            res, sub = name.split("/", 1)
            if res != "*" and f"{res}/*" in names and sub != "*":
                errors.append((f"{path}.resources[{i}]",
                               _invalid(name, f"if '{res}/*' is present, must not specify {name}")))
            if sub != "*" and f"*/{sub}" in names and res != "*":
                errors.append((f"{path}.resources[{i}]",
                               _invalid(name, f"if '*/{sub}' is present, must not specify {name}")))
    _choice(errors, f"{path}.scope", rule.get("scope"), ["*", "Cluster", "Namespaced"])
    return errors


def _client_config_errors(config, path):
    if not isinstance(config, dict) or ("url" in config) == ("service" in config):
        return [(f"{path}.url", "Required value: exactly one of url or service is required")]
    errors = []
    if "url" in config:
        form = "; desired format: https://host[/path]"
        parts = urlsplit(str(config["url"]))
        if parts.scheme != "https":
            errors.append((f"{path}.url", _invalid(parts.scheme, "'https' is the only allowed URL scheme" + form)))
        if not parts.netloc:
            errors.append((f"{path}.url", _invalid(parts.netloc, "host must be provided" + form)))
        if "@" in parts.netloc:
            errors.append((f"{path}.url",
                           _invalid(parts.netloc.split("@")[0], "user information is not permitted in the URL")))
        if parts.fragment:
            errors.append((f"{path}.url", _invalid(parts.fragment, "fragments are not permitted in the URL")))
        if parts.query:
            errors.append((f"{path}.url", _invalid(parts.query, "query parameters are not permitted in the URL")))
    else:
        service = config["service"] if isinstance(config["service"], dict) else {}
        if not service.get("name"):
            errors.append((f"{path}.service.name", "Required value: service name is required"))
        if not service.get("namespace"):
            errors.append((f"{path}.service.namespace", "Required value: service namespace is required"))
        service_path = service.get("path")
        if service_path and service_path != "/" and not str(service_path).startswith("/"):
            errors.append((f"{path}.service.path", _invalid(service_path, "must start with a '/'")))
        port = service.get("port")
        if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
            errors.append((f"{path}.service.port", _invalid(port, "port is not valid: must be between 1 and 65535, "
                                                                  "inclusive")))
    bundle = config.get("caBundle")
    if bundle is not None:
        try:
            base64.b64decode(bundle, validate=True)
        except (ValueError, TypeError):
            raise bad_request(f"{path}.caBundle: illegal base64 data")
    return errors


def configuration_errors(kind, webhooks):
    """[(field, detail)] as ValidateMutating/ValidatingWebhookConfiguration reports them for a v1 create."""
    errors, seen = [], set()
    for i, hook in enumerate(webhooks):
        path = f"webhooks[{i}]"
        name = hook.get("name") or ""
        if not name:
            errors.append((f"{path}.name", "Required value"))
        elif len(name) > 253 or not DNS1123_SUBDOMAIN.match(name):
            errors.append((f"{path}.name", _invalid(name, "a lowercase RFC 1123 subdomain must consist of lower case "
                                                          "alphanumeric characters, '-' or '.', and must start and end "
                                                          "with an alphanumeric character")))
        elif len(name.split(".")) < 3:
            errors.append((f"{path}.name", _invalid(name, "should be a domain with at least three segments separated "
                                                          "by dots")))
        elif name in seen:
            errors.append((f"{path}.name", f"Duplicate value: {_go_value(name)}"))
        seen.add(name)
        for j, rule in enumerate(hook.get("rules") or []):
            errors += _rule_errors(rule if isinstance(rule, dict) else {}, f"{path}.rules[{j}]")
        _choice(errors, f"{path}.failurePolicy", hook.get("failurePolicy"), ["Fail", "Ignore"])
        _choice(errors, f"{path}.matchPolicy", hook.get("matchPolicy"), ["Equivalent", "Exact"])
        side_effects = hook.get("sideEffects")
        if side_effects is None:
            errors.append((f"{path}.sideEffects", "Required value: must specify one of None, NoneOnDryRun"))
        else:
            _choice(errors, f"{path}.sideEffects", side_effects, ["None", "NoneOnDryRun"])
        timeout = hook.get("timeoutSeconds")
        if not isinstance(timeout, int) or isinstance(timeout, bool) or not 1 <= timeout <= 30:
            errors.append((f"{path}.timeoutSeconds", _invalid(timeout, "the timeout value must be between 1 and 30 "
                                                                        "seconds")))
        for selector in ("namespaceSelector", "objectSelector"):
            errors += label_selectors.label_selector_errors(hook.get(selector), f"{path}.{selector}")
        versions = hook.get("admissionReviewVersions")
        if not versions:
            errors.append((f"{path}.admissionReviewVersions", "Required value: must specify one of v1, v1beta1"))
        elif not any(v in REVIEW_VERSIONS for v in versions):
            errors.append((f"{path}.admissionReviewVersions", _invalid(versions, "must include at least one of v1, "
                                                                                 "v1beta1")))
        if kind == MUTATING_KIND:
            _choice(errors, f"{path}.reinvocationPolicy", hook.get("reinvocationPolicy"), ["IfNeeded", "Never"])
        if hook.get("matchConditions"):
            errors.append((f"{path}.matchConditions", "Forbidden: not supported by the stowage test API server "
                                                      "(CEL is not modelled)"))
        errors += _client_config_errors(hook.get("clientConfig"), f"{path}.clientConfig")
    return errors


def _cause_reason(detail):
    for prefix, reason in (("Required value", "FieldValueRequired"), ("Unsupported value", "FieldValueNotSupported"),
                           ("Duplicate value", "FieldValueDuplicate"), ("Forbidden", "FieldValueForbidden")):
        if detail.startswith(prefix):
            return reason
    return "FieldValueInvalid"


def normalize_configuration(r, obj):
    """Default a webhook configuration as the real server does, then validate it (422 Invalid)."""
    webhooks = obj.get("webhooks")
    if webhooks is None:
        return
    if not isinstance(webhooks, list) or not all(isinstance(h, dict) for h in webhooks):
        raise bad_request("webhooks: must be a list of objects")
    mutating = r.kind == MUTATING_KIND
    for hook in webhooks:
        defaults = {"failurePolicy": "Fail", "matchPolicy": "Equivalent", "namespaceSelector": {},
                    "objectSelector": {}, "timeoutSeconds": 10}
        if mutating:
            defaults["reinvocationPolicy"] = "Never"
        for key, value in defaults.items():
            if hook.get(key) is None:
                hook[key] = value
        for rule in hook.get("rules") or []:
            if isinstance(rule, dict) and rule.get("scope") is None:
                rule["scope"] = "*"
        client = hook.get("clientConfig")
        service = client.get("service") if isinstance(client, dict) else None
        if isinstance(service, dict) and service.get("port") is None:
            service["port"] = 443
    errors = configuration_errors(r.kind, webhooks)
    if errors:
        name = obj["metadata"].get("name", "")
        text = f"{errors[0][0]}: {errors[0][1]}" if len(errors) == 1 else \
            "[" + ", ".join(f"{f}: {d}" for f, d in errors) + "]"
        raise ApiError(422, "Invalid", f'{r.kind}.{r.group} "{name}" is invalid: {text}',
                       {"name": name, "group": r.group, "kind": r.kind,
                        "causes": [{"reason": _cause_reason(d), "message": d, "field": f} for f, d in errors]})


# ---------------------------------------------------------------------------------------------- requests

@dataclass
class Context:
    """Who writes, and what the response carries back besides the object."""
    user: object
    field_manager: str = None
    warnings: list = field(default_factory=list)


@dataclass
class Attributes:
    """admission.Attributes: what the webhooks are told about one write."""
    operation: str          # CREATE, UPDATE, DELETE
    resource: object        # resources.Resource
    subresource: str
    namespace: str          # "" for cluster-scoped objects; a Namespace's own name for UPDATE and DELETE of it
    name: str               # "" for a create by generateName
    obj: dict               # None for DELETE
    old: dict               # None for CREATE
    dry_run: bool
    options: dict


class CallError(Exception):
    """ErrCallingWebhook: the webhook could not give an answer; its failurePolicy decides."""


class _Failure(Exception):
    """Why the HTTP POST did not complete, in Go's words (the text after `Post "URL": `)."""


def _internal_error(message):
    return ApiError(500, "InternalError", f"Internal error occurred: {message}", {"causes": [{"message": message}]})


def _denial(name, status):
    """webhookerrors.ToStatusErr."""
    status = status if isinstance(status, dict) else {}
    code = status.get("code") if isinstance(status.get("code"), int) else 0
    denied = f'admission webhook "{name}" denied the request'
    if status.get("message"):
        message = f"{denied}: {status['message']}"
    elif status.get("reason"):
        message = f"{denied}: {status['reason']}"
    else:
        message = f"{denied} without explanation"
    return ApiError(max(code, 400), status.get("reason") or "", message, status.get("details"))


def _http_error(code, body):
    """client-go's error for a non-2xx answer: its Status' message, else NewGenericServerResponse's."""
    try:
        document = json.loads(body)
        if isinstance(document, dict) and document.get("kind") == "Status" and document.get("message"):
            return document["message"]
    except ValueError:
        pass
    text = body.decode("utf-8", "replace").strip()
    fixed = {400: "the server rejected our request for an unknown reason",
             401: "the server has asked for the client to provide credentials",
             403: text, 404: "the server could not find the requested resource",
             405: "the server does not allow this method on the requested resource",
             409: "the server reported a conflict",
             422: "the server rejected our request due to an error in our request",
             429: "the server has received too many requests and has asked us to try again later",
             503: "the server is currently unable to handle the request",
             504: "the server was unable to return a response in the time allotted, but may still be processing "
                  "the request"}
    if code in fixed:
        return fixed[code]
    if code >= 500:
        return f"an error on the server ({json.dumps(text)}) has prevented the request from succeeding"
    return f"the server responded with the status code {code} but did not return more information"


def _dns_matches(pattern, host):
    pattern, host = pattern.lower().rstrip("."), host.lower().rstrip(".")
    if pattern.startswith("*."):
        return "." in host and host.split(".", 1)[1] == pattern[2:] and host.split(".", 1)[0] != ""
    return pattern == host


def _hostname_error(certificate, host):
    """crypto/x509's HostnameError text when the verified certificate is not for host, else None."""
    names = certificate.get("subjectAltName", ())
    dns = [v for k, v in names if k == "DNS"]
    ips = [v.strip() for k, v in names if k == "IP Address"]
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if ip is not None:
        if any(ipaddress.ip_address(v) == ip for v in ips):
            return None
        if not ips:
            return f"x509: cannot validate certificate for {host} because it doesn't contain any IP SANs"
        return f"x509: certificate is valid for {', '.join(ips)}, not {host}"
    if any(_dns_matches(pattern, host) for pattern in dns):
        return None
    if not names:
        common = [v for rdn in certificate.get("subject", ()) for k, v in rdn if k == "commonName"]
        if any(_dns_matches(c, host) for c in common):
            return "x509: certificate relies on legacy Common Name field, use SANs instead"
    if not dns:
        return f"x509: certificate is not valid for any names, but wanted to match {host}"
    return f"x509: certificate is valid for {', '.join(dns)}, not {host}"


def _x509_error(error):
    code = getattr(error, "verify_code", None)
    if code in (2, 18, 19, 20, 21):  # no issuer certificate, self-signed, unknown issuer: Go's UnknownAuthorityError
        return "x509: certificate signed by unknown authority"
    if code in (9, 10):
        return "x509: certificate has expired or is not yet valid"
    return f"x509: {getattr(error, 'verify_message', None) or error}"


@dataclass
class _Target:
    url: str           # as Go prints it in errors: https://NAME.NAMESPACE.svc:443/path?timeout=10s
    address: tuple     # (host, port) to connect to, or None with `unresolved` saying why
    unresolved: str
    server_name: str   # the name the certificate must carry
    host_header: str
    path: str          # path and query sent


class Admission:
    """The two webhook admission plugins over one store; thread-safe (each request calls from its thread)."""

    def __init__(self, store, stats, services=None, log=None):
        self.store, self.stats = store, stats
        self.services = {}
        self.services_lock = threading.Lock()
        for spec in services or ():
            self.map_service(spec)
        self.log = log or (lambda message: sys.stderr.write(f"apiserver: {message}\n"))
        self.mutating = resources.find(f"{GROUP}/v1", "mutatingwebhookconfigurations")
        self.validating = resources.find(f"{GROUP}/v1", "validatingwebhookconfigurations")
        self.namespaces = resources.find("v1", "namespaces")

    # ---- the test-only service mapping

    @staticmethod
    def parse_service(spec):
        """'NAMESPACE/NAME[:PORT]=HOST:PORT' -> ('NAMESPACE/NAME:PORT', (HOST, PORT)); ValueError if malformed."""
        service, sep, address = spec.partition("=")
        namespace, slash, name = service.partition("/")
        host, colon, port = address.rpartition(":")
        if not sep or not slash or not namespace or not name or not colon or not host or not port.isdigit():
            raise ValueError(f"--webhook-service wants NAMESPACE/NAME[:PORT]=HOST:PORT, got {spec!r}")
        if ":" not in name:
            name += ":443"
        elif not name.rpartition(":")[2].isdigit():
            raise ValueError(f"--webhook-service: the service port in {spec!r} is not a number")
        return f"{namespace}/{name}", (host.strip("[]"), int(port))

    def map_service(self, spec):
        key, address = self.parse_service(spec)
        with self.services_lock:
            self.services[key] = address
        return key

    # ---- which webhooks

    def active(self, r):
        """Whether a write of r may call a webhook at all (the fast path for servers without configurations)."""
        return r.group != GROUP and bool(self.store.objects[self.mutating] or self.store.objects[self.validating])

    def _webhooks(self, r):
        with self.store.cond:
            configurations = sorted(self.store.objects[r].values(), key=lambda c: c["metadata"]["name"])
        return [hook for configuration in configurations for hook in configuration.get("webhooks") or []]

    def _namespace_labels(self, attrs):
        if attrs.resource is self.namespaces and not attrs.subresource and attrs.operation in ("CREATE", "UPDATE"):
            return (attrs.obj.get("metadata") or {}).get("labels") or {}
        with self.store.cond:
            namespace = self.store.objects[self.namespaces].get(("", attrs.namespace))
        if namespace is None:  # created implicitly by this very write, with only the name label
            return {"kubernetes.io/metadata.name": attrs.namespace}
        return namespace["metadata"].get("labels") or {}

    @staticmethod
    def rule_matches(rule, attrs):
        r = attrs.resource
        operations = rule.get("operations") or []
        if "*" not in operations and attrs.operation not in operations:
            return False
        for key, value in (("apiGroups", r.group), ("apiVersions", r.version)):
            listed = rule.get(key) or []
            if "*" not in listed and value not in listed:
                return False
        for entry in rule.get("resources") or []:
            res, _, sub = entry.partition("/")
            if (res in ("*", r.plural)) and (sub == "*" or sub == attrs.subresource):
                break
        else:
            return False
        is_namespace = r is not None and r.group == "" and r.plural == "namespaces"
        scope = rule.get("scope") or "*"
        if scope == "Namespaced":
            return not is_namespace and bool(attrs.namespace)
        if scope == "Cluster":
            return is_namespace or not attrs.namespace
        return True

    def should_call(self, hook, attrs):
        cluster_scoped = not attrs.namespace and attrs.resource is not self.namespaces
        selector = label_selectors.from_label_selector(hook.get("namespaceSelector"))
        if selector and not cluster_scoped and \
                not label_selectors.labels_match(selector, self._namespace_labels(attrs)):
            return False
        selector = label_selectors.from_label_selector(hook.get("objectSelector"))
        if selector:
            labels = [((o or {}).get("metadata") or {}).get("labels") for o in (attrs.obj, attrs.old) if o]
            if not any(label_selectors.labels_match(selector, l) for l in labels):
                return False
        return any(self.rule_matches(rule, attrs) for rule in hook.get("rules") or [])

    # ---- one call

    def _target(self, hook, timeout):
        config = hook["clientConfig"]
        query = f"timeout={timeout}s"
        if "service" in config:
            service = config["service"]
            namespace, name, port = service["namespace"], service["name"], service.get("port") or 443
            path = service.get("path") or "/"
            server_name = f"{name}.{namespace}.svc"
            url = f"https://{server_name}:{port}{path}?{query}"
            with self.services_lock:
                address = self.services.get(f"{namespace}/{name}:{port}")
                known = any(key.rpartition(":")[0] == f"{namespace}/{name}" for key in self.services)
            unresolved = None if address else \
                f'no service port {port} found for service "{name}"' if known else f'service "{name}" not found'
            return _Target(url, address, unresolved, server_name, f"{server_name}:{port}", f"{path}?{query}")
        parts = urlsplit(config["url"])
        host, port = parts.hostname or "", parts.port or 443
        path = parts.path or "/"
        return _Target(f"{config['url']}?{query}", (host, port), None, host, parts.netloc, f"{path}?{query}")

    @staticmethod
    def _tls_context(hook):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False  # checked after the handshake, so the error can name what it is valid for
        context.verify_mode = ssl.CERT_REQUIRED
        bundle = (hook.get("clientConfig") or {}).get("caBundle")
        if bundle:
            try:
                context.load_verify_locations(cadata=base64.b64decode(bundle).decode("ascii", "replace"))
            except (ssl.SSLError, ValueError):
                raise CallError("could not get REST client: unable to load root certificates: unable to parse bytes "
                                "as PEM block")
        else:
            context.load_default_certs()
        return context

    @staticmethod
    def _post(target, context, body, deadline):
        """(status, body bytes) of the POST, or _Failure."""
        def remaining():
            left = deadline - time.monotonic()
            if left <= 0:
                raise _Failure("context deadline exceeded")
            return left

        if target.address is None:
            raise _Failure(target.unresolved)
        host, port = target.address
        try:
            raw = socket.create_connection((host, port), timeout=remaining())
        except socket.timeout:
            raise _Failure("context deadline exceeded")
        except ConnectionRefusedError:
            raise _Failure(f"dial tcp {host}:{port}: connect: connection refused")
        except OSError as e:
            raise _Failure(f"dial tcp {host}:{port}: {e.strerror or e}")
        try:
            try:
                sock = context.wrap_socket(raw, server_hostname=target.server_name)
            except ssl.SSLCertVerificationError as e:
                raise _Failure(f"tls: failed to verify certificate: {_x509_error(e)}")
            except ssl.SSLError as e:
                if "WRONG_VERSION_NUMBER" in str(e) or "record layer failure" in str(e):
                    raise _Failure("http: server gave HTTP response to HTTPS client")
                raise _Failure(f"remote error: tls: {e.reason or e}")
            raw = sock
            wrong_name = _hostname_error(sock.getpeercert(), target.server_name)
            if wrong_name:
                raise _Failure(f"tls: failed to verify certificate: {wrong_name}")
            connection = http.client.HTTPConnection(target.host_header)
            connection.sock = sock
            sock.settimeout(remaining())
            connection.putrequest("POST", target.path, skip_host=True, skip_accept_encoding=True)
            for key, value in (("Host", target.host_header), ("Content-Type", "application/json"),
                               ("Accept", "application/json, */*"), ("User-Agent", "kube-apiserver-admission"),
                               ("Content-Length", str(len(body)))):
                connection.putheader(key, value)
            connection.endheaders(body)
            response = connection.getresponse()
            sock.settimeout(remaining())
            return response.status, response.read()
        except socket.timeout:
            raise _Failure("context deadline exceeded")
        except (ConnectionError, http.client.HTTPException, ssl.SSLError):
            raise _Failure("EOF")
        finally:
            raw.close()

    @staticmethod
    def _review(uid, version, attrs, ctx):
        r = attrs.resource
        kind = {"group": r.group, "version": r.version, "kind": r.kind}
        resource = {"group": r.group, "version": r.version, "resource": r.plural}
        request = {"uid": uid, "kind": kind, "resource": resource}
        if attrs.subresource:
            request["subResource"] = attrs.subresource
        request.update(requestKind=kind, requestResource=resource)
        if attrs.subresource:
            request["requestSubResource"] = attrs.subresource
        if attrs.name:
            request["name"] = attrs.name
        if attrs.namespace:
            request["namespace"] = attrs.namespace
        request.update(operation=attrs.operation, userInfo={"username": ctx.user.name, "groups": list(ctx.user.groups)},
                       object=attrs.obj, oldObject=attrs.old, dryRun=attrs.dry_run, options=attrs.options)
        return {"kind": "AdmissionReview", "apiVersion": f"admission.k8s.io/{version}", "request": request}

    def call(self, hook, attrs, ctx, mutating):
        """The webhook's AdmissionResponse (checked as VerifyAdmissionResponse does), or CallError."""
        timeout = hook.get("timeoutSeconds") or 10
        versions = hook.get("admissionReviewVersions") or ["v1"]
        version = next(v for v in versions if v in REVIEW_VERSIONS)
        uid = str(uuid.uuid4())
        body = json.dumps(self._review(uid, version, attrs, ctx)).encode()
        target = self._target(hook, timeout)
        context = self._tls_context(hook)
        self.stats.admission_event("calls")
        try:
            status, data = self._post(target, context, body, time.monotonic() + timeout)
        except _Failure as e:
            raise CallError(f'failed to call webhook: Post "{target.url}": {e}')
        if not 200 <= status < 300:
            raise CallError(f"failed to call webhook: {_http_error(status, data)}")
        try:
            review = json.loads(data)
        except ValueError as e:
            raise CallError(f"failed to call webhook: couldn't get version/kind; json parse error: {e}")
        if not isinstance(review, dict):
            raise CallError("failed to call webhook: couldn't get version/kind; json parse error: not an object")
        invalid = "received invalid webhook response: "
        response = review.get("response")
        if not isinstance(response, dict):
            raise CallError(invalid + "webhook response was absent")
        if response.get("uid") != uid:
            got = json.dumps(str(response.get("uid", "")))
            raise CallError(invalid + f"expected response.uid={json.dumps(uid)}, got {got}")
        if review.get("apiVersion") != f"admission.k8s.io/{version}" or review.get("kind") != "AdmissionReview":
            group_version = review.get("apiVersion") or ""
            raise CallError(invalid + f"expected webhook response of admission.k8s.io/{version}, Kind=AdmissionReview, "
                                      f"got {group_version}, Kind={review.get('kind') or ''}")
        has_patch, has_type = bool(response.get("patch")), response.get("patchType") is not None
        if mutating:
            if has_patch and not has_type:
                raise CallError(invalid + "webhook returned response.patch but not response.patchType")
            if has_type and not has_patch:
                raise CallError(invalid + "webhook returned response.patchType but not response.patch")
            if has_type and not response["patchType"]:
                raise CallError(invalid + 'webhook returned invalid response.patchType of ""')
        else:
            if has_patch:
                raise CallError(invalid + "validating webhook may not return response.patch")
            if has_type:
                raise CallError(invalid + "validating webhook may not return response.patchType")
        return response

    def _failed(self, hook, error):
        """A call that gave no answer: failing open (Ignore) returns, failing closed raises the 500."""
        message = f'failed calling webhook "{hook["name"]}": {error}'
        if hook.get("failurePolicy") == "Ignore":
            self.stats.admission_event("failed_open")
            self.log(f"Failed calling webhook, failing open {hook['name']}: {message}")
            return
        self.stats.admission_event("failed_closed")
        raise _internal_error(message)

    def _answer(self, hook, attrs, ctx, mutating):
        """The allowed response of one webhook, None when it failed open; raises for a denial or failing closed."""
        try:
            response = self.call(hook, attrs, ctx, mutating)
        except CallError as e:
            return self._failed(hook, e)
        warnings = response.get("warnings")
        if isinstance(warnings, list):
            ctx.warnings.extend(w for w in warnings if isinstance(w, str))
        if not response.get("allowed"):
            self.stats.admission_event("denials")
            raise _denial(hook["name"], response.get("status"))
        return response

    def mutate(self, attrs, ctx):
        """Run the mutating webhooks on attrs.obj (replaced by each patch)."""
        for hook in self._webhooks(self.mutating):
            if not self.should_call(hook, attrs):
                continue
            response = self._answer(hook, attrs, ctx, True)
            if not response or not response.get("patch"):
                continue
            try:
                operations = json.loads(base64.b64decode(response["patch"], validate=True))
                if not isinstance(operations, list):
                    raise ValueError("a JSON patch is a list of operations")
            except (ValueError, TypeError) as e:
                self._failed(hook, CallError(f"received undecodable patch in webhook response: {e}"))
                continue
            if not operations:
                continue
            if attrs.obj is None:
                raise _internal_error(f'admission webhook "{hook["name"]}" attempted to modify the object, which is '
                                      "not supported for this operation")
            if response["patchType"] != "JSONPatch":
                self._failed(hook, CallError(f'unsupported patch type "{response["patchType"]}"'))
                continue
            try:
                patched = patches.json_patch(attrs.obj, operations)
            except (patches.PatchFailed, patches.PatchMalformed) as e:
                raise _internal_error(str(e))
            if not isinstance(patched, dict):
                raise _internal_error(f'admission webhook "{hook["name"]}" made the object something else than an '
                                      "object")
            self.stats.admission_event("patches")
            attrs.obj = patched

    def validate(self, attrs, ctx):
        for hook in self._webhooks(self.validating):
            if self.should_call(hook, attrs):
                self._answer(hook, attrs, ctx, False)

    # ---- writes through admission (the store's own methods when no webhook can apply)

    @staticmethod
    def _options(kind, dry_run, ctx, extra=None):
        options = {"kind": kind, "apiVersion": "meta.k8s.io/v1"}
        options.update(extra or {})
        if dry_run:
            options["dryRun"] = ["All"]
        if ctx.field_manager and kind != "DeleteOptions":
            options["fieldManager"] = ctx.field_manager
        return options

    def _own_namespace(self, r, namespace, name):
        return name if r is self.namespaces else (namespace or "")

    def create(self, r, namespace, body, ctx, dry_run=False):
        store = self.store
        if not self.active(r):
            return store.create(r, namespace, body, dry_run)
        store.check_type(r, body)
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        store.check_scope(r, namespace, meta)
        if r.namespaced:
            meta["namespace"] = namespace
        attrs = Attributes("CREATE", r, "", namespace or "", meta.get("name") or "", obj, None, dry_run,
                           self._options("CreateOptions", dry_run, ctx))
        self.mutate(attrs, ctx)
        mutated = attrs.obj
        store.check_type(r, mutated)
        preview = store.create(r, namespace, mutated, dry_run=True)
        attrs.obj = preview
        self.validate(attrs, ctx)
        final = copy.deepcopy(mutated)
        final.setdefault("metadata", {})["name"] = preview["metadata"]["name"]  # the name generateName chose
        return store.create(r, namespace, final, dry_run)

    def update(self, r, namespace, name, body, subresource, ctx, dry_run=False):
        if not self.active(r):
            return self.store.update(r, namespace, name, body, subresource, dry_run)
        self.store.check_type(r, body)
        pinned = bool((body.get("metadata") or {}).get("resourceVersion"))
        return self._admitted_update(r, namespace, name, subresource, ctx, dry_run,
                                     lambda: (self.store.get(r, namespace, name), copy.deepcopy(body), pinned))

    def patch(self, r, namespace, name, content_type, raw, subresource, ctx, dry_run=False):
        """(the object, whether the patch created it)."""
        store = self.store
        if not self.active(r):
            existed = (namespace or "", name) in store.objects[r]
            return store.patch(r, namespace, name, content_type, raw, subresource, dry_run), not existed
        content_type, document = store.decode_patch(content_type, raw)
        if store.patch_creates(r, namespace, name, content_type, subresource):
            return self.create(r, namespace, document, ctx, dry_run), True

        def patched():  # a patch that names a resourceVersion fails on the retry by itself
            return (*store.patched(r, namespace, name, content_type, document), False)
        return self._admitted_update(r, namespace, name, subresource, ctx, dry_run, patched), False

    def _admitted_update(self, r, namespace, name, subresource, ctx, dry_run, incoming):
        """incoming() -> (the stored object, the new one, whether the client pinned its resourceVersion)."""
        store = self.store
        for attempt in range(MAX_ATTEMPTS):
            old, obj, pinned = incoming()
            client_rv = (obj.get("metadata") or {}).get("resourceVersion") if pinned else None
            attrs = Attributes("UPDATE", r, subresource or "", self._own_namespace(r, namespace, name), name, obj, old,
                               dry_run, self._options("UpdateOptions", dry_run, ctx))
            self.mutate(attrs, ctx)
            mutated = attrs.obj
            store.check_type(r, mutated)
            mutated.setdefault("metadata", {})["resourceVersion"] = client_rv or old["metadata"]["resourceVersion"]
            attrs.obj = store.update(r, namespace, name, mutated, subresource, dry_run=True)
            self.validate(attrs, ctx)
            try:
                return store.update(r, namespace, name, mutated, subresource, dry_run)
            except ApiError as e:
                if e.reason != "Conflict" or client_rv or attempt == MAX_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    def delete(self, r, namespace, name, options, ctx, dry_run=False):
        """(the object as it now is, whether it is gone)."""
        store = self.store
        if not self.active(r):
            return store.delete(r, namespace, name, options, dry_run)
        options = dict(options or {})
        client_rv = (options.get("preconditions") or {}).get("resourceVersion")
        for attempt in range(MAX_ATTEMPTS):
            old = store.get(r, namespace, name)
            attrs = Attributes("DELETE", r, "", self._own_namespace(r, namespace, name), name, None, old, dry_run,
                               self._options("DeleteOptions", dry_run, ctx, options))
            self.mutate(attrs, ctx)
            self.validate(attrs, ctx)
            pinned = dict(options, preconditions=dict(options.get("preconditions") or {},
                                                      resourceVersion=client_rv or old["metadata"]["resourceVersion"]))
            try:
                return store.delete(r, namespace, name, pinned, dry_run)
            except ApiError as e:
                if e.reason != "Conflict" or client_rv or attempt == MAX_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    def delete_collection(self, r, matches, options, ctx, dry_run=False):
        store = self.store
        if not self.active(r):
            return store.delete_collection(r, matches, options, dry_run)
        with store.cond:
            targets = [obj for _, obj in sorted(store.objects[r].items()) if matches(obj)]
        items = []
        for obj in targets:
            meta = obj["metadata"]
            try:
                items.append(self.delete(r, meta.get("namespace"), meta["name"], options, ctx, dry_run)[0])
            except ApiError as e:
                if e.code != 404:  # gone meanwhile: nothing to delete
                    raise
        return items
