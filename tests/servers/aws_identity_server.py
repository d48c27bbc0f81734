#!/usr/bin/env python3
"""Test identity endpoints for the AWS credential chain, each handing out temporary credentials that
moto (auth on) really verifies on every S3 request.

  aws_identity_server.py --mode sts|container|imds --port P
                         --moto URL --key-id ID --secret S --role-arn ARN
                         [--token-file F] [--path /v1/credentials] [--role-name NAME] [--lifetime SECONDS]

moto's own STS cannot serve AssumeRoleWithWebIdentity with auth on (it wants an Authorization
header on every action), so each mode checks what a real endpoint checks and then obtains the
credentials from moto's signed AssumeRole (signed here by boto3 with --key-id/--secret):

  sts        POST / (form) Action=AssumeRoleWithWebIdentity, Version=2011-06-15, RoleArn equal to
             --role-arn, RoleSessionName, WebIdentityToken equal to the content of --token-file (read
             at every request, so a test can rotate it). Anything else: an STS <ErrorResponse>
             (InvalidIdentityToken, AccessDenied, InvalidAction, MissingParameter) with 400/403.
  container  GET --path with an Authorization header equal to the content of --token-file (ECS /
             EKS Pod Identity). Otherwise 401 (no header) or 403 (wrong one).
  imds       IMDSv2: PUT /latest/api/token needs X-aws-ec2-metadata-token-ttl-seconds (1..21600)
             and returns a session token; every GET needs X-aws-ec2-metadata-token with one (401
             otherwise); GET /latest/meta-data/iam/security-credentials/ lists --role-name, GET
             .../<role-name> returns the credentials JSON. IMDSv1 (a GET without a token) is refused.

Every answer announces Expiration = now + --lifetime seconds (default 3600), whatever moto's own
credentials last, so tests can exercise refresh with lifetimes of seconds.

GET /stats returns {"exchanges": N, "refused": M}: credentials handed out, requests refused.
"""
import argparse
import datetime
import json
import secrets
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3

LOCK = threading.Lock()
STATS = {"exchanges": 0, "refused": 0}
IMDS_TOKENS = set()


def count(name):
    with LOCK:
        STATS[name] += 1


def expected_token(args):
    with open(args.token_file, encoding="utf-8") as f:
        return f.read().strip()


def moto_credentials(args, session_name):
    sts = boto3.client("sts", endpoint_url=args.moto, region_name="us-east-1", aws_access_key_id=args.key_id,
                       aws_secret_access_key=args.secret)
    c = sts.assume_role(RoleArn=args.role_arn, RoleSessionName=session_name, DurationSeconds=3600)["Credentials"]
    expiration = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=args.lifetime)
    return c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"], expiration.strftime("%Y-%m-%dT%H:%M:%SZ")


