#!/usr/bin/env python3
"""The test API server's admission webhooks (admission.py), checked from both sides: a tiny HTTPS webhook
served by this test records what the server sends and answers as each test tells it, and a raw client (or
the real kubectl, for what a user sees) makes the writes.

The tiny webhook is only here to test the API server: it knows no KubeStash rule, it answers what it is
told. Its certificate is for tiny.webhooks.svc, signed by a CA made now; the server is started with
--webhook-service mappings that send the services tiny and misnamed (port 443) in namespace webhooks to it.
"""
import base64
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from testlib import ApiServer, make_ca, make_server_certificate  # noqa: E402

KUBECTL = os.environ.get("KUBECTL") or shutil.which("kubectl") or "/usr/bin/kubectl"
ADMISSION = "/apis/admissionregistration.k8s.io/v1"
GROUP = "/apis/storage.kubestash.com/v1alpha1"
MERGE = {"Content-Type": "application/merge-patch+json"}
ALL_STORAGES = {"operations": ["*"], "apiGroups": ["storage.kubestash.com"], "apiVersions": ["*"],
                "resources": ["backupstorages"]}


def storage(name, labels=None, **spec):
    meta = {"name": name}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": "storage.kubestash.com/v1alpha1", "kind": "BackupStorage", "metadata": meta,
            "spec": dict({"storage": {"provider": "gcs", "gcs": {"bucket": f"b-{name}"}}}, **spec)}


def b64(data):
    return base64.b64encode(data if isinstance(data, bytes) else json.dumps(data).encode()).decode()


