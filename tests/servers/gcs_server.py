#!/usr/bin/env python3
"""A Google Cloud Storage test server for stowage's GCS backend tests. Loopback only.

No GCS emulator exists in Debian or npm, so this one implements the parts of the JSON API and of
Google's OAuth token endpoint that the backend uses, and checks authentication independently of
the code under test: the service-account JWT's RS256 signature is verified with the
`cryptography` library against the public key the server was started with.

  POST   /token                                          JWT-bearer grant -> {"access_token","expires_in","token_type"}
  GET    /computeMetadata/v1/instance/service-accounts/default/token
                                                         the metadata server (403 without Metadata-Flavor: Google)
  POST   /v1/token                                       STS token exchange (workload identity federation, RFC 8693):
                                                         checks grant_type, requested_token_type, scope, audience
                                                         (--sts-audience), subject_token_type and the subject token
                                                         itself (--sts-subject-token) -> a federated access token
  POST   /v1/projects/-/serviceAccounts/EMAIL:generateAccessToken
                                                         IAM Credentials impersonation: needs `Authorization: Bearer
                                                         <a federated token this server issued>` and EMAIL equal to
                                                         --impersonate-email -> {"accessToken","expireTime"}
  POST   /upload/storage/v1/b/B/o?uploadType=media&name=N[&ifGenerationMatch=G]
  GET    /storage/v1/b/B                                 bucket
  GET    /storage/v1/b/B/o?prefix=P&pageToken=T&maxResults=M
  GET    /storage/v1/b/B/o/N[?alt=media]                 object metadata or contents
  DELETE /storage/v1/b/B/o/N

Storage calls need `Authorization: Bearer <a token this server issued>` (401 otherwise; with
--require-impersonation a federated STS token is not enough, only an impersonated one) unless
started with --no-auth (the STORAGE_EMULATOR_HOST convention); unknown buckets answer 404,
--forbidden-bucket ones 403, and --objects-only-bucket ones 403 to a bucket GET only, as GCS does.

Test controls (on the main port and, plain HTTP, on --control-port):
  POST /__fault   {"mode":"status503"|"statusNNN"|"delay"|"reset"|"token_suffix"|"none", "count":N,
                   "seconds":S, "target":"api"|"token"|"metadata"|"all", "retry_after":S, "suffix":T}
                  the next N matching requests fail (or are delayed S seconds first); "token_suffix"
                  answers a token request with T appended to the access_token (a hostile token
                  server, e.g. "\r\nX-Injected: yes"); "none" clears
  GET  /__stats   {"token_requests","token_exchanges","metadata_tokens","sts_exchanges","sts_refused",
                   "impersonations","impersonations_refused","api":{kind:n},"authorized",
                   "unauthenticated","faults_served","injected" (requests carrying an X-Injected header)}
  POST /__seed    {"bucket":B,"objects":{name:content}}
  GET  /__objects?bucket=B   {"names":[...]}
  GET  /__object?bucket=B&name=N   {"data","generation","contentType"} (404 when absent)
  POST /__revoke  forget every issued token (the next storage call answers 401)

The server exits when its parent does, so a crashed test leaves no server behind.
"""
import argparse
import base64
import json
import os
import secrets
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ACCEPTED_SCOPES = {
    "https://www.googleapis.com/auth/devstorage.read_write",
    "https://www.googleapis.com/auth/devstorage.full_control",
    "https://www.googleapis.com/auth/cloud-platform",
}
METADATA_TOKEN_PATH = "/computeMetadata/v1/instance/service-accounts/default/token"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
STS_PATH = "/v1/token"
IMPERSONATION_PREFIX = "/v1/projects/-/serviceAccounts/"
IMPERSONATION_SUFFIX = ":generateAccessToken"
CLOCK_SKEW = 300