def sts_error(code, message):
    return ("<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type>"
            f"<Code>{code}</Code><Message>{message}</Message></Error><RequestId>r-1</RequestId></ErrorResponse>")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *a):  # to the log file, never a token
        sys.stderr.write("%s %s\n" % (self.command, self.path.split("?")[0]))

    def reply(self, status, body, content_type="application/json"):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def refuse(self, status, body, content_type="application/json"):
        count("refused")
        self.reply(status, body, content_type)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n).decode() if n else ""

    def handle_one_request(self):
        try:
            super().handle_one_request()
        except Exception as e:  # moto refused: say so, rather than cut the connection
            sys.stderr.write("error: %s\n" % e)
            try:
                self.reply(500, sts_error("InternalFailure", "the test server failed; see its log"), "text/xml")
            except Exception:
                pass

    def do_GET(self):
        if self.path == "/stats":
            with LOCK:
                return self.reply(200, json.dumps(STATS))
        mode = self.server.args.mode
        if mode == "container":
            return self.container()
        if mode == "imds":
            return self.imds_get()
        self.refuse(405, sts_error("InvalidAction", "use POST"), "text/xml")

    def do_PUT(self):
        self.body()
        if self.server.args.mode != "imds" or self.path != "/latest/api/token":
            return self.refuse(404, "{}")
        ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds", "")
        if not ttl.isdigit() or not 1 <= int(ttl) <= 21600:
            return self.refuse(400, "missing or invalid X-aws-ec2-metadata-token-ttl-seconds", "text/plain")
        token = secrets.token_urlsafe(32)
        with LOCK:
            IMDS_TOKENS.add(token)
        self.reply(200, token, "text/plain")

    def do_POST(self):
        if self.server.args.mode != "sts":
            return self.refuse(405, "{}")
        args = self.server.args
        form = urllib.parse.parse_qs(self.body(), keep_blank_values=True)
        value = lambda k: form.get(k, [""])[0]
        if value("Action") != "AssumeRoleWithWebIdentity" or value("Version") != "2011-06-15":
            return self.refuse(400, sts_error("InvalidAction", "not AssumeRoleWithWebIdentity 2011-06-15"), "text/xml")
        for k in ("RoleArn", "RoleSessionName", "WebIdentityToken"):
            if not value(k):
                return self.refuse(400, sts_error("MissingParameter", f"{k} is required"), "text/xml")
        if value("WebIdentityToken") != expected_token(args):
            return self.refuse(400, sts_error("InvalidIdentityToken", "the web identity token is not valid"),
                               "text/xml")
        if value("RoleArn") != args.role_arn:
            return self.refuse(403, sts_error("AccessDenied", "not authorized to assume this role"), "text/xml")
        key, secret, token, expiration = moto_credentials(args, value("RoleSessionName"))
        count("exchanges")
        self.reply(200, (
            "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"
            "<AssumeRoleWithWebIdentityResult><Credentials>"
            f"<AccessKeyId>{key}</AccessKeyId><SecretAccessKey>{secret}</SecretAccessKey>"
            f"<SessionToken>{token}</SessionToken><Expiration>{expiration}</Expiration>"
            "</Credentials><SubjectFromWebIdentityToken>system:serviceaccount:demo:stowage</SubjectFromWebIdentityToken>"
            f"<AssumedRoleUser><Arn>{args.role_arn}/s</Arn><AssumedRoleId>AROA:s</AssumedRoleId></AssumedRoleUser>"
            "</AssumeRoleWithWebIdentityResult><ResponseMetadata><RequestId>r-2</RequestId></ResponseMetadata>"
            "</AssumeRoleWithWebIdentityResponse>"), "text/xml")

    def container(self):
        args = self.server.args
        if self.path != args.path:
            return self.refuse(404, "{}")
        given = self.headers.get("Authorization")
        if given is None:
            return self.refuse(401, json.dumps({"message": "Authorization header required"}))
        if given != expected_token(args):
            return self.refuse(403, json.dumps({"message": "invalid authorization token"}))
        key, secret, token, expiration = moto_credentials(args, "container")
        count("exchanges")
        self.reply(200, json.dumps({"AccessKeyId": key, "SecretAccessKey": secret, "Token": token,
                                    "Expiration": expiration, "RoleArn": args.role_arn}))

    def imds_get(self):
        args = self.server.args
        with LOCK:
            known = self.headers.get("X-aws-ec2-metadata-token", "") in IMDS_TOKENS
        if not known:
            return self.refuse(401, "", "text/plain")
        base = "/latest/meta-data/iam/security-credentials/"
        if self.path == base:
            return self.reply(200, args.role_name + "\n", "text/plain")
        if self.path != base + args.role_name:
            return self.refuse(404, "", "text/plain")
        key, secret, token, expiration = moto_credentials(args, "instance")
        count("exchanges")
        self.reply(200, json.dumps({"Code": "Success", "LastUpdated": "2026-01-01T00:00:00Z", "Type": "AWS-HMAC",
                                    "AccessKeyId": key, "SecretAccessKey": secret, "Token": token,
                                    "Expiration": expiration}))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["sts", "container", "imds"], required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--moto", required=True)
    parser.add_argument("--key-id", required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--role-arn", required=True)
    parser.add_argument("--token-file", default="")
    parser.add_argument("--path", default="/v1/credentials")
    parser.add_argument("--role-name", default="stowage-instance-role")
    parser.add_argument("--lifetime", type=int, default=3600)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.args = args
    server.serve_forever()


if __name__ == "__main__":
    main()