class TinyWebhook:
    """An HTTPS AdmissionReview server: `behaviours[path](review) -> response fields` (uid added), or a
    (status, body bytes) pair sent as is. Every request is recorded as (path with query, review)."""

    def __init__(self, cert, key):
        self.behaviours, self.calls, self.lock = {}, [], threading.Lock()
        webhook = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with webhook.lock:
                    webhook.calls.append((self.path, review))
                behaviour = webhook.behaviours.get(self.path.split("?")[0], lambda review: {"allowed": True})
                answer = behaviour(review)
                if isinstance(answer, tuple):
                    status, body = answer
                else:
                    status = 200
                    body = json.dumps({"apiVersion": review["apiVersion"], "kind": "AdmissionReview",
                                       "response": dict({"uid": review["request"]["uid"]}, **answer)}).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the API server gave up on a slow answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def reviews(self, path):
        with self.lock:
            return [review for called, review in self.calls if called.split("?")[0] == path]

    def queries(self, path):
        with self.lock:
            return [called.split("?", 1)[1] for called, _ in self.calls if called.split("?")[0] == path]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AdmissionTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        directory = cls.tmp.name
        cls.ca, ca_key = make_ca(directory, "webhook-ca")
        cls.other_ca, _ = make_ca(directory, "other-ca")
        cert, key = make_server_certificate(directory, "tiny", cls.ca, ca_key, ["tiny.webhooks.svc"], ["127.0.0.1"])
        cls.webhook = TinyWebhook(cert, key)
        address = f"127.0.0.1:{cls.webhook.port}"
        cls.server = ApiServer(directory, tls=True, token="t0ken", args=[
            "--webhook-service", f"webhooks/tiny={address}", "--webhook-service", f"webhooks/misnamed:443={address}"])
        cls.server.__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.server.__exit__(None, None, None)
        cls.webhook.close()
        cls.tmp.cleanup()

    def setUp(self):
        self.c = self.server.client()
        self.name = self._testMethodName[5:].replace("_", "-")
        self.ns = self.name
        self.configurations = []

    def tearDown(self):
        for path in self.configurations:
            self.c.request("DELETE", path)
        self.c.close()

    # ---- helpers

    def path(self, suffix):
        return f"/{self.name}/{suffix}"

    def hook(self, name, suffix, rules=None, ca=None, service="tiny", url=None, **fields):
        """A webhook entry calling the tiny webhook at /<test>/<suffix>."""
        client = {"url": url} if url else {"service": {"namespace": "webhooks", "name": service,
                                                       "path": self.path(suffix)}}
        with open(ca or self.ca, "rb") as f:
            client["caBundle"] = b64(f.read())
        return dict({"name": f"{name}.{self.name}.stowage.test", "clientConfig": client,
                     "rules": rules or [ALL_STORAGES], "sideEffects": "None", "admissionReviewVersions": ["v1"]},
                    **fields)

    def configure(self, kind, *hooks, name=None):
        plural = kind.lower() + "s"
        body = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": kind,
                "metadata": {"name": name or self.name}, "webhooks": list(hooks)}
        status, obj = self.c.request("POST", f"{ADMISSION}/{plural}", body)
        self.assertEqual(status, 201, obj)
        self.configurations.append(f"{ADMISSION}/{plural}/{obj['metadata']['name']}")
        return obj

    def validating(self, *hooks, name=None):
        return self.configure("ValidatingWebhookConfiguration", *hooks, name=name)

    def mutating(self, *hooks, name=None):
        return self.configure("MutatingWebhookConfiguration", *hooks, name=name)

    def storages(self, ns=None):
        return f"{GROUP}/namespaces/{ns or self.ns}/backupstorages"

    def create(self, name, ns=None, expect=201, **kw):
        status, obj = self.c.request("POST", self.storages(ns), storage(name, **kw))
        self.assertEqual(status, expect, obj)
        return obj

    def failure_message(self, name, post_error, url_path, timeout=10, service="tiny"):
        url = f"https://{service}.webhooks.svc:443{self.path(url_path)}?timeout={timeout}s"
        return (f'Internal error occurred: failed calling webhook "{name}.{self.name}.stowage.test": '
                f'failed to call webhook: Post "{url}": {post_error}')

    # ---- configurations

    def test_configurations_are_served_defaulted_and_validated(self):
        status, group = self.c.request("GET", ADMISSION)
        names = {r["name"]: r for r in group["resources"]}
        for plural in ("mutatingwebhookconfigurations", "validatingwebhookconfigurations"):
            self.assertFalse(names[plural]["namespaced"])
            self.assertEqual(names[plural]["categories"], ["api-extensions"])
        obj = self.validating(self.hook("v", "v"))
        hook = obj["webhooks"][0]
        self.assertEqual((hook["failurePolicy"], hook["matchPolicy"], hook["timeoutSeconds"], hook["namespaceSelector"],
                          hook["objectSelector"], hook["rules"][0]["scope"], hook["clientConfig"]["service"]["port"]),
                         ("Fail", "Equivalent", 10, {}, {}, "*", 443))
        self.assertEqual(self.mutating(self.hook("m", "m"))["webhooks"][0]["reinvocationPolicy"], "Never")

        def refused(*hooks):
            body = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
                    "metadata": {"name": "bad"}, "webhooks": list(hooks)}
            status, answer = self.c.request("POST", f"{ADMISSION}/validatingwebhookconfigurations", body)
            self.assertEqual((status, answer["reason"]), (422, "Invalid"), answer)
            return answer["message"]

        prefix = 'ValidatingWebhookConfiguration.admissionregistration.k8s.io "bad" is invalid: '
        self.assertEqual(refused(self.hook("v", "v", sideEffects="Some")),
                         prefix + 'webhooks[0].sideEffects: Unsupported value: "Some": supported values: "None", '
                                  '"NoneOnDryRun"')
        no_client = self.hook("v", "v")
        del no_client["clientConfig"]["service"]
        self.assertEqual(refused(no_client),
                         prefix + "webhooks[0].clientConfig.url: Required value: exactly one of url or service is required")
        self.assertEqual(refused(self.hook("v", "v", timeoutSeconds=31), self.hook("v", "v", failurePolicy="Never")),
                         prefix + "[webhooks[0].timeoutSeconds: Invalid value: 31: the timeout value must be between 1 "
                                  'and 30 seconds, webhooks[1].name: Duplicate value: "v.configurations-are-served-'
                                  'defaulted-and-validated.stowage.test", webhooks[1].failurePolicy: Unsupported value: '
                                  '"Never": supported values: "Fail", "Ignore"]')
        unversioned = self.hook("v", "v")
        del unversioned["admissionReviewVersions"]
        self.assertIn("webhooks[0].admissionReviewVersions: Required value: must specify one of v1, v1beta1",
                      refused(unversioned))
        self.assertIn('webhooks[0].name: Invalid value: "short.name": should be a domain with at least three segments',
                      refused(dict(self.hook("v", "v"), name="short.name")))

    def test_configurations_are_never_sent_to_webhooks(self):
        # A webhook on everything that cannot be reached must not lock its own configuration in.
        everything = {"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*/*"]}
        self.validating(self.hook("all", "all", rules=[everything], url=f"https://127.0.0.1:{closed_port()}/"))
        self.assertEqual(self.c.request("POST", f"{GROUP}/namespaces/{self.ns}/backupstorages",
                                        storage("blocked"))[0], 500)
        status, body = self.c.request("DELETE", self.configurations.pop())
        self.assertEqual(status, 200, body)
        self.create("free")

    # ---- mutation and validation

    def test_mutation_then_validation_see_what_is_stored(self):
        defaults = [{"op": "add", "path": "/spec/usagePolicy", "value": {"allowedNamespaces": {"from": "Same"}}},
                    {"op": "add", "path": "/metadata/labels", "value": {"mutated": "yes"}}]
        self.webhook.behaviours[self.path("mutate")] = lambda review: {
            "allowed": True, "patchType": "JSONPatch", "patch": b64(defaults)}
        self.mutating(self.hook("m", "mutate"))
        self.validating(self.hook("v", "validate"))
        obj = self.create("s")
        self.assertEqual(obj["spec"]["usagePolicy"], {"allowedNamespaces": {"from": "Same"}})
        self.assertEqual(obj["metadata"]["labels"], {"mutated": "yes"})
        stored = self.c.request("GET", f"{self.storages()}/s")[1]
        self.assertEqual(stored["spec"]["usagePolicy"], {"allowedNamespaces": {"from": "Same"}})

        mutated, validated = self.webhook.reviews(self.path("mutate"))[0], self.webhook.reviews(self.path("validate"))[0]
        request = mutated["request"]
        self.assertEqual((mutated["apiVersion"], mutated["kind"]), ("admission.k8s.io/v1", "AdmissionReview"))
        self.assertEqual((request["operation"], request["namespace"], request["name"], request["dryRun"]),
                         ("CREATE", self.ns, "s", False))
        self.assertEqual(request["kind"], {"group": "storage.kubestash.com", "version": "v1alpha1",
                                           "kind": "BackupStorage"})
        self.assertEqual(request["resource"], {"group": "storage.kubestash.com", "version": "v1alpha1",
                                               "resource": "backupstorages"})
        self.assertEqual(request["userInfo"]["username"], "system:admin")
        self.assertEqual(request["options"], {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"})
        self.assertNotIn("usagePolicy", request["object"]["spec"])       # before the mutation
        self.assertIsNone(request["oldObject"])
        seen = validated["request"]["object"]
        self.assertEqual(seen["spec"]["usagePolicy"], {"allowedNamespaces": {"from": "Same"}})  # after it
        self.assertTrue(seen["metadata"]["uid"] and seen["metadata"]["generation"] == 1)  # as it will be stored
        self.assertNotEqual(mutated["request"]["uid"], validated["request"]["uid"])

        # An update (PUT) and a merge patch are UPDATEs with the stored object as oldObject.
        stored["spec"]["default"] = True
        status, updated = self.c.request("PUT", f"{self.storages()}/s", stored)
        self.assertEqual(status, 200, updated)
        status, patched = self.c.request("PATCH", f"{self.storages()}/s", {"spec": {"deletionPolicy": "WipeOut"}},
                                         headers=MERGE)
        self.assertEqual((status, patched["spec"]["deletionPolicy"], patched["spec"]["default"]), (200, "WipeOut", True))
        for review in self.webhook.reviews(self.path("validate"))[1:]:
            self.assertEqual((review["request"]["operation"], review["request"]["options"]["kind"]),
                             ("UPDATE", "UpdateOptions"))
        last = self.webhook.reviews(self.path("validate"))[-1]["request"]
        self.assertEqual((last["oldObject"]["spec"].get("deletionPolicy"), last["object"]["spec"]["deletionPolicy"]),
                         (None, "WipeOut"))

    def test_mutating_webhooks_run_in_configuration_name_order(self):
        def append(value):
            return lambda review: {"allowed": True, "patchType": "JSONPatch",
                                   "patch": b64([{"op": "add", "path": "/metadata/annotations",
                                                  "value": dict((review["request"]["object"]["metadata"].get(
                                                      "annotations") or {}), **{value: str(len(
                                                          review["request"]["object"]["metadata"].get("annotations")
                                                          or {}))})}])}
        self.webhook.behaviours[self.path("a")] = append("first")
        self.webhook.behaviours[self.path("b")] = append("second")
        self.mutating(self.hook("b", "b"), name=f"{self.name}-b")
        self.mutating(self.hook("a", "a"), name=f"{self.name}-a")
        self.assertEqual(self.create("s")["metadata"]["annotations"], {"first": "0", "second": "1"})

    def test_denial_is_the_webhooks_status_with_the_servers_message(self):
        self.webhook.behaviours[self.path("deny")] = lambda review: {
            "allowed": False, "status": {"code": 403, "reason": "Forbidden",
                                         "message": "multiple default BackupStorages are not allowed within the same "
                                                    "namespace"}}
        self.webhook.behaviours[self.path("bare")] = lambda review: {"allowed": False}
        self.validating(self.hook("deny", "deny", objectSelector={"matchLabels": {"deny": "status"}}),
                        self.hook("bare", "bare", objectSelector={"matchLabels": {"deny": "bare"}}))
        status, body = self.c.request("POST", self.storages(), storage("s", labels={"deny": "status"}))
        self.assertEqual(body, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                "message": f'admission webhook "deny.{self.name}.stowage.test" denied the request: '
                                           "multiple default BackupStorages are not allowed within the same namespace",
                                "reason": "Forbidden", "code": 403})
        self.assertEqual(status, 403)
        status, body = self.c.request("POST", self.storages(), storage("s", labels={"deny": "bare"}))
        self.assertEqual((status, body["message"]), (400, f'admission webhook "bare.{self.name}.stowage.test" denied '
                                                          "the request without explanation"))
        self.assertNotIn("reason", body)
        self.assertEqual(self.c.request("GET", f"{self.storages()}/s")[0], 404)
        self.create("s")

    def test_delete_is_admitted_and_may_not_be_patched(self):
        delete_only = dict(ALL_STORAGES, operations=["DELETE"])
        self.webhook.behaviours[self.path("v")] = lambda review: {
            "allowed": review["request"]["oldObject"]["metadata"]["name"] != "kept", "status": {"message": "kept"}}
        self.validating(self.hook("v", "v", rules=[delete_only]))
        self.create("kept")
        self.create("gone")
        self.assertEqual(self.webhook.reviews(self.path("v")), [])  # CREATE does not match the rule
        status, body = self.c.request("DELETE", f"{self.storages()}/kept")
        self.assertEqual((status, body["message"]), (400, f'admission webhook "v.{self.name}.stowage.test" denied the '
                                                          "request: kept"))
        self.assertEqual(self.c.request("DELETE", f"{self.storages()}/gone")[0], 200)
        review = self.webhook.reviews(self.path("v"))[-1]["request"]
        self.assertEqual((review["operation"], review["object"], review["options"]["kind"]),
                         ("DELETE", None, "DeleteOptions"))
        # deletecollection asks for each item: the denied one stays.
        self.create("other")
        status, body = self.c.request("DELETE", self.storages())
        self.assertEqual(status, 400, body)
        self.assertEqual(self.c.request("GET", f"{self.storages()}/kept")[0], 200)

        self.webhook.behaviours[self.path("m")] = lambda review: {
            "allowed": True, "patchType": "JSONPatch", "patch": b64([{"op": "add", "path": "/x", "value": 1}])}
        self.mutating(self.hook("m", "m", rules=[delete_only], failurePolicy="Ignore"))
        status, body = self.c.request("DELETE", f"{self.storages()}/kept")
        self.assertEqual((status, body["message"]), (500, f'Internal error occurred: admission webhook "m.{self.name}'
                                                          '.stowage.test" attempted to modify the object, which is not '
                                                          "supported for this operation"))

    def test_warnings_come_back_as_warning_headers(self):
        self.webhook.behaviours[self.path("w")] = lambda review: {"allowed": True,
                                                                  "warnings": ['prefix "p/" ends with a slash']}
        self.validating(self.hook("w", "w"))
        status, headers, _ = self.c.raw("POST", self.storages(), storage("s"))
        self.assertEqual(status, 201)
        self.assertEqual(headers.get_all("Warning"), ['299 - "prefix \\"p/\\" ends with a slash"'])

    def test_a_write_in_between_runs_admission_again(self):
        # The webhook's first answer comes after it wrote the object itself: the admitted write would
        # overwrite a newer object unadmitted. The server must notice (resourceVersion) and admit again,
        # as GuaranteedUpdate does, with the newer object as oldObject.
        self.create("s", labels={"watched": "yes"})
        item = f"{self.storages()}/s"
        race = {"armed": False}

        def racing(review):
            if race["armed"]:
                race["armed"] = False
                client = self.server.client()
                status, _ = client.request("PATCH", item, {"metadata": {"annotations": {"raced": review["request"][
                    "uid"]}}}, headers=MERGE)
                client.close()
                assert status == 200, status
            return {"allowed": True}
        self.webhook.behaviours[self.path("v")] = racing
        self.validating(self.hook("v", "v", rules=[dict(ALL_STORAGES, operations=["UPDATE"])],
                                  objectSelector={"matchLabels": {"watched": "yes"}}))
        for method, body, headers in (("PUT", storage("s", labels={"watched": "yes"}, default=True), None),
                                      ("PATCH", {"spec": {"deletionPolicy": "WipeOut"}}, MERGE)):
            before = len(self.webhook.reviews(self.path("v")))
            race["armed"] = True
            status, obj = self.c.request(method, item, body, headers=headers)  # no resourceVersion: unconditional
            self.assertEqual(status, 200, obj)
            reviews = [r["request"] for r in self.webhook.reviews(self.path("v"))[before:]]
            self.assertEqual(len(reviews), 3, method)  # the write, the webhook's own write, the write again
            raced = reviews[0]["uid"]
            self.assertEqual(reviews[1]["object"]["metadata"]["annotations"], {"raced": raced})
            self.assertEqual(reviews[2]["oldObject"]["metadata"]["annotations"], {"raced": raced})
            self.assertTrue(obj["spec"]["default"])
        self.assertEqual((obj["metadata"]["annotations"], obj["spec"]["deletionPolicy"]), ({"raced": raced}, "WipeOut"))

    def test_url_service_mapped_at_run_time_and_v1beta1(self):
        # clientConfig.url names its host itself; the certificate must be valid for it (here an IP SAN).
        self.validating(self.hook("url", "url", url=f"https://127.0.0.1:{self.webhook.port}{self.path('url')}",
                                  admissionReviewVersions=["v1beta1"]),
                        self.hook("late", "late", objectSelector={"matchLabels": {"late": "yes"}}))
        late = self.c.request("GET", self.configurations[-1])[1]
        late["webhooks"][1]["clientConfig"]["service"]["port"] = 8443  # a port no mapping names yet
        self.assertEqual(self.c.request("PUT", self.configurations[-1], late)[0], 200)
        self.create("a")
        review = self.webhook.reviews(self.path("url"))[0]
        self.assertEqual((review["apiVersion"], self.webhook.queries(self.path("url"))),
                         ("admission.k8s.io/v1beta1", ["timeout=10s"]))
        status, body = self.c.request("POST", self.storages(), storage("b", labels={"late": "yes"}))
        self.assertEqual((status, body["message"]), (500, self.failure_message(
            "late", 'no service port 8443 found for service "tiny"', "late").replace("svc:443", "svc:8443")))
        self.server.control(action="set", webhook_services=[f"webhooks/tiny:8443=127.0.0.1:{self.webhook.port}"])
        self.create("b", labels={"late": "yes"})
        self.assertEqual(len(self.webhook.reviews(self.path("late"))), 1)

    def test_server_side_apply_that_creates_is_a_create(self):
        self.validating(self.hook("v", "v"))
        apply = {"Content-Type": "application/apply-patch+yaml"}
        status, obj = self.c.request("PATCH", f"{self.storages()}/s?fieldManager=test", storage("s"), headers=apply)
        self.assertEqual(status, 201, obj)
        status, obj = self.c.request("PATCH", f"{self.storages()}/s?fieldManager=test", storage("s", default=True),
                                     headers=apply)
        self.assertEqual(status, 200, obj)
        reviews = [r["request"] for r in self.webhook.reviews(self.path("v"))]
        self.assertEqual([(r["operation"], r["options"]["kind"], r["options"]["fieldManager"]) for r in reviews],
                         [("CREATE", "CreateOptions", "test"), ("UPDATE", "UpdateOptions", "test")])

    # ---- failures and the failure policy

    def test_wrong_ca_bundle_fails_the_tls_verification(self):
        self.validating(self.hook("fail", "fail", ca=self.other_ca, objectSelector={"matchLabels": {"p": "fail"}}),
                        self.hook("ignore", "ignore", ca=self.other_ca, failurePolicy="Ignore"))
        status, body = self.c.request("POST", self.storages(), storage("s", labels={"p": "fail"}))
        self.assertEqual((status, body["reason"]), (500, "InternalError"))
        expected = self.failure_message("fail", "tls: failed to verify certificate: x509: certificate signed by "
                                                "unknown authority", "fail")
        self.assertEqual(body["message"], expected)
        self.assertEqual(body["details"]["causes"], [{"message": expected[len("Internal error occurred: "):]}])
        garbage = self.hook("garbage", "garbage", objectSelector={"matchLabels": {"p": "garbage"}})
        garbage["clientConfig"]["caBundle"] = b64(b"not a certificate")
        self.validating(garbage, name=f"{self.name}-garbage")
        status, body = self.c.request("POST", self.storages(), storage("s", labels={"p": "garbage"}))
        self.assertEqual((status, body["message"]), (500, (
            f'Internal error occurred: failed calling webhook "garbage.{self.name}.stowage.test": could not get REST '
            "client: unable to load root certificates: unable to parse bytes as PEM block")))
        before = self.server.stats()["admission"].get("failed_open", 0)
        self.create("s")  # only the Ignore webhook applies
        self.assertEqual(self.server.stats()["admission"]["failed_open"], before + 1)
        self.assertEqual(self.webhook.reviews(self.path("fail")) + self.webhook.reviews(self.path("ignore")), [])

    def test_certificate_must_name_the_service(self):
        self.validating(self.hook("v", "v", service="misnamed"))
        status, body = self.c.request("POST", self.storages(), storage("s"))
        self.assertEqual(status, 500)
        self.assertEqual(body["message"], self.failure_message(
            "v", "tls: failed to verify certificate: x509: certificate is valid for tiny.webhooks.svc, not "
                 "misnamed.webhooks.svc", "v", service="misnamed"))

    def test_unreachable_webhook_fail_and_ignore(self):
        port = closed_port()
        self.validating(self.hook("refused", "r", url=f"https://127.0.0.1:{port}/r",
                                  objectSelector={"matchLabels": {"p": "refused"}}),
                        self.hook("unknown", "u", service="nowhere", objectSelector={"matchLabels": {"p": "unknown"}}),
                        self.hook("ignored", "i", url=f"https://127.0.0.1:{port}/i", failurePolicy="Ignore"))
        status, body = self.c.request("POST", self.storages(), storage("a", labels={"p": "refused"}))
        self.assertEqual((status, body["message"]), (500, (
            f'Internal error occurred: failed calling webhook "refused.{self.name}.stowage.test": failed to call '
            f'webhook: Post "https://127.0.0.1:{port}/r?timeout=10s": dial tcp 127.0.0.1:{port}: connect: connection '
            "refused")))
        status, body = self.c.request("POST", self.storages(), storage("b", labels={"p": "unknown"}))
        self.assertEqual((status, body["message"]), (500, self.failure_message("unknown", 'service "nowhere" not found',
                                                                               "u", service="nowhere")))
        self.create("c")  # only the ignored one applies

    def test_timeout_is_honoured(self):
        self.webhook.behaviours[self.path("slow")] = lambda review: time.sleep(3) or {"allowed": True}
        self.validating(self.hook("fail", "slow", timeoutSeconds=1, objectSelector={"matchLabels": {"p": "fail"}}),
                        self.hook("ignore", "slow", timeoutSeconds=1, failurePolicy="Ignore"))
        started = time.monotonic()
        status, body = self.c.request("POST", self.storages(), storage("s", labels={"p": "fail"}))
        self.assertEqual((status, body["message"]), (500, self.failure_message("fail", "context deadline exceeded",
                                                                               "slow", timeout=1)))
        self.assertLess(time.monotonic() - started, 2.5)  # both webhooks applied: the first one fails it
        started = time.monotonic()
        self.create("t")
        self.assertLess(time.monotonic() - started, 2.5)
        self.assertEqual(set(self.webhook.queries(self.path("slow"))), {"timeout=1s"})

    def test_invalid_answers_are_call_failures(self):
        self.webhook.behaviours[self.path("uid")] = lambda review: {"uid": "other", "allowed": True}
        self.webhook.behaviours[self.path("patch")] = lambda review: {
            "allowed": True, "patchType": "JSONPatch", "patch": b64([])}
        self.webhook.behaviours[self.path("500")] = lambda review: (500, b"boom")
        self.validating(self.hook("uid", "uid", objectSelector={"matchLabels": {"p": "uid"}}),
                        self.hook("patch", "patch", objectSelector={"matchLabels": {"p": "patch"}}),
                        self.hook("error", "500", objectSelector={"matchLabels": {"p": "500"}}))
        for label, tail in (("uid", 'received invalid webhook response: expected response.uid="'),
                            ("patch", "received invalid webhook response: validating webhook may not return "
                                      "response.patch"),
                            ("500", 'failed to call webhook: an error on the server ("boom") has prevented the '
                                    "request from succeeding")):
            status, body = self.c.request("POST", self.storages(), storage("s", labels={"p": label}))
            self.assertEqual(status, 500, body)
            self.assertIn(f'failed calling webhook "{"error" if label == "500" else label}.{self.name}.stowage.test": '
                          + tail, body["message"])

    # ---- which webhooks are called

    def test_rules_and_scope(self):
        def counted(suffix):
            return len(self.webhook.reviews(self.path(suffix)))
        self.validating(
            self.hook("status", "status", rules=[dict(ALL_STORAGES, resources=["backupstorages/status"])]),
            self.hook("star", "star", rules=[dict(ALL_STORAGES, resources=["*"])]),
            self.hook("cluster", "cluster", rules=[dict(ALL_STORAGES, apiGroups=["*"], resources=["*"],
                                                        scope="Cluster")]),
            self.hook("core", "core", rules=[{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                                              "resources": ["configmaps"], "scope": "Namespaced"}]))
        self.create("s")
        self.assertEqual((counted("status"), counted("star"), counted("cluster")), (0, 1, 0))
        status, obj = self.c.request("PATCH", f"{self.storages()}/s/status", {"status": {"phase": "Ready"}},
                                     headers=MERGE)
        self.assertEqual(status, 200, obj)
        self.assertEqual((counted("status"), counted("star")), (1, 1))  # `*` is no subresource
        review = self.webhook.reviews(self.path("status"))[0]["request"]
        self.assertEqual((review["subResource"], review["object"]["status"]), ("status", {"phase": "Ready"}))
        self.c.request("POST", f"/api/v1/namespaces/{self.ns}/configmaps",
                       {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}})
        self.c.request("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                      "metadata": {"name": f"{self.ns}-new"}})
        self.assertEqual((counted("core"), counted("cluster")), (1, 1))  # a Namespace is cluster-scoped
        self.assertEqual(self.webhook.reviews(self.path("cluster"))[0]["request"]["kind"]["kind"], "Namespace")

    def test_namespace_and_object_selectors(self):
        for name, labels in (("prod", {"env": "prod"}), ("dev", {"env": "dev"})):
            status, _ = self.c.request("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                                      "metadata": {"name": f"{self.ns}-{name}",
                                                                                   "labels": labels}})
            self.assertEqual(status, 201)
        self.validating(self.hook("ns", "ns", namespaceSelector={"matchExpressions": [
                            {"key": "env", "operator": "In", "values": ["prod"]}]}),
                        self.hook("obj", "obj", objectSelector={"matchLabels": {"watched": "yes"}}))
        self.create("a", ns=f"{self.ns}-prod")
        self.create("a", ns=f"{self.ns}-dev")
        self.create("a", ns=f"{self.ns}-implicit")
        self.assertEqual([r["request"]["namespace"] for r in self.webhook.reviews(self.path("ns"))], [f"{self.ns}-prod"])
        self.assertEqual(self.webhook.reviews(self.path("obj")), [])
        self.create("b", labels={"watched": "yes"})
        item = f"{self.storages()}/b"
        status, obj = self.c.request("PATCH", item, {"metadata": {"labels": {"watched": None}}}, headers=MERGE)
        self.assertEqual(status, 200, obj)
        # CREATE by the new object's labels, UPDATE by the old one's although the new one lost them.
        self.assertEqual([r["request"]["operation"] for r in self.webhook.reviews(self.path("obj"))],
                         ["CREATE", "UPDATE"])
        self.c.request("PATCH", item, {"spec": {"default": True}}, headers=MERGE)
        self.assertEqual(len(self.webhook.reviews(self.path("obj"))), 2)

    def test_dry_run_reaches_webhooks_and_stores_nothing(self):
        self.webhook.behaviours[self.path("m")] = lambda review: {
            "allowed": True, "patchType": "JSONPatch",
            "patch": b64([{"op": "add", "path": "/metadata/labels", "value": {"m": "yes"}}])}
        self.mutating(self.hook("m", "m", sideEffects="NoneOnDryRun"))
        status, obj = self.c.request("POST", self.storages() + "?dryRun=All", storage("s"))
        self.assertEqual((status, obj["metadata"]["labels"]), (201, {"m": "yes"}))
        review = self.webhook.reviews(self.path("m"))[0]["request"]
        self.assertEqual((review["dryRun"], review["options"]["dryRun"]), (True, ["All"]))
        self.assertEqual(self.c.request("GET", f"{self.storages()}/s")[0], 404)

    # ---- what kubectl users see

    def kubectl(self, *args, stdin=None):
        directory = os.path.join(self.tmp.name, "kubectl")
        os.makedirs(directory, exist_ok=True)
        kubeconfig = os.path.join(directory, "kubeconfig")
        with open(kubeconfig, "w") as f:
            json.dump({"apiVersion": "v1", "kind": "Config", "current-context": "test",
                       "clusters": [{"name": "test", "cluster": {"server": self.server.url,
                                                                 "certificate-authority": self.server.ca}}],
                       "users": [{"name": "test", "user": {"token": self.server.token}}],
                       "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test",
                                                                 "namespace": self.ns}}]}, f)
        env = dict(os.environ, KUBECONFIG=kubeconfig, KUBECACHEDIR=os.path.join(directory, "cache"), HOME=directory)
        return subprocess.run([KUBECTL, *args], input=stdin, capture_output=True, text=True, env=env, timeout=30)

    @unittest.skipUnless(os.path.exists(KUBECTL), "kubectl not found")
    def test_kubectl_apply_prints_the_denial(self):
        message = "multiple default BackupStorages are not allowed within the same namespace"
        self.webhook.behaviours[self.path("v")] = lambda review: {
            "allowed": not review["request"]["object"]["spec"].get("default"),
            "status": {"code": 403, "reason": "Forbidden", "message": message}}
        self.webhook.behaviours[self.path("m")] = lambda review: {
            "allowed": True, "warnings": ["usagePolicy defaulted"], "patchType": "JSONPatch",
            "patch": b64([{"op": "add", "path": "/spec/usagePolicy", "value": {"allowedNamespaces": {"from": "Same"}}}])}
        # The configurations themselves go in with kubectl too, and read back as kubectl lists them.
        configuration = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
                         "metadata": {"name": self.name}, "webhooks": [self.hook("v", "v")]}
        result = self.kubectl("apply", "-f", "-", stdin=json.dumps(configuration))
        self.assertEqual((result.returncode, result.stdout.strip()), (0, "validatingwebhookconfiguration.admission"
                                                                          f"registration.k8s.io/{self.name} created"),
                         result.stderr)
        self.configurations.append(f"{ADMISSION}/validatingwebhookconfigurations/{self.name}")
        self.mutating(self.hook("m", "m", rules=[dict(ALL_STORAGES, operations=["CREATE"])]))
        result = self.kubectl("get", "validatingwebhookconfigurations", self.name)
        self.assertEqual(result.stdout.split()[:5], ["NAME", "WEBHOOKS", "AGE", self.name, "1"], result.stdout)

        path = os.path.join(self.tmp.name, "storage.yaml")
        with open(path, "w") as f:
            json.dump(storage("s", default=True), f)
        result = self.kubectl("apply", "-f", path)
        self.assertEqual(result.returncode, 1)
        self.assertEqual(result.stderr.strip().splitlines()[-1],
                         f'Error from server (Forbidden): error when creating "{path}": admission webhook '
                         f'"v.{self.name}.stowage.test" denied the request: {message}')

        with open(path, "w") as f:
            json.dump(storage("s"), f)
        result = self.kubectl("apply", "-f", path)
        self.assertEqual((result.returncode, result.stdout.strip()),
                         (0, "backupstorage.storage.kubestash.com/s created"), result.stderr)
        self.assertEqual(result.stderr.strip(), "Warning: usagePolicy defaulted")
        stored = json.loads(self.kubectl("get", "bs", "s", "-o", "json").stdout)
        self.assertEqual(stored["spec"]["usagePolicy"], {"allowedNamespaces": {"from": "Same"}})

        with open(path, "w") as f:  # a change to an existing object is a patch: refused the same way
            json.dump(storage("s", default=True), f)
        result = self.kubectl("apply", "-f", path)
        self.assertEqual(result.returncode, 1)
        self.assertIn(f'for: "{path}": error when patching "{path}": admission webhook "v.{self.name}.stowage.test" '
                      f"denied the request: {message}", result.stderr)
        self.assertTrue(result.stderr.startswith("Error from server (Forbidden): error when applying patch:"),
                        result.stderr)

    @unittest.skipUnless(os.path.exists(KUBECTL), "kubectl not found")
    def test_kubectl_prints_a_failed_call(self):
        port = closed_port()
        self.validating(self.hook("v", "v", url=f"https://127.0.0.1:{port}/v"))
        result = self.kubectl("create", "configmap", "c", "--from-literal=a=b")
        self.assertEqual(result.returncode, 0, result.stderr)  # the rule names backupstorages only
        result = self.kubectl("apply", "-f", "-", stdin=json.dumps(storage("s")))
        self.assertEqual(result.returncode, 1)
        self.assertEqual(result.stderr.strip(), (
            'Error from server (InternalError): error when creating "STDIN": Internal error occurred: failed calling '
            f'webhook "v.{self.name}.stowage.test": failed to call webhook: Post "https://127.0.0.1:{port}/v?timeout=10s"'
            f": dial tcp 127.0.0.1:{port}: connect: connection refused"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
