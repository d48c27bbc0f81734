#!/usr/bin/env python3
"""The test API server's behaviour over HTTPS with a raw client: write rules, lists, watches, views,
fault switches and counters. Each test works in its own namespace of one shared server."""
import base64
import http.client
import os
import select
import ssl
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from testlib import ApiServer, make_ca, make_client_certificate  # noqa: E402

GROUP = "/apis/storage.kubestash.com/v1alpha1"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"
PARTIAL_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
PARTIAL = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
MERGE = {"Content-Type": "application/merge-patch+json"}
JSON_PATCH = {"Content-Type": "application/json-patch+json"}


def storages(ns):
    return f"{GROUP}/namespaces/{ns}/backupstorages"


def storage(name, provider="s3", labels=None, **spec):
    meta = {"name": name}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": "storage.kubestash.com/v1alpha1", "kind": "BackupStorage", "metadata": meta,
            "spec": dict({"storage": {"provider": provider}}, **spec)}


class ServerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.server = ApiServer(cls.tmp.name, tls=True, token="t0ken", args=["--bookmark-interval", "0.3"])
        cls.server.__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.server.__exit__(None, None, None)
        cls.tmp.cleanup()

    def setUp(self):
        self.c = self.server.client()
        self.ns = self._testMethodName.replace("_", "-")[5:]

    def tearDown(self):
        self.server.control(action="clear_faults")
        self.c.close()

    def create(self, name, **kw):
        status, obj = self.c.request("POST", storages(self.ns), storage(name, **kw))
        self.assertEqual(status, 201, obj)
        return obj

    def item(self, name):
        return f"{storages(self.ns)}/{name}"

    # ------------------------------------------------------------------------------------------ basics

    def test_authentication_and_discovery(self):
        for token in ("", "wrong"):
            client = self.server.client(token=token)
            status, body = client.request("GET", "/api/v1/namespaces")
            client.close()
            self.assertEqual((status, body["kind"], body["reason"], body["code"]), (401, "Status", "Unauthorized", 401))
        status, body = self.c.request("GET", GROUP)
        bs = {r["name"]: r for r in body["resources"]}
        self.assertEqual(bs["backupstorages"]["shortNames"], ["bs"])
        self.assertEqual(bs["backupstorages"]["categories"], ["kubestash", "appscode", "all"])
        self.assertTrue(bs["backupstorages"]["namespaced"])
        self.assertEqual(bs["backupstorages/status"]["verbs"], ["get", "patch", "update"])
        for path in ("/api", "/apis", "/api/v1", "/apis/coordination.k8s.io/v1", "/apis/events.k8s.io/v1",
                     "/apis/batch/v1", "/openapi/v3"):
            self.assertEqual(self.c.request("GET", path)[0], 200, path)

    def test_stored_crd_kinds_are_served(self):
        widgets = f"/apis/example.test/v1/namespaces/{self.ns}/widgets"
        self.assertEqual(self.c.request("GET", widgets)[0], 404)
        crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
               "metadata": {"name": "widgets.example.test"},
               "spec": {"group": "example.test", "scope": "Namespaced",
                        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
                        "versions": [{"name": "v1", "served": True, "storage": True,
                                      "schema": {"openAPIV3Schema": {"type": "object"}}},
                                     {"name": "v0", "served": False, "storage": False}]}}
        status, body = self.c.request("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
        self.assertEqual(status, 201, body)
        status, body = self.c.request("GET", "/apis/example.test/v1")
        self.assertEqual(status, 200, body)
        self.assertEqual([(r["name"], r["kind"], r["namespaced"], r["shortNames"]) for r in body["resources"]],
                         [("widgets", "Widget", True, ["wd"])])
        self.assertEqual(self.c.request("GET", "/apis/example.test/v0")[0], 404)  # not served
        self.assertIn("apis/example.test/v1", self.c.request("GET", "/openapi/v3")[1]["paths"])
        widget = {"apiVersion": "example.test/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 1}}
        self.assertEqual(self.c.request("POST", widgets, widget)[0], 201)
        status, body = self.c.request("GET", widgets + "/w")
        self.assertEqual((status, body["spec"], body["metadata"]["generation"]), (200, {"size": 1}, 1))

    def test_create_fields_and_errors(self):
        status, obj = self.c.request("POST", storages(self.ns), {**storage(""), "metadata": {"generateName": "gen-"}})
        self.assertEqual(status, 201)
        meta = obj["metadata"]
        self.assertTrue(meta["name"].startswith("gen-") and len(meta["name"]) == 9)
        self.assertEqual(meta["generation"], 1)
        self.assertTrue(meta["uid"] and meta["creationTimestamp"] and meta["resourceVersion"].isdigit())
        self.assertNotIn("status", obj)
        status, body = self.c.request("POST", storages(self.ns), storage(meta["name"]))
        self.assertEqual((status, body["reason"]), (409, "AlreadyExists"))
        with_rv = storage("x")
        with_rv["metadata"]["resourceVersion"] = "5"
        self.assertEqual(self.c.request("POST", storages(self.ns), with_rv)[0], 500)
        self.assertEqual(self.c.request("POST", storages(self.ns), storage("Bad_Name"))[1]["reason"], "Invalid")
        status, body = self.c.request("GET", self.item("missing"))
        self.assertEqual((status, body["reason"]), (404, "NotFound"))
        status, ns = self.c.request("GET", f"/api/v1/namespaces/{self.ns}")
        self.assertEqual((status, ns["status"]["phase"]), (200, "Active"))  # created implicitly

    def test_update_conflict_generation_and_noop(self):
        obj = self.create("a")
        rv = obj["metadata"]["resourceVersion"]
        obj["spec"]["default"] = True
        status, updated = self.c.request("PUT", self.item("a"), obj)
        self.assertEqual((status, updated["metadata"]["generation"]), (200, 2))
        status, body = self.c.request("PUT", self.item("a"), obj)  # obj still carries the old resourceVersion
        self.assertEqual((status, body["reason"]), (409, "Conflict"))
        self.assertEqual(body["details"]["name"], "a")
        updated["metadata"]["labels"] = {"k": "v"}
        status, relabeled = self.c.request("PUT", self.item("a"), updated)
        self.assertEqual(relabeled["metadata"]["generation"], 2)  # metadata is not spec
        status, same = self.c.request("PUT", self.item("a"), relabeled)
        self.assertEqual(same["metadata"]["resourceVersion"], relabeled["metadata"]["resourceVersion"])  # no-op
        self.assertNotEqual(rv, relabeled["metadata"]["resourceVersion"])

    def test_status_subresource(self):
        obj = self.create("a")
        obj["status"] = {"phase": "Ready"}
        status, updated = self.c.request("PUT", self.item("a"), obj)
        self.assertNotIn("status", updated)  # main writes ignore status
        self.assertEqual(updated["metadata"]["resourceVersion"], obj["metadata"]["resourceVersion"])
        patch = {"status": {"phase": "Ready"}, "spec": {"default": True}, "metadata": {"labels": {"x": "y"}}}
        status, patched = self.c.request("PATCH", self.item("a") + "/status", patch, MERGE)
        self.assertEqual((status, patched["status"]), (200, {"phase": "Ready"}))
        self.assertNotIn("default", patched["spec"])
        self.assertNotIn("labels", patched["metadata"])
        self.assertEqual(patched["metadata"]["generation"], 1)
        patched["status"]["phase"] = "NotReady"
        status, put = self.c.request("PUT", self.item("a") + "/status", patched)
        self.assertEqual(put["status"]["phase"], "NotReady")
        status, body = self.c.request("PUT", self.item("a") + "/status", patched)
        self.assertEqual(status, 409)

    def test_repository_with_storage_ref_and_status(self):
        # KubeStash's Repository: what the BackupStorage controller watches for status.repositories.
        path = f"{GROUP}/namespaces/{self.ns}/repositories"
        repo = {"apiVersion": "storage.kubestash.com/v1alpha1", "kind": "Repository", "metadata": {"name": "r1"},
                "spec": {"storageRef": {"name": "st", "namespace": "backup"}, "path": "/demo/data",
                         "appRef": {"apiGroup": "apps", "kind": "StatefulSet", "name": "db"}},
                "status": {"size": "1 B"}}
        status, created = self.c.request("POST", path, repo)
        self.assertEqual(status, 201, created)
        self.assertNotIn("status", created)  # status only through the subresource
        self.assertEqual(created["spec"]["storageRef"], {"name": "st", "namespace": "backup"})
        status, body = self.c.request("GET", GROUP)
        served = {r["name"]: r for r in body["resources"]}
        self.assertEqual(served["repositories/status"]["verbs"], ["get", "patch", "update"])
        status, watch_list = self.c.request("GET", "/apis/storage.kubestash.com/v1alpha1/repositories")
        items = {i["metadata"]["name"]: i for i in watch_list["items"]}  # all namespaces, as an informer lists
        self.assertEqual((items["r1"]["kind"], items["r1"]["apiVersion"]),
                         ("Repository", "storage.kubestash.com/v1alpha1"))
        status, patched = self.c.request("PATCH", f"{path}/r1/status",
                                         {"status": {"size": "12.222 MiB", "phase": "Ready"}}, MERGE)
        self.assertEqual((status, patched["status"]), (200, {"size": "12.222 MiB", "phase": "Ready"}))
        self.assertEqual(patched["metadata"]["generation"], 1)
        self.assertNotEqual(patched["metadata"]["resourceVersion"], created["metadata"]["resourceVersion"])
        status, got = self.c.request("GET", f"{path}/r1")
        self.assertEqual((got["kind"], got["status"]["size"], got["spec"]["path"]),
                         ("Repository", "12.222 MiB", "/demo/data"))

    def test_patches(self):
        self.create("a", default=True, deletionPolicy="WipeOut")
        status, obj = self.c.request("PATCH", self.item("a"), {"spec": {"default": None}}, MERGE)
        self.assertEqual((status, "default" in obj["spec"], obj["metadata"]["generation"]), (200, False, 2))
        ops = [{"op": "test", "path": "/spec/deletionPolicy", "value": "WipeOut"},
               {"op": "add", "path": "/metadata/finalizers", "value": ["f"]},
               {"op": "add", "path": "/metadata/finalizers/-", "value": "g"},
               {"op": "replace", "path": "/spec/deletionPolicy", "value": "Delete"},
               {"op": "copy", "from": "/spec/deletionPolicy", "path": "/spec/copied"},
               {"op": "move", "from": "/spec/copied", "path": "/spec/moved"},
               {"op": "remove", "path": "/spec/moved"}]
        status, obj = self.c.request("PATCH", self.item("a"), ops, JSON_PATCH)
        self.assertEqual(status, 200, obj)
        self.assertEqual((obj["metadata"]["finalizers"], obj["spec"]["deletionPolicy"]), (["f", "g"], "Delete"))
        for failing in ({"op": "test", "path": "/spec/deletionPolicy", "value": "WipeOut"},  # a wrong value
                        {"op": "test", "path": "/metadata/finalizers", "value": ["f"]},
                        {"op": "test", "path": "/spec/default", "value": True}):  # a missing path
            status, body = self.c.request("PATCH", self.item("a"), [failing, {"op": "remove", "path": "/spec"}],
                                          JSON_PATCH)
            self.assertEqual((status, body["reason"]), (422, "Invalid"), failing)
            self.assertIn("test failed", body["details"]["causes"][0]["message"])
        self.assertEqual(self.c.request("GET", self.item("a"))[1]["spec"]["deletionPolicy"], "Delete")
        # Testing a missing member for null passes (the API server's json-patch): the first finalizer.
        self.create("b")
        ops = [{"op": "test", "path": "/metadata/finalizers", "value": None},
               {"op": "add", "path": "/metadata/finalizers", "value": ["kubestash.com/cleanup"]}]
        status, obj = self.c.request("PATCH", self.item("b"), ops, JSON_PATCH)
        self.assertEqual((status, obj["metadata"].get("finalizers")), (200, ["kubestash.com/cleanup"]), obj)
        status, body = self.c.request("PATCH", self.item("b"), ops, JSON_PATCH)  # now present: the test fails
        self.assertEqual(status, 422)
        status, body = self.c.request("PATCH", self.item("a"), {"spec": {}},
                                      {"Content-Type": "application/strategic-merge-patch+json"})
        self.assertEqual((status, body["reason"]), (415, "UnsupportedMediaType"))
        stale = {"metadata": {"resourceVersion": "1"}, "spec": {"default": False}}
        self.assertEqual(self.c.request("PATCH", self.item("a"), stale, MERGE)[0], 409)
        secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"k": "v"}}
        status, obj = self.c.request("POST", f"/api/v1/namespaces/{self.ns}/secrets", secret)
        self.assertEqual((status, obj["data"], obj["type"]), (201, {"k": "dg=="}, "Opaque"))
        self.assertNotIn("generation", obj["metadata"])
        status, obj = self.c.request("PATCH", f"/api/v1/namespaces/{self.ns}/secrets/s", {"data": {"k2": "dg=="}},
                                     {"Content-Type": "application/strategic-merge-patch+json"})
        self.assertEqual((status, sorted(obj["data"])), (200, ["k", "k2"]))

    def test_finalizers_and_deletion(self):
        self.create("a")
        self.c.request("PATCH", self.item("a"), {"metadata": {"finalizers": ["kubestash.com/cleanup"]}}, MERGE)
        rv = self.c.request("GET", self.item("a"))[1]["metadata"]["resourceVersion"]
        watch = self.c.watch(f"{storages(self.ns)}?watch=1&resourceVersion={rv}")
        status, obj = self.c.request("DELETE", self.item("a"))
        self.assertEqual(status, 200)
        self.assertTrue(obj["metadata"]["deletionTimestamp"])
        self.assertEqual(obj["metadata"]["generation"], 2)
        self.assertEqual(self.c.request("GET", self.item("a"))[0], 200)  # still there
        status, body = self.c.request("PATCH", self.item("a"), {"metadata": {"finalizers": ["x", "kubestash.com/cleanup"]}},
                                      MERGE)
        self.assertEqual((status, body["reason"]), (422, "Invalid"))
        self.assertIn("no new finalizers", body["message"])
        ops = [{"op": "test", "path": "/metadata/finalizers/0", "value": "kubestash.com/cleanup"},
               {"op": "remove", "path": "/metadata/finalizers/0"}]
        status, obj = self.c.request("PATCH", self.item("a"), ops, JSON_PATCH)
        self.assertEqual(status, 200)
        self.assertEqual(self.c.request("GET", self.item("a"))[0], 404)
        events = watch.collect(2)
        self.assertEqual([e["type"] for e in events], ["MODIFIED", "DELETED"])
        self.assertEqual(events[1]["object"]["metadata"]["resourceVersion"], obj["metadata"]["resourceVersion"])
        watch.close()
        self.create("b")
        status, body = self.c.request("DELETE", self.item("b"), {"preconditions": {"uid": "other"}})
        self.assertEqual(status, 409)
        self.assertEqual(self.c.request("DELETE", self.item("b"))[0], 200)
        self.assertEqual(self.c.request("GET", self.item("b"))[0], 404)

    # ------------------------------------------------------------------------------------------ lists

    def test_pagination_one_snapshot_and_expiry(self):
        for i in range(7):
            self.create(f"s{i}")
        status, page = self.c.request("GET", f"{storages(self.ns)}?limit=3")
        rv, token = page["metadata"]["resourceVersion"], page["metadata"]["continue"]
        self.assertEqual((len(page["items"]), page["metadata"]["remainingItemCount"]), (3, 4))
        self.create("s7")  # after the snapshot: not in this list
        self.c.request("DELETE", self.item("s5"))
        names = [o["metadata"]["name"] for o in page["items"]]
        while token:
            status, page = self.c.request("GET", f"{storages(self.ns)}?limit=3&continue={token}")
            self.assertEqual((status, page["metadata"]["resourceVersion"]), (200, rv))
            names += [o["metadata"]["name"] for o in page["items"]]
            token = page["metadata"].get("continue")
        self.assertEqual(names, [f"s{i}" for i in range(7)])
        status, page = self.c.request("GET", f"{storages(self.ns)}?limit=2")
        self.server.control(action="compact")
        status, body = self.c.request("GET", f"{storages(self.ns)}?limit=2&continue={page['metadata']['continue']}")
        self.assertEqual((status, body["reason"], body["code"]), (410, "Expired", 410))
        self.assertEqual(self.c.request("GET", f"{storages(self.ns)}?limit=2&continue=garbage")[0], 400)
        token = self.c.request("GET", f"{storages(self.ns)}?limit=2")[1]["metadata"]["continue"]
        status, body = self.c.request("GET", f"{storages(self.ns)}?limit=2&continue={token}&resourceVersion=5")
        self.assertEqual(status, 400)  # a continue token carries its own resourceVersion

    def test_rv0_unpaged_option(self):
        directory = tempfile.TemporaryDirectory()
        with directory, ApiServer(directory.name, tls=False, token="", args=["--rv0-unpaged"]) as server:
            client = server.client()
            for i in range(3):
                client.request("POST", storages(self.ns), storage(f"s{i}"))
            status, body = client.request("GET", f"{storages(self.ns)}?limit=2&resourceVersion=0")
            self.assertEqual((len(body["items"]), "continue" in body["metadata"]), (3, False))
            status, body = client.request("GET", f"{storages(self.ns)}?limit=2")
            self.assertEqual((len(body["items"]), "continue" in body["metadata"]), (2, True))
            client.close()

    def test_selectors(self):
        self.create("a", labels={"app": "x", "tier": "1"})
        self.create("b", labels={"app": "y"})
        self.create("c")

        def names(query):
            status, body = self.c.request("GET", f"{storages(self.ns)}?{query}")
            self.assertEqual(status, 200, body)
            return [o["metadata"]["name"] for o in body["items"]]
        self.assertEqual(names("labelSelector=app%3Dx"), ["a"])
        self.assertEqual(names("labelSelector=app!%3Dx"), ["b", "c"])
        self.assertEqual(names("labelSelector=app+in+(x,y)"), ["a", "b"])
        self.assertEqual(names("labelSelector=app+notin+(x)"), ["b", "c"])
        self.assertEqual(names("labelSelector=app,!tier"), ["b"])
        self.assertEqual(names("fieldSelector=metadata.name%3Db"), ["b"])
        self.assertEqual(names("fieldSelector=metadata.name!%3Db,metadata.namespace%3D" + self.ns), ["a", "c"])
        status, body = self.c.request("GET", f"{GROUP}/backupstorages?fieldSelector=metadata.namespace%3D{self.ns}")
        self.assertEqual(len(body["items"]), 3)
        self.assertEqual(self.c.request("GET", f"{storages(self.ns)}?fieldSelector=spec.default%3Dtrue")[0], 400)

    def test_views_table_and_partial_metadata(self):
        self.create("a", default=True, deletionPolicy="Delete")
        self.c.request("PATCH", self.item("a") + "/status", {"status": {"phase": "Ready", "totalSize": "1 B"}}, MERGE)
        status, table = self.c.request("GET", storages(self.ns), headers={"Accept": TABLE + ",application/json"})
        self.assertEqual(table["kind"], "Table")
        self.assertEqual([c["name"] for c in table["columnDefinitions"]],
                         ["Name", "Provider", "Default", "Deletion-Policy", "Total-Size", "Phase", "Age"])
        self.assertEqual(table["rows"][0]["cells"][:6], ["a", "s3", True, "Delete", "1 B", "Ready"])
        self.assertEqual(table["rows"][0]["object"]["kind"], "PartialObjectMetadata")
        status, body = self.c.request("GET", storages(self.ns), headers={"Accept": PARTIAL_LIST})
        self.assertEqual(body["kind"], "PartialObjectMetadataList")
        self.assertEqual(set(body["items"][0]), {"kind", "apiVersion", "metadata"})
        rv = body["metadata"]["resourceVersion"]
        watch = self.c.watch(f"{storages(self.ns)}?watch=1&resourceVersion={rv}", {"Accept": PARTIAL})
        self.c.request("PATCH", self.item("a"), {"spec": {"default": False}}, MERGE)
        event = watch.next_event()
        self.assertEqual((event["type"], event["object"]["kind"]), ("MODIFIED", "PartialObjectMetadata"))
        self.assertNotIn("spec", event["object"])
        watch.close()
        status, secrets = self.c.request("GET", f"/api/v1/namespaces/{self.ns}/secrets")
        self.assertEqual(secrets["kind"], "SecretList")

    # ------------------------------------------------------------------------------------------ watches

    def test_watch_events_bookmarks_and_timeout(self):
        self.create("pre")
        rv = self.c.request("GET", storages(self.ns))[1]["metadata"]["resourceVersion"]
        watch = self.c.watch(f"{storages(self.ns)}?watch=1&resourceVersion={rv}&allowWatchBookmarks=true"
                             "&timeoutSeconds=2")
        self.create("a", labels={"keep": "yes"})
        self.c.request("PATCH", self.item("a"), {"spec": {"default": True}}, MERGE)
        self.c.request("DELETE", self.item("a"))
        events, started = [], time.monotonic()
        while True:
            event = watch.next_event(timeout=5)
            if event is None:
                break
            events.append(event)
        self.assertLess(time.monotonic() - started, 4)  # timeoutSeconds ended the stream
        changes = [e for e in events if e["type"] != "BOOKMARK"]
        self.assertEqual([e["type"] for e in changes], ["ADDED", "MODIFIED", "DELETED"])
        bookmarks = [e for e in events if e["type"] == "BOOKMARK"]
        self.assertGreaterEqual(len(bookmarks), 2)
        self.assertEqual(set(bookmarks[-1]["object"]["metadata"]), {"resourceVersion", "creationTimestamp"})
        self.assertEqual(bookmarks[-1]["object"]["kind"], "BackupStorage")

    def test_watch_selector_transitions_and_initial_events(self):
        self.create("a", labels={"app": "x"})
        watch = self.c.watch(f"{storages(self.ns)}?watch=1&labelSelector=app%3Dx")  # no RV: initial ADDED
        self.assertEqual(watch.next_event()["type"], "ADDED")
        self.c.request("PATCH", self.item("a"), {"metadata": {"labels": {"app": "z"}}}, MERGE)
        self.c.request("PATCH", self.item("a"), {"metadata": {"labels": {"app": "x"}}}, MERGE)
        self.assertEqual([e["type"] for e in watch.collect(2)], ["DELETED", "ADDED"])
        watch.close()
        watch = self.c.watch(f"{storages(self.ns)}?watch=1&sendInitialEvents=true&allowWatchBookmarks=true"
                             "&resourceVersionMatch=NotOlderThan&resourceVersion=0")
        added, end = watch.collect(2)
        self.assertEqual(added["type"], "ADDED")
        self.assertEqual(end["type"], "BOOKMARK")
        self.assertEqual(end["object"]["metadata"]["annotations"], {"k8s.io/initial-events-end": "true"})
        watch.close()
        status, _ = self.c.request("GET", f"{storages(self.ns)}?watch=1&sendInitialEvents=true")
        self.assertEqual(status, 422)

    def test_watch_expired_and_too_large(self):
        rv = self.create("a")["metadata"]["resourceVersion"]
        self.server.control(action="compact")
        watch = self.c.watch(f"{storages(self.ns)}?watch=1&resourceVersion={int(rv) - 1}")
        self.assertEqual(watch.response.status, 200)
        event = watch.next_event()
        self.assertEqual((event["type"], event["object"]["code"], event["object"]["reason"]), ("ERROR", 410, "Expired"))
        self.assertIn("too old resource version", event["object"]["message"])
        self.assertIsNone(watch.next_event())  # then EOF
        status, headers, body = self.c.raw("GET", f"{storages(self.ns)}?watch=1&resourceVersion=999999999")
        self.assertEqual((status, headers["Retry-After"]), (504, "1"))
        self.assertIn(b"ResourceVersionTooLarge", body)

    # ------------------------------------------------------------------------------------------ faults

    def test_fault_fail_with_retry_after(self):
        self.server.control(action="fail", code=429, count=2, path=f"/namespaces/{self.ns}/", retry_after=3)
        for _ in range(2):
            status, headers, body = self.c.raw("GET", storages(self.ns))
            self.assertEqual((status, headers["Retry-After"]), (429, "3"))
        self.assertEqual(self.c.request("GET", storages(self.ns))[0], 200)  # count spent
        for code, reason in ((500, "InternalError"), (504, "Timeout"), (410, "Expired")):
            self.server.control(action="fail", code=code, verb="list", path=f"/namespaces/{self.ns}/")
            status, body = self.c.request("GET", storages(self.ns))
            self.assertEqual((status, body["reason"]), (code, reason))
        self.server.control(action="fail", code=410, verb="watch", path=f"/namespaces/{self.ns}/")
        watch = self.c.watch(f"{storages(self.ns)}?watch=1")
        event = watch.next_event()
        self.assertEqual((watch.response.status, event["type"], event["object"]["code"]), (200, "ERROR", 410))
        self.assertIsNone(watch.next_event())
        self.assertGreaterEqual(self.server.stats()["faults"]["served"]["fail"], 6)

    def test_fault_delay(self):
        self.server.control(action="delay", ms=400, count=1, path=f"/namespaces/{self.ns}/")
        started = time.monotonic()
        self.c.request("GET", storages(self.ns))
        self.assertGreaterEqual(time.monotonic() - started, 0.4)
        started = time.monotonic()
        self.c.request("GET", storages(self.ns))
        self.assertLess(time.monotonic() - started, 0.3)

    def test_fault_drop_watch_mid_event(self):
        rv = self.create("a")["metadata"]["resourceVersion"]
        watch = self.c.watch(f"{storages(self.ns)}?watch=1&resourceVersion={rv}")
        self.server.control(action="drop_watch", path=f"/namespaces/{self.ns}/")
        self.create("b")
        with self.assertRaises((http.client.IncompleteRead, ConnectionError, http.client.HTTPException)):
            watch.next_event()
        watch.close()

    def test_fault_garbage_watch(self):
        rv = self.create("a")["metadata"]["resourceVersion"]
        watch = self.c.watch(f"{storages(self.ns)}?watch=1&resourceVersion={rv}")
        self.server.control(action="garbage_watch", path=f"/namespaces/{self.ns}/")
        self.create("b")
        with self.assertRaises((ValueError, http.client.IncompleteRead, ConnectionError, http.client.HTTPException)):
            watch.next_event()  # a line that is not JSON
        watch.close()

    def test_fault_stall_watch(self):
        rv = self.create("a")["metadata"]["resourceVersion"]
        watch = self.c.watch(f"{storages(self.ns)}?watch=1&resourceVersion={rv}&allowWatchBookmarks=true")
        self.server.control(action="stall_watch", path=f"/namespaces/{self.ns}/")
        self.create("b")
        sock = watch.connection.sock
        self.assertEqual(select.select([sock], [], [], 1.0)[0], [])  # no event, no bookmark, no EOF
        self.server.control(action="clear_faults")  # releases the stall: the server closes the connection
        self.assertEqual(select.select([sock], [], [], 3.0)[0], [sock])
        sock.settimeout(1)
        try:
            self.assertEqual(sock.recv(1), b"")
        except (ConnectionError, ssl.SSLError):
            pass
        watch.close()

    def test_stall_open_watches(self):
        rv = self.create("a")["metadata"]["resourceVersion"]
        path = f"{storages(self.ns)}?watch=1&resourceVersion={rv}&allowWatchBookmarks=true"
        old = self.c.watch(path)
        self.assertEqual(old.next_event()["type"], "BOOKMARK")  # healthy: a bookmark every 0.3 s
        self.server.control(action="stall_open_watches")
        self.create("b")
        heard = []
        with self.assertRaises(OSError):  # socket.timeout: silence, and no EOF either
            for _ in range(3):
                heard.append(old.next_event(timeout=1.0))
        # At most one bookmark that was already on its way when the stall began; never "b".
        self.assertLessEqual(len(heard), 1, heard)
        self.assertTrue(all(e is not None and e["type"] == "BOOKMARK" for e in heard), heard)
        new = self.c.watch(path)  # a watch opened after the stall is served
        event = new.next_event()
        self.assertEqual((event["type"], event["object"]["metadata"]["name"]), ("ADDED", "b"))
        self.server.control(action="clear_faults")  # releases the stalled one: the server closes it
        sock = old.connection.sock
        self.assertEqual(select.select([sock], [], [], 3.0)[0], [sock])
        new.close()
        old.close()

    def test_close_watches_and_stats(self):
        before = self.server.stats()
        watch = self.c.watch(f"{storages(self.ns)}?watch=1&resourceVersion=0")
        self.assertEqual(watch.response.status, 200)
        time.sleep(0.1)
        self.assertGreaterEqual(self.server.stats()["active_watches"], 1)
        self.server.control(action="close_watches")
        self.assertIsNone(watch.next_event(timeout=3))  # clean EOF
        watch.close()
        self.c.request("GET", storages(self.ns))
        after = self.server.stats()
        self.assertEqual(after["watch_connections"], before["watch_connections"] + 1)
        self.assertEqual(after["requests_by_verb"]["list"], before["requests_by_verb"].get("list", 0) + 1)
        self.assertEqual(after["requests_by_path"][f"list {storages(self.ns)}"], 1)

    def test_bulk_create_and_other_kinds(self):
        lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                 "metadata": {"name": "stowage-leader", "namespace": self.ns}, "spec": {"holderIdentity": "a"}}
        result = self.server.control(action="create", objects=[lease, {**storage("bulk"), "metadata": {
            "name": "bulk", "namespace": self.ns}}])
        self.assertEqual(result["created"], 2)
        path = f"/apis/coordination.k8s.io/v1/namespaces/{self.ns}/leases/stowage-leader"
        status, got = self.c.request("GET", path)
        got["spec"]["holderIdentity"] = "b"
        self.assertEqual(self.c.request("PUT", path, got)[0], 200)
        self.assertEqual(self.c.request("PUT", path, got)[0], 409)  # the loser of a leader election race
        event = {"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"generateName": "bs."},
                 "eventTime": "2025-01-01T00:00:00.000000Z", "reportingController": "stowage",
                 "reportingInstance": "stowage-1", "action": "Reconcile", "reason": "Ready", "type": "Normal",
                 "regarding": {"kind": "BackupStorage", "name": "bulk", "namespace": self.ns}, "note": "ok"}
        self.assertEqual(self.c.request("POST", f"/apis/events.k8s.io/v1/namespaces/{self.ns}/events", event)[0], 201)
        status, events = self.c.request("GET", f"/apis/events.k8s.io/v1/namespaces/{self.ns}/events"
                                                "?fieldSelector=regarding.name%3Dbulk")
        self.assertEqual(len(events["items"]), 1)
        job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "init-bulk"},
               "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}},
               "status": {"succeeded": 1}}
        status, created = self.c.request("POST", f"/apis/batch/v1/namespaces/{self.ns}/jobs", job)
        self.assertEqual((status, "status" in created), (201, False))
        status, done = self.c.request("PATCH", f"/apis/batch/v1/namespaces/{self.ns}/jobs/init-bulk/status",
                                      {"status": {"succeeded": 1}}, MERGE)
        self.assertEqual(done["status"], {"succeeded": 1})
        status, _ = self.c.request("DELETE", f"/api/v1/namespaces/{self.ns}")
        self.assertEqual(self.c.request("GET", path)[0], 404)  # namespace deletion cascades


def basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class AuthenticationTest(unittest.TestCase):
    """The authenticators beside the admin token: more tokens with identities, basic auth, client
    certificates; who a request is comes back from a SelfSubjectReview (`kubectl auth whoami`)."""
    SA = "system:serviceaccount:stowage-system:stowage"

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.server = ApiServer(cls.tmp.name, tls=True, token="admin-token", client_ca=True,
                               args=["--token-user", f"sa-token={cls.SA}", "--token-user", "dev-token=dev",
                                     "--basic-auth", "alice:s3cret:with-colon"])
        cls.server.__enter__()
        d, ca, ca_key = cls.tmp.name, cls.server.ca, os.path.join(cls.tmp.name, "ca.key")
        cls.cert = make_client_certificate(d, "client", ca, ca_key, "stowage-client", ["team-a", "team-b"])
        foreign_ca, foreign_key = make_ca(d, "foreign-ca")
        cls.foreign_cert = make_client_certificate(d, "foreign", foreign_ca, foreign_key, "stowage-client")

    @classmethod
    def tearDownClass(cls):
        cls.server.__exit__(None, None, None)
        cls.tmp.cleanup()

    def whoami(self, **client_args):
        client = self.server.client(**client_args)
        try:
            status, body = client.request("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                                          {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
        finally:
            client.close()
        if status != 201:
            return status, body
        return status, body["status"]["userInfo"]

    def assert_unauthorized(self, **client_args):
        client = self.server.client(**client_args)
        try:
            status, body = client.request("GET", "/api/v1/namespaces/default/secrets")
        finally:
            client.close()
        self.assertEqual((status, body["reason"], body["code"]), (401, "Unauthorized", 401), client_args)

    def test_admin_token(self):
        self.assertEqual(self.whoami(), (201, {"username": "system:admin",
                                               "groups": ["system:masters", "system:authenticated"]}))

    def test_token_users(self):
        status, user = self.whoami(token="sa-token")
        self.assertEqual((status, user["username"]), (201, self.SA))
        self.assertEqual(user["groups"], ["system:serviceaccounts", "system:serviceaccounts:stowage-system",
                                          "system:authenticated"])
        self.assertEqual(self.whoami(token="dev-token"), (201, {"username": "dev", "groups": ["system:authenticated"]}))
        client = self.server.client(token="dev-token")
        self.assertEqual(client.request("GET", "/api/v1/namespaces/default/secrets")[0], 200)
        client.close()
        self.assert_unauthorized(token="other-token")
        self.assert_unauthorized(authorization="Bearer")

    def test_basic_auth(self):
        # The password may contain ':' (only the first one separates the user).
        self.assertEqual(self.whoami(token="", authorization=basic("alice", "s3cret:with-colon")),
                         (201, {"username": "alice", "groups": ["system:authenticated"]}))
        client = self.server.client(token="", authorization=basic("alice", "s3cret:with-colon"))
        self.assertEqual(client.request("GET", "/api/v1/namespaces/default/secrets")[0], 200)
        client.close()
        for wrong in (basic("alice", "wrong"), basic("bob", "s3cret:with-colon"), basic("alice", ""),
                      "Basic not-base64!", "Basic " + base64.b64encode(b"no-colon").decode()):
            self.assert_unauthorized(token="", authorization=wrong)

    def test_client_certificate(self):
        self.assertEqual(self.whoami(token="", certificate=self.cert),
                         (201, {"username": "stowage-client",
                                "groups": ["team-a", "team-b", "system:authenticated"]}))
        # A verified certificate authenticates even beside a wrong token (the first authenticator wins).
        self.assertEqual(self.whoami(token="wrong", certificate=self.cert)[1]["username"], "stowage-client")
        # Without a certificate the other methods still apply; with nothing at all it is a 401.
        self.assertEqual(self.whoami(token="dev-token")[1]["username"], "dev")
        self.assert_unauthorized(token="")

    def test_certificate_from_another_ca_is_refused(self):
        # Python's ssl verifies in the handshake: the connection fails instead of a real server's 401.
        with self.assertRaises((ssl.SSLError, ConnectionError, http.client.HTTPException)):
            self.whoami(token="", certificate=self.foreign_cert)
        self.assertEqual(self.whoami(token="", certificate=self.cert)[0], 201)  # the server is still serving

    def test_discovery_needs_authentication_too(self):
        client = self.server.client(token="")
        self.assertEqual(client.request("GET", "/api")[0], 401)
        client.close()
        client = self.server.client(token="", certificate=self.cert)
        self.assertEqual(client.request("GET", "/api")[0], 200)
        client.close()


RBAC = "/apis/rbac.authorization.k8s.io/v1"
SA = "system:serviceaccount:stowage-system:stowage"
USERS = ("reader", "leases", "named", "wild", "verbs", "dangling", "owner")


def rule(groups, resources, verbs, names=None):
    r = {"apiGroups": groups, "resources": resources, "verbs": verbs}
    if names:
        r["resourceNames"] = names
    return r


class RbacTest(unittest.TestCase):
    """--authorize-rbac: the stored Roles, ClusterRoles and bindings decide, with the real server's 403s.
    Each test binds its own user (a token per user), so the tests share one server."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        args = ["--authorize-rbac", "--enforce-owner-references", "--token-user", f"sa-token={SA}"]
        for user in USERS:
            args += ["--token-user", f"{user}-token={user}"]
        cls.server = ApiServer(cls.tmp.name, tls=True, token="admin-token", args=args)
        cls.server.__enter__()
        cls.admin = cls.server.client()

    @classmethod
    def tearDownClass(cls):
        cls.admin.close()
        cls.server.__exit__(None, None, None)
        cls.tmp.cleanup()

    def create(self, path, obj):
        status, body = self.admin.request("POST", path, obj)
        self.assertEqual(status, 201, body)
        return body

    def cluster_role(self, name, *rules):
        self.create(f"{RBAC}/clusterroles", {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                                             "metadata": {"name": name}, "rules": list(rules)})

    def role(self, namespace, name, *rules):
        self.create(f"{RBAC}/namespaces/{namespace}/roles",
                    {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": name},
                     "rules": list(rules)})

    def bind(self, name, role_kind, role, subjects, namespace=None):
        kind = "RoleBinding" if namespace else "ClusterRoleBinding"
        path = f"{RBAC}/namespaces/{namespace}/rolebindings" if namespace else f"{RBAC}/clusterrolebindings"
        self.create(path, {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": {"name": name},
                           "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
                           "subjects": subjects})

    def call(self, token, method, path, body=None, headers=None):
        client = self.server.client(token=token)
        try:
            return client.request(method, path, body, headers)
        finally:
            client.close()

    def assert_forbidden(self, token, method, path, message, body=None, headers=None):
        before = self.server.stats()["forbidden"]
        status, answer = self.call(token, method, path, body, headers)
        self.assertEqual((status, answer["kind"], answer["reason"], answer["code"]), (403, "Status", "Forbidden", 403),
                         answer)
        self.assertEqual(answer["message"], message)
        stats = self.server.stats()
        self.assertEqual(stats["forbidden"], before + 1)
        self.assertIn(message, stats["denials"])
        return answer

    def assert_allowed(self, token, method, path, body=None, headers=None, code=200):
        status, answer = self.call(token, method, path, body, headers)
        self.assertEqual(status, code, answer)
        return answer

    def test_denials_read_as_a_real_servers(self):
        self.assert_forbidden("sa-token", "GET", "/api/v1/namespaces/demo/secrets",
                              f'secrets is forbidden: User "{SA}" cannot list resource "secrets" in API group "" '
                              'in the namespace "demo"')
        self.assert_forbidden("sa-token", "GET", "/api/v1/secrets",
                              f'secrets is forbidden: User "{SA}" cannot list resource "secrets" in API group "" '
                              'at the cluster scope')
        answer = self.assert_forbidden(
            "sa-token", "PATCH", f"{GROUP}/namespaces/demo/backupstorages/s1/status",
            f'backupstorages.storage.kubestash.com "s1" is forbidden: User "{SA}" cannot patch resource '
            '"backupstorages/status" in API group "storage.kubestash.com" in the namespace "demo"',
            {"status": {}}, MERGE)
        self.assertEqual(answer["details"], {"name": "s1", "group": "storage.kubestash.com", "kind": "backupstorages"})
        self.assert_forbidden("sa-token", "GET", f"{GROUP}/backupstorages?watch=1",
                              f'backupstorages.storage.kubestash.com is forbidden: User "{SA}" cannot watch resource '
                              '"backupstorages" in API group "storage.kubestash.com" at the cluster scope')
        self.assert_forbidden("sa-token", "GET", "/api/v1/namespaces/demo",
                              f'namespaces "demo" is forbidden: User "{SA}" cannot get resource "namespaces" in API '
                              'group "" in the namespace "demo"')
        # Discovery and who-am-I are open to every authenticated user; the administrator needs no binding.
        for path in ("/api", "/apis", "/api/v1", f"{RBAC}", "/version", "/openapi/v3"):
            self.assert_allowed("sa-token", "GET", path)
        self.assert_allowed("sa-token", "POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", {}, code=201)
        self.assert_allowed("admin-token", "GET", "/api/v1/secrets")
        self.assertEqual(self.call("nobody", "GET", "/api")[0], 401)

    def test_cluster_role_binding_applies_everywhere(self):
        self.cluster_role("reader", rule([""], ["secrets"], ["get", "list", "watch"]),
                          rule(["storage.kubestash.com"], ["backupstorages/status"], ["patch"]))
        self.bind("reader", "ClusterRole", "reader", [{"kind": "User", "name": "reader"}])
        self.create("/api/v1/namespaces/rbac-a/secrets", {"apiVersion": "v1", "kind": "Secret",
                                                           "metadata": {"name": "s"}})
        self.create(storages("rbac-a"), storage("st"))
        self.assert_allowed("reader-token", "GET", "/api/v1/namespaces/rbac-a/secrets")
        self.assert_allowed("reader-token", "GET", "/api/v1/namespaces/rbac-a/secrets/s")
        self.assert_allowed("reader-token", "GET", "/api/v1/secrets")
        client = self.server.client(token="reader-token")
        self.assertEqual(client.watch("/api/v1/secrets?watch=1&timeoutSeconds=1").response.status, 200)
        client.close()
        self.assert_forbidden("reader-token", "POST", "/api/v1/namespaces/rbac-a/secrets",
                              'secrets is forbidden: User "reader" cannot create resource "secrets" in API group "" '
                              'in the namespace "rbac-a"', {"apiVersion": "v1", "kind": "Secret",
                                                            "metadata": {"name": "t"}})
        # The subresource is granted, the main resource is not.
        self.assert_allowed("reader-token", "PATCH", f"{storages('rbac-a')}/st/status", {"status": {"phase": "Ready"}},
                            MERGE)
        self.assert_forbidden("reader-token", "PATCH", f"{storages('rbac-a')}/st",
                              'backupstorages.storage.kubestash.com "st" is forbidden: User "reader" cannot patch '
                              'resource "backupstorages" in API group "storage.kubestash.com" in the namespace '
                              '"rbac-a"', {"spec": {}}, MERGE)
        # Another API group with the same resource name is not granted.
        self.assert_forbidden("reader-token", "GET", "/apis/batch/v1/namespaces/rbac-a/jobs",
                              'jobs.batch is forbidden: User "reader" cannot list resource "jobs" in API group "batch" '
                              'in the namespace "rbac-a"')

    def test_role_bindings_apply_in_their_namespace(self):
        self.role("rbac-b", "leases", rule(["coordination.k8s.io"], ["leases"], ["get", "create", "update"]))
        self.bind("leases", "Role", "leases", [{"kind": "User", "name": "leases"},
                                               {"kind": "ServiceAccount", "name": "stowage",
                                                "namespace": "stowage-system"}], namespace="rbac-b")
        lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "l"}, "spec": {}}
        leases = "/apis/coordination.k8s.io/v1/namespaces/rbac-b/leases"
        created = self.assert_allowed("leases-token", "POST", leases, lease, code=201)
        self.assert_allowed("sa-token", "GET", f"{leases}/l")
        self.assert_allowed("leases-token", "PUT", f"{leases}/l", created)
        self.assert_forbidden("leases-token", "PATCH", f"{leases}/l",
                              'leases.coordination.k8s.io "l" is forbidden: User "leases" cannot patch resource '
                              '"leases" in API group "coordination.k8s.io" in the namespace "rbac-b"', {}, MERGE)
        self.assert_forbidden("leases-token", "GET", "/apis/coordination.k8s.io/v1/namespaces/rbac-other/leases/l",
                              'leases.coordination.k8s.io "l" is forbidden: User "leases" cannot get resource '
                              '"leases" in API group "coordination.k8s.io" in the namespace "rbac-other"')
        self.assert_forbidden("leases-token", "GET", "/apis/coordination.k8s.io/v1/leases",
                              'leases.coordination.k8s.io is forbidden: User "leases" cannot list resource "leases" '
                              'in API group "coordination.k8s.io" at the cluster scope')
        # A RoleBinding to a ClusterRole grants its rules in the binding's namespace only; a
        # ServiceAccount subject without a namespace means the binding's namespace.
        self.cluster_role("pod-lister", rule([""], ["pods"], ["list"]))
        self.bind("pods", "ClusterRole", "pod-lister", [{"kind": "ServiceAccount", "name": "stowage"}],
                  namespace="stowage-system")
        self.assert_allowed("sa-token", "GET", "/api/v1/namespaces/stowage-system/pods")
        self.assert_forbidden("sa-token", "GET", "/api/v1/namespaces/rbac-b/pods",
                              f'pods is forbidden: User "{SA}" cannot list resource "pods" in API group "" in the '
                              'namespace "rbac-b"')

    def test_resource_names(self):
        self.role("rbac-c", "named", rule([""], ["configmaps"], ["get", "list", "watch"], names=["only"]))
        self.bind("named", "Role", "named", [{"kind": "User", "name": "named"}], namespace="rbac-c")
        self.create("/api/v1/namespaces/rbac-c/configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                                             "metadata": {"name": "only"}})
        self.assert_allowed("named-token", "GET", "/api/v1/namespaces/rbac-c/configmaps/only")
        self.assert_forbidden("named-token", "GET", "/api/v1/namespaces/rbac-c/configmaps/other",
                              'configmaps "other" is forbidden: User "named" cannot get resource "configmaps" in API '
                              'group "" in the namespace "rbac-c"')
        self.assert_forbidden("named-token", "GET", "/api/v1/namespaces/rbac-c/configmaps",
                              'configmaps is forbidden: User "named" cannot list resource "configmaps" in API group "" '
                              'in the namespace "rbac-c"')
        listed = self.assert_allowed("named-token", "GET",
                                     "/api/v1/namespaces/rbac-c/configmaps?fieldSelector=metadata.name%3Donly")
        self.assertEqual([i["metadata"]["name"] for i in listed["items"]], ["only"])

    def test_wildcards_groups_and_verbs(self):
        self.role("rbac-d", "everything", rule(["*"], ["*"], ["*"]))
        self.bind("wild", "Role", "everything", [{"kind": "Group", "name": "wild-ones"},
                                                  {"kind": "User", "name": "wild"}], namespace="rbac-d")
        self.assert_allowed("wild-token", "POST", storages("rbac-d"), storage("x"), code=201)
        self.assert_allowed("wild-token", "PATCH", f"{storages('rbac-d')}/x/status", {"status": {"phase": "x"}}, MERGE)
        self.assert_allowed("wild-token", "DELETE", storages("rbac-d"))
        # Group subjects: a service account is in system:serviceaccounts:<its namespace>.
        self.assert_forbidden("sa-token", "GET", "/api/v1/namespaces/rbac-d/configmaps",
                              f'configmaps is forbidden: User "{SA}" cannot list resource "configmaps" in API group "" '
                              'in the namespace "rbac-d"')
        self.bind("service-accounts", "Role", "everything",
                  [{"kind": "Group", "name": "system:serviceaccounts:stowage-system"}], namespace="rbac-d")
        self.assert_allowed("sa-token", "GET", "/api/v1/namespaces/rbac-d/configmaps")
        # Each HTTP request is the verb a real server makes of it.
        self.role("rbac-d", "deleter", rule([""], ["configmaps"], ["delete", "update"]),
                  rule(["storage.kubestash.com"], ["*/status"], ["update"]))
        self.bind("verbs", "Role", "deleter", [{"kind": "User", "name": "verbs"}], namespace="rbac-d")
        cm = self.create("/api/v1/namespaces/rbac-d/configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                                                  "metadata": {"name": "c"}})
        self.assert_allowed("verbs-token", "PUT", "/api/v1/namespaces/rbac-d/configmaps/c", cm)
        self.assert_forbidden("verbs-token", "DELETE", "/api/v1/namespaces/rbac-d/configmaps",
                              'configmaps is forbidden: User "verbs" cannot deletecollection resource "configmaps" in '
                              'API group "" in the namespace "rbac-d"')
        self.assert_allowed("verbs-token", "DELETE", "/api/v1/namespaces/rbac-d/configmaps/c")
        st = self.create(storages("rbac-d"), storage("y"))
        self.assert_allowed("verbs-token", "PUT", f"{storages('rbac-d')}/y/status", st)
        self.assert_forbidden("verbs-token", "PUT", f"{storages('rbac-d')}/y",
                              'backupstorages.storage.kubestash.com "y" is forbidden: User "verbs" cannot update '
                              'resource "backupstorages" in API group "storage.kubestash.com" in the namespace '
                              '"rbac-d"', st)

    def test_a_binding_to_a_missing_role_is_named(self):
        self.bind("dangling", "ClusterRole", "not-there", [{"kind": "User", "name": "dangling"}], namespace="rbac-e")
        self.assert_forbidden("dangling-token", "GET", "/api/v1/namespaces/rbac-e/secrets",
                              'secrets is forbidden: User "dangling" cannot list resource "secrets" in API group "" '
                              'in the namespace "rbac-e": RBAC: clusterrole.rbac.authorization.k8s.io "not-there" '
                              'not found')

    def test_owner_references_with_block_owner_deletion_need_finalizers(self):
        # The OwnerReferencesPermissionEnforcement admission plugin, as KubeStash's volume Jobs meet it.
        self.role("rbac-f", "jobs", rule(["batch"], ["jobs"], ["create", "patch"]))
        self.bind("owner", "Role", "jobs", [{"kind": "User", "name": "owner"}], namespace="rbac-f")
        owner = self.create(storages("rbac-f"), storage("st"))
        ref = {"apiVersion": "storage.kubestash.com/v1alpha1", "kind": "BackupStorage", "name": "st",
               "uid": owner["metadata"]["uid"], "controller": True}
        jobs = "/apis/batch/v1/namespaces/rbac-f/jobs"

        def job(name, *refs):
            return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "ownerReferences": list(refs)},
                    "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}}

        self.assert_allowed("owner-token", "POST", jobs, job("plain", ref), code=201)  # no blockOwnerDeletion
        denied = ('jobs.batch "blocking" is forbidden: cannot set blockOwnerDeletion if an ownerReference refers to a '
                  'resource you can\'t set finalizers on: User "owner" cannot update resource '
                  '"backupstorages/finalizers" in API group "storage.kubestash.com" in the namespace "rbac-f"')
        self.assert_forbidden("owner-token", "POST", jobs, denied, job("blocking", dict(ref, blockOwnerDeletion=True)))
        # Changing the references of an existing object also needs delete on it.
        self.assert_forbidden("owner-token", "PATCH", f"{jobs}/plain",
                              'jobs.batch "plain" is forbidden: cannot set an ownerRef on a resource you can\'t delete',
                              {"metadata": {"ownerReferences": []}}, MERGE)
        self.role("rbac-f", "finalizers", rule(["storage.kubestash.com"], ["backupstorages/finalizers"], ["update"]))
        self.bind("finalizers", "Role", "finalizers", [{"kind": "User", "name": "owner"}], namespace="rbac-f")
        self.assert_allowed("owner-token", "POST", jobs, job("blocking", dict(ref, blockOwnerDeletion=True)), code=201)
        self.assert_allowed("admin-token", "POST", jobs, job("by-admin", dict(ref, blockOwnerDeletion=True)), code=201)
        self.assertEqual(self.server.stats()["requests_by_path"].get(f"create {jobs}"), 3)


class AuthenticationFlagsTest(unittest.TestCase):
    def test_bad_flags_are_refused(self):
        import subprocess
        server = os.path.join(os.path.dirname(os.path.abspath(__file__)), "apiserver.py")
        for args in (["--token-user", "no-equals"], ["--basic-auth", "nopassword"], ["--client-ca", "/nonexistent"],
                     ["--enforce-owner-references"]):
            result = subprocess.run([sys.executable, server, "--port", "0", *args], capture_output=True, text=True,
                                    timeout=10)
            self.assertEqual(result.returncode, 2, (args, result.stderr))
            self.assertIn(args[0], result.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