class State:
    def __init__(self, args):
        self.lock = threading.Lock()
        self.args = args
        self.buckets = {b: {} for b in args.bucket}
        self.forbidden = set(args.forbidden_bucket)
        self.objects_only = set(args.objects_only_bucket)
        for b in args.objects_only_bucket:
            self.buckets.setdefault(b, {})
        self.generation = 1000
        self.tokens = {}  # token -> expiry (epoch seconds): what the storage API accepts
        self.federated = {}  # STS-issued token -> expiry: what generateAccessToken accepts
        self.faults = []  # [{"mode","count","seconds","target","retry_after"}]
        self.stats = {"token_requests": 0, "token_exchanges": 0, "metadata_tokens": 0, "api": {},
                      "authorized": 0, "unauthenticated": 0, "faults_served": 0, "auth_headers": 0,
                      "injected": 0, "sts_exchanges": 0, "sts_refused": 0, "impersonations": 0,
                      "impersonations_refused": 0}

    def issue_token(self, lifetime):
        token = "ya29.test-" + secrets.token_urlsafe(24)
        with self.lock:
            self.tokens[token] = time.time() + lifetime
        return token

    def take_fault(self, target):
        with self.lock:
            for f in self.faults:
                if f["count"] > 0 and f["target"] in (target, "all"):
                    f["count"] -= 1
                    self.stats["faults_served"] += 1
                    return dict(f)
            self.faults = [f for f in self.faults if f["count"] > 0]
        return None


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def load_identity(args):
    """The public key, client_email and key id the token endpoint trusts."""
    email, kid, pem = args.client_email, None, None
    if args.key_file:
        with open(args.key_file) as f:
            key = json.load(f)
        pem = key["private_key"].encode()
        email = email or key.get("client_email")
        kid = key.get("private_key_id")
    else:
        with open(args.public_key, "rb") as f:
            pem = f.read()
    if b"PRIVATE KEY" in pem:
        public = serialization.load_pem_private_key(pem, password=None).public_key()
    else:
        public = serialization.load_pem_public_key(pem)
    if not isinstance(public, rsa.RSAPublicKey):
        raise SystemExit("the service account key must be RSA")
    if not email:
        raise SystemExit("--client-email is required with --public-key")
    return public, email, kid


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as separate writes: no 40 ms delayed-ACK stalls
    state = None  # set in main()
    public_key = None
    client_email = None
    key_id = None
    control_only = False

    def setup(self):
        super().setup()
        if isinstance(self.connection, ssl.SSLSocket):
            self.connection.do_handshake()

    def log_message(self, fmt, *args):
        if self.state.args.verbose:
            super().log_message(fmt, *args)

    # ---- replies ----------------------------------------------------------------------------

    def reply(self, status, body=b"", content_type="application/json", headers=None):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            self.close_connection = True

    def api_error(self, code, message, reason, headers=None):
        body = {"error": {"code": code, "message": message,
                          "errors": [{"message": message, "domain": "global", "reason": reason}]}}
        return self.reply(code, body, headers=headers)

    def oauth_error(self, error, description, status=400):
        return self.reply(status, {"error": error, "error_description": description})

    # ---- dispatch ---------------------------------------------------------------------------

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.body = self.rfile.read(length) if length else b""
        split = urlsplit(self.path)
        self.raw_path = split.path
        self.query = {k: v[0] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        if self.raw_path.startswith("/__"):
            return self.control()
        if "X-Injected" in self.headers:  # a header smuggled in through a token (see token_suffix)
            with self.state.lock:
                self.state.stats["injected"] += 1
        if self.control_only:
            return self.reply(404, {"error": "control port"})
        if self.raw_path in ("/token", STS_PATH) or self.raw_path.startswith(IMPERSONATION_PREFIX):
            target = "token"
        elif self.raw_path.startswith("/computeMetadata/"):
            target = "metadata"
        else:
            target = "api"
        if target == "token":
            with self.state.lock:
                self.state.stats["token_requests"] += 1  # faulted ones too
        fault = self.state.take_fault(target)
        self.token_suffix = ""
        if fault and fault["mode"] == "token_suffix":
            self.token_suffix = fault["suffix"]
            fault = None
        if fault:
            if fault["mode"] == "delay":
                time.sleep(fault["seconds"])
            elif fault["mode"] == "reset":
                self.close_connection = True
                return
            elif fault["mode"].startswith("status"):
                status = int(fault["mode"][len("status"):])
                headers = {}
                if fault.get("retry_after") is not None:
                    headers["Retry-After"] = str(fault["retry_after"])
                return self.api_error(status, "injected fault", "backendError", headers)
        if target == "token" and self.raw_path == STS_PATH:
            return self.sts_endpoint()
        if target == "token" and self.raw_path.startswith(IMPERSONATION_PREFIX):
            return self.impersonation_endpoint()
        if target == "token":
            return self.token_endpoint()
        if target == "metadata":
            return self.metadata_endpoint()
        return self.storage_api()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_any

    # ---- test controls ----------------------------------------------------------------------

    def control(self):
        s = self.state
        if self.raw_path == "/__stats":
            with s.lock:
                return self.reply(200, json.loads(json.dumps(s.stats)))
        if self.raw_path == "/__fault":
            f = json.loads(self.body or b"{}")
            with s.lock:
                if f.get("mode", "none") == "none":
                    s.faults = []
                else:
                    s.faults.append({"mode": f["mode"], "count": int(f.get("count", 1)),
                                     "seconds": float(f.get("seconds", 0)), "target": f.get("target", "api"),
                                     "retry_after": f.get("retry_after"), "suffix": f.get("suffix", "")})
            return self.reply(200, {"ok": True})
        if self.raw_path == "/__seed":
            f = json.loads(self.body)
            with s.lock:
                bucket = s.buckets.setdefault(f["bucket"], {})
                for name, content in f["objects"].items():
                    s.generation += 1
                    bucket[name] = {"data": content.encode(), "generation": s.generation,
                                    "contentType": "application/octet-stream"}
            return self.reply(200, {"ok": True})
        if self.raw_path == "/__objects":
            with s.lock:
                bucket = s.buckets.get(self.query.get("bucket", ""), {})
                return self.reply(200, {"names": sorted(bucket)})
        if self.raw_path == "/__object":
            with s.lock:
                obj = s.buckets.get(self.query.get("bucket", ""), {}).get(self.query.get("name", ""))
            if obj is None:
                return self.reply(404, {"error": "no such object"})
            return self.reply(200, {"data": obj["data"].decode("utf-8", "replace"), "generation": obj["generation"],
                                    "contentType": obj["contentType"]})
        if self.raw_path == "/__revoke":
            with s.lock:
                s.tokens.clear()
                s.federated.clear()
            return self.reply(200, {"ok": True})
        return self.reply(404, {"error": "unknown control"})

    # ---- OAuth token endpoint ---------------------------------------------------------------

    def token_endpoint(self):
        s = self.state
        if self.command != "POST":
            return self.oauth_error("invalid_request", "POST required", 405)
        if not (self.headers.get("Content-Type") or "").startswith("application/x-www-form-urlencoded"):
            return self.oauth_error("invalid_request", "Content-Type must be application/x-www-form-urlencoded")
        form = {k: v[0] for k, v in parse_qs(self.body.decode(), keep_blank_values=True).items()}
        if form.get("grant_type") != JWT_BEARER:
            return self.oauth_error("unsupported_grant_type", "Invalid grant_type: " + form.get("grant_type", ""))
        problem = self.check_jwt(form.get("assertion", ""))
        if problem:
            return self.oauth_error(*problem)
        token = s.issue_token(s.args.token_lifetime)
        with s.lock:
            s.stats["token_exchanges"] += 1
        return self.reply(200, {"access_token": token + self.token_suffix, "expires_in": s.args.token_lifetime,
                                "token_type": "Bearer"})

    def expected_audience(self):
        if self.state.args.token_uri:
            return self.state.args.token_uri
        scheme = "https" if isinstance(self.connection, ssl.SSLSocket) else "http"
        return f"{scheme}://{self.headers.get('Host')}/token"

    def check_jwt(self, assertion):
        """None when the assertion is good, else (error, error_description) as Google words them."""
        parts = assertion.split(".")
        if len(parts) != 3:
            return ("invalid_grant", "Invalid JWT: not three segments")
        try:
            header = json.loads(b64url_decode(parts[0]))
            claims = json.loads(b64url_decode(parts[1]))
            signature = b64url_decode(parts[2])
        except (ValueError, UnicodeDecodeError):
            return ("invalid_grant", "Invalid JWT: bad encoding")
        if assertion.endswith("=") or "=" in parts[0] + parts[1]:
            return ("invalid_grant", "Invalid JWT: padded base64url")
        if header.get("alg") != "RS256" or header.get("typ", "JWT") != "JWT":
            return ("invalid_grant", "Invalid JWT: alg must be RS256")
        if self.key_id is not None and header.get("kid") != self.key_id:
            return ("invalid_grant", "Invalid JWT Signature.")
        try:
            self.public_key.verify(signature, (parts[0] + "." + parts[1]).encode(), padding.PKCS1v15(),
                                   hashes.SHA256())
        except InvalidSignature:
            return ("invalid_grant", "Invalid JWT Signature.")
        if claims.get("iss") != self.client_email:
            return ("invalid_grant", "Invalid email or User ID")
        if claims.get("aud") != self.expected_audience():
            return ("invalid_grant", "Invalid JWT: aud must be " + self.expected_audience())
        now = time.time()
        iat, exp = claims.get("iat"), claims.get("exp")
        if not isinstance(iat, int) or not isinstance(exp, int) or exp - iat > 3600 or exp <= iat or \
                iat > now + CLOCK_SKEW or exp < now - CLOCK_SKEW:
            return ("invalid_grant", "Invalid JWT: Token must be a short-lived token (60 minutes) and in a "
                                     "reasonable timeframe. Check your iat and exp values in the JWT claim.")
        scopes = set((claims.get("scope") or "").split())
        if not scopes & ACCEPTED_SCOPES:
            return ("invalid_scope", "Invalid OAuth scope or ID token audience provided.")
        return None

    # ---- workload identity federation: STS and IAM Credentials -------------------------------

    def sts_refuse(self, error, description, status=400):
        with self.state.lock:
            self.state.stats["sts_refused"] += 1
        return self.oauth_error(error, description, status)

    def sts_endpoint(self):
        """Google's STS token exchange. Its error texts never echo the subject token."""
        s = self.state
        if self.command != "POST":
            return self.sts_refuse("invalid_request", "POST required", 405)
        if not (self.headers.get("Content-Type") or "").startswith("application/x-www-form-urlencoded"):
            return self.sts_refuse("invalid_request", "Content-Type must be application/x-www-form-urlencoded")
        form = {k: v[0] for k, v in parse_qs(self.body.decode(), keep_blank_values=True).items()}
        if form.get("grant_type") != TOKEN_EXCHANGE:
            return self.sts_refuse("unsupported_grant_type", "Invalid grant_type")
        if form.get("requested_token_type") != ACCESS_TOKEN_TYPE:
            return self.sts_refuse("invalid_request", "Invalid requested_token_type")
        if not set((form.get("scope") or "").split()) & ACCEPTED_SCOPES:
            return self.sts_refuse("invalid_scope", "Invalid scope")
        if s.args.sts_audience is None or form.get("audience") != s.args.sts_audience:
            return self.sts_refuse("invalid_target", "The target service indicated by the \"audience\" parameters "
                                                     "is invalid.")
        if form.get("subject_token_type") != s.args.sts_subject_token_type:
            return self.sts_refuse("invalid_request", "Invalid subject_token_type")
        if s.args.sts_subject_token is None or \
                not secrets.compare_digest(form.get("subject_token", ""), s.args.sts_subject_token):
            return self.sts_refuse("invalid_grant", "The subject token is invalid or has expired.")
        token = "ya29.d.federated-" + secrets.token_urlsafe(24)
        with s.lock:
            s.federated[token] = time.time() + s.args.token_lifetime
            if not s.args.require_impersonation:
                s.tokens[token] = time.time() + s.args.token_lifetime
            s.stats["sts_exchanges"] += 1
        return self.reply(200, {"access_token": token + self.token_suffix, "issued_token_type": ACCESS_TOKEN_TYPE,
                                "token_type": "Bearer", "expires_in": s.args.token_lifetime})

    def impersonation_refuse(self, code, message, status):
        with self.state.lock:
            self.state.stats["impersonations_refused"] += 1
        return self.reply(code, {"error": {"code": code, "message": message, "status": status}})

    def impersonation_endpoint(self):
        """iamcredentials.googleapis.com generateAccessToken, authorized by a federated token."""
        s = self.state
        path = unquote(self.raw_path)
        if self.command != "POST" or not path.endswith(IMPERSONATION_SUFFIX):
            return self.impersonation_refuse(404, "Not Found", "NOT_FOUND")
        header = self.headers.get("Authorization") or ""
        token = header[len("Bearer "):] if header.startswith("Bearer ") else ""
        with s.lock:
            expiry = s.federated.get(token)
        if expiry is None or expiry <= time.time():
            return self.impersonation_refuse(401, "Request had invalid authentication credentials.",
                                             "UNAUTHENTICATED")
        email = path[len(IMPERSONATION_PREFIX):-len(IMPERSONATION_SUFFIX)]
        if s.args.impersonate_email is None or email != s.args.impersonate_email:
            return self.impersonation_refuse(403, "Permission 'iam.serviceAccounts.getAccessToken' denied on "
                                                  "resource (or it may not exist).", "PERMISSION_DENIED")
        try:
            body = json.loads(self.body or b"{}")
            scopes = set(body.get("scope") or [])
        except (ValueError, AttributeError, TypeError):
            return self.impersonation_refuse(400, "Invalid JSON payload received.", "INVALID_ARGUMENT")
        if not scopes & ACCEPTED_SCOPES:
            return self.impersonation_refuse(400, "Invalid scope", "INVALID_ARGUMENT")
        expires = time.time() + s.args.token_lifetime
        issued = s.issue_token(s.args.token_lifetime)
        with s.lock:
            s.stats["impersonations"] += 1
        return self.reply(200, {"accessToken": issued + self.token_suffix,
                                "expireTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires))})

    # ---- metadata server --------------------------------------------------------------------

    def metadata_endpoint(self):
        s = self.state
        if self.headers.get("Metadata-Flavor") != "Google" or self.headers.get("X-Forwarded-For"):
            return self.reply(403, "Missing required header: Metadata-Flavor", "text/html")
        if self.raw_path != METADATA_TOKEN_PATH or self.command != "GET":
            return self.reply(404, "Not Found", "text/html")
        token = s.issue_token(s.args.token_lifetime)
        with s.lock:
            s.stats["metadata_tokens"] += 1
        return self.reply(200, {"access_token": token + self.token_suffix, "expires_in": s.args.token_lifetime,
                                "token_type": "Bearer"})

    # ---- JSON API ---------------------------------------------------------------------------

    def count(self, kind):
        with self.state.lock:
            self.state.stats["api"][kind] = self.state.stats["api"].get(kind, 0) + 1

    def authorized(self):
        s = self.state
        header = self.headers.get("Authorization") or ""
        with s.lock:
            if header:
                s.stats["auth_headers"] += 1
            if s.args.no_auth:
                return True
            token = header[len("Bearer "):] if header.startswith("Bearer ") else None
            expiry = s.tokens.get(token) if token else None
            if expiry is not None and expiry > time.time():
                s.stats["authorized"] += 1
                return True
            s.stats["unauthenticated"] += 1
        return False

    def storage_api(self):
        path = self.raw_path
        upload = path.startswith("/upload/storage/v1/b/")
        if not upload and not path.startswith("/storage/v1/b/"):
            return self.api_error(404, "Not Found", "notFound")
        rest = path[len("/upload/storage/v1/b/") if upload else len("/storage/v1/b/"):]
        bucket_part, _, tail = rest.partition("/")
        bucket = unquote(bucket_part)
        if tail == "":
            kind = "bucket"
        elif tail == "o":
            kind = "upload" if upload else "list"
        elif tail.startswith("o/") and not upload:
            kind = {"GET": "read", "DELETE": "delete"}.get(self.command, "object")
        else:
            return self.api_error(404, "Not Found", "notFound")
        self.count(kind)
        if not self.authorized():
            return self.api_error(401, "Invalid Credentials", "authError",
                                  {"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'})
        s = self.state
        if bucket in s.forbidden:
            return self.api_error(403, f"{self.client_email} does not have storage.objects.{kind} access to the "
                                       f"Google Cloud Storage bucket. Permission denied on resource (or it may not "
                                       f"exist).", "forbidden")
        with s.lock:
            objects = s.buckets.get(bucket)
        if objects is None:
            return self.api_error(404, "The specified bucket does not exist.", "notFound")
        if kind == "bucket" and bucket in s.objects_only:
            return self.api_error(403, f"{self.client_email} does not have storage.buckets.get access to the Google "
                                       f"Cloud Storage bucket. Permission 'storage.buckets.get' denied on resource "
                                       f"(or it may not exist).", "forbidden")
        if kind == "bucket":
            if self.command != "GET":
                return self.api_error(405, "Method not allowed", "methodNotAllowed")
            return self.reply(200, {"kind": "storage#bucket", "id": bucket, "name": bucket})
        if kind == "upload":
            return self.upload(bucket, objects)
        if kind == "list":
            return self.list(bucket, objects)
        return self.object(bucket, objects, unquote(tail[2:]), kind)

    def object_resource(self, bucket, name, obj):
        return {"kind": "storage#object", "id": f"{bucket}/{name}/{obj['generation']}", "name": name,
                "bucket": bucket, "generation": str(obj["generation"]), "metageneration": "1",
                "contentType": obj["contentType"], "size": str(len(obj["data"]))}

    def upload(self, bucket, objects):
        if self.command != "POST":
            return self.api_error(405, "Method not allowed", "methodNotAllowed")
        if self.query.get("uploadType") != "media":
            return self.api_error(400, "Upload requests must include an uploadType URL parameter", "invalid")
        name = self.query.get("name")
        if not name:
            return self.api_error(400, "Required parameter: name", "required")
        match = self.query.get("ifGenerationMatch")
        s = self.state
        with s.lock:
            existing = objects.get(name)
            if match is not None:
                wanted = int(match)
                if (wanted == 0 and existing is not None) or \
                        (wanted != 0 and (existing is None or existing["generation"] != wanted)):
                    precondition_failed = True
                else:
                    precondition_failed = False
            else:
                precondition_failed = False
            if not precondition_failed:
                s.generation += 1
                obj = {"data": self.body, "generation": s.generation,
                       "contentType": self.headers.get("Content-Type") or "application/octet-stream"}
                objects[name] = obj
        if precondition_failed:
            return self.api_error(412, "At least one of the pre-conditions you specified did not hold.",
                                  "conditionNotMet")
        return self.reply(200, self.object_resource(bucket, name, obj))

    def list(self, bucket, objects):
        if self.command != "GET":
            return self.api_error(405, "Method not allowed", "methodNotAllowed")
        prefix = self.query.get("prefix", "")
        try:
            limit = max(1, min(1000, int(self.query.get("maxResults", "1000"))))
        except ValueError:
            return self.api_error(400, "Invalid value for maxResults", "invalid")
        after = None
        if self.query.get("pageToken"):
            try:
                after = b64url_decode(self.query["pageToken"]).decode()
            except ValueError:
                return self.api_error(400, "Invalid pageToken", "invalid")
        with self.state.lock:
            names = sorted(n for n in objects if n.startswith(prefix) and (after is None or n > after))
            page = names[:limit]
            items = [self.object_resource(bucket, n, objects[n]) for n in page]
        body = {"kind": "storage#objects"}
        if items:
            body["items"] = items
        if len(names) > limit:
            body["nextPageToken"] = base64.urlsafe_b64encode(page[-1].encode()).decode().rstrip("=")
        return self.reply(200, body)

    def object(self, bucket, objects, name, kind):
        with self.state.lock:
            obj = objects.get(name)
            if kind == "delete" and obj is not None:
                del objects[name]
        if obj is None:
            return self.api_error(404, f"No such object: {bucket}/{name}", "notFound")
        if kind == "delete":
            return self.reply(204, b"")
        if kind != "read":
            return self.api_error(405, "Method not allowed", "methodNotAllowed")
        if self.query.get("alt") == "media":
            return self.reply(200, obj["data"], obj["contentType"])
        return self.reply(200, self.object_resource(bucket, name, obj))


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # many concurrent test connections; the default backlog of 5 drops SYNs


def serve(server):
    server.serve_forever()


def exit_with_parent():
    """A test that crashes never runs its destructors: do not outlive it."""
    parent = os.getppid()
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--control-port", type=int, help="plain-HTTP port for the /__ controls")
    p.add_argument("--cert", help="PEM certificate: serve HTTPS")
    p.add_argument("--key", help="PEM key of --cert")
    p.add_argument("--key-file", help="the service account's JSON key (its public half is trusted)")
    p.add_argument("--public-key", help="PEM public (or private) key of the service account")
    p.add_argument("--client-email", help="the service account's email (default: from --key-file)")
    p.add_argument("--token-uri", help="the expected JWT aud (default: <scheme>://<Host>/token)")
    p.add_argument("--token-lifetime", type=int, default=3600, help="expires_in of issued tokens, seconds")
    p.add_argument("--bucket", action="append", default=[], help="a bucket that exists (repeatable)")
    p.add_argument("--forbidden-bucket", action="append", default=[],
                   help="a bucket the service account may not use: 403 (repeatable)")
    p.add_argument("--objects-only-bucket", action="append", default=[],
                   help="a bucket whose objects the account may use but whose metadata it may not read "
                        "(roles/storage.objectAdmin): bucket GET answers 403 (repeatable)")
    p.add_argument("--sts-subject-token", help="the subject token STS accepts (what the test wrote to the file)")
    p.add_argument("--sts-audience", help="the audience (workload identity provider) STS accepts")
    p.add_argument("--sts-subject-token-type", default="urn:ietf:params:oauth:token-type:jwt")
    p.add_argument("--impersonate-email", help="the service account generateAccessToken may impersonate")
    p.add_argument("--require-impersonation", action="store_true",
                   help="the storage API refuses federated STS tokens: only impersonated ones pass")
    p.add_argument("--no-auth", action="store_true", help="accept storage calls without a token (emulator mode)")
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args()
    if not args.key_file and not args.public_key:
        p.error("--key-file or --public-key is required")

    threading.Thread(target=exit_with_parent, daemon=True).start()
    Handler.state = State(args)
    Handler.public_key, Handler.client_email, Handler.key_id = load_identity(args)

    server = Server((args.host, args.port), Handler)
    if args.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.cert, args.key)
        server.socket = ctx.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    if args.control_port:
        control_handler = type("ControlHandler", (Handler,), {"control_only": True})
        control = Server((args.host, args.control_port), control_handler)
        threading.Thread(target=serve, args=(control,), daemon=True).start()
    serve(server)


if __name__ == "__main__":
    main()
