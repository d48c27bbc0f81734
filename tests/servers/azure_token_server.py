#!/usr/bin/env python3
"""A test Microsoft Entra token endpoint and a test managed-identity (IMDS) endpoint, handing out
access tokens that Azurite (--oauth basic, over HTTPS) accepts.

  azure_token_server.py --mode entra|imds --port P --tenant T --client-id C
                        [--assertion-file F] [--client-secret-file F] [--lifetime SECONDS] [--audience A]

  entra  POST /<tenant>/oauth2/v2.0/token (form), as Entra's v2 endpoint: grant_type=client_credentials,
         client_id equal to --client-id, scope=https://storage.azure.com/.default, and either
         client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer with client_assertion
         equal to the content of --assertion-file (workload identity; read at every request, so a test can
         rotate it), or client_secret equal to the content of --client-secret-file (service principal).
         Another tenant in the path: 400 invalid_request (AADSTS90002). Anything else: 400/401 with
         Entra's error JSON (invalid_client AADSTS700213 / AADSTS7000215, unauthorized_client, invalid_scope).
  imds   GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://storage.azure.com/
         with the header `Metadata: true` (400 otherwise, as IMDS answers); a client_id, when given, must be
         --client-id (400 "Identity not found" otherwise). Numbers come as strings, as IMDS sends them.

The access token is a JWT whose claims Azurite's basic OAuth checks (it does not check the signature):
aud https://storage.azure.com (or --audience), iss https://sts.windows.net/<tenant>/, iat, nbf, and
exp = now + --lifetime (default 3600), so a test can hand out tokens that expire in seconds; Azurite
then refuses an expired one ("Lifetime validation failed. The token is expired.").

GET /stats returns {"exchanges": N, "refused": M}: tokens handed out, requests refused. The log holds
method and path only, never a form, an assertion or a token.
"""
import argparse
import base64
import hashlib
import hmac
import json
import secrets
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
STATS = {"exchanges": 0, "refused": 0}
SIGNING_KEY = secrets.token_bytes(32)
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
SCOPE = "https://storage.azure.com/.default"


def count(name):
    with LOCK:
        STATS[name] += 1


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read().strip()


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def access_token(args, appid):
    now = int(time.time())
    header = {"alg": "HS256", "typ": "JWT"}
    claims = {"aud": args.audience, "iss": f"https://sts.windows.net/{args.tenant}/", "iat": now, "nbf": now - 60,
              "exp": now + args.lifetime, "appid": appid, "tid": args.tenant, "oid": secrets.token_hex(8),
              "ver": "1.0"}
    signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
    signature = hmac.new(SIGNING_KEY, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64url(signature)


def entra_error(error, description):
    return json.dumps({"error": error, "error_description": description, "error_codes": [int(description[6:description.index(":")])],
                       "timestamp": "2026-12-07 00:00:00Z", "trace_id": "t", "correlation_id": "c"})


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *a):  # to the log file, never a token
        sys.stderr.write("%s %s\n" % (self.command, self.path.split("?")[0]))

    def reply(self, status, body):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def refuse(self, status, body):
        count("refused")
        self.reply(status, body)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n).decode() if n else ""

    def do_GET(self):
        if self.path == "/stats":
            with LOCK:
                return self.reply(200, json.dumps(STATS))
        args = self.server.args
        url = urllib.parse.urlsplit(self.path)
        if args.mode != "imds" or url.path != "/metadata/identity/oauth2/token":
            return self.refuse(404, "{}")
        query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        value = lambda k: query.get(k, [""])[0]
        if self.headers.get("Metadata") != "true":
            return self.refuse(400, json.dumps({"error": "invalid_request",
                                                "error_description": "Required metadata header not specified"}))
        if value("api-version") != "2018-02-01" or value("resource") not in ("https://storage.azure.com/",
                                                                             "https://storage.azure.com"):
            return self.refuse(400, json.dumps({"error": "invalid_request",
                                                "error_description": "api-version or resource is not valid"}))
        if value("client_id") and value("client_id") != args.client_id:
            return self.refuse(400, json.dumps({"error": "invalid_request", "error_description": "Identity not found"}))
        count("exchanges")
        now = int(time.time())
        self.reply(200, json.dumps({"access_token": access_token(args, args.client_id), "client_id": args.client_id,
                                    "expires_in": str(args.lifetime), "expires_on": str(now + args.lifetime),
                                    "ext_expires_in": str(args.lifetime), "not_before": str(now),
                                    "resource": "https://storage.azure.com/", "token_type": "Bearer"}))

    def do_POST(self):
        args = self.server.args
        form = urllib.parse.parse_qs(self.body(), keep_blank_values=True)
        value = lambda k: form.get(k, [""])[0]
        if args.mode != "entra":
            return self.refuse(405, "{}")
        parts = self.path.split("?")[0].split("/")
        if len(parts) != 5 or parts[2:] != ["oauth2", "v2.0", "token"]:
            return self.refuse(404, "{}")
        if parts[1] != args.tenant:
            return self.refuse(400, entra_error("invalid_request", "AADSTS90002: Tenant not found."))
        if value("grant_type") != "client_credentials":
            return self.refuse(400, entra_error("unsupported_grant_type", "AADSTS70003: grant type not supported."))
        if value("scope") != SCOPE:
            return self.refuse(400, entra_error("invalid_scope", "AADSTS70011: The provided scope is not valid."))
        if value("client_id") != args.client_id:
            return self.refuse(400, entra_error("unauthorized_client",
                                                "AADSTS700016: Application not found in the directory."))
        if value("client_assertion") or value("client_assertion_type"):
            if (not args.assertion_file or value("client_assertion_type") != ASSERTION_TYPE
                    or value("client_assertion") != read(args.assertion_file) or value("client_secret")):
                return self.refuse(401, entra_error(
                    "invalid_client", "AADSTS700213: No matching federated identity record found for presented "
                    "assertion subject."))
        elif value("client_secret"):
            if not args.client_secret_file or value("client_secret") != read(args.client_secret_file):
                return self.refuse(401, entra_error(
                    "invalid_client", "AADSTS7000215: Invalid client secret provided."))
        else:
            return self.refuse(400, entra_error("invalid_request",
                                                "AADSTS900144: The request body must contain client_secret or "
                                                "client_assertion."))
        count("exchanges")
        self.reply(200, json.dumps({"token_type": "Bearer", "expires_in": args.lifetime,
                                    "ext_expires_in": args.lifetime, "access_token": access_token(args, args.client_id)}))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["entra", "imds"], required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--assertion-file", default="")
    parser.add_argument("--client-secret-file", default="")
    parser.add_argument("--lifetime", type=int, default=3600)
    parser.add_argument("--audience", default="https://storage.azure.com")
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.args = args
    server.serve_forever()


if __name__ == "__main__":
    main()
