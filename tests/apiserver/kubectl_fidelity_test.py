#!/usr/bin/env python3
"""The real kubectl against the test API server: if kubectl accepts it, a client-go based client will.

Starts the server over TLS (a CA made now with openssl), writes a kubeconfig with a bearer token,
uses a fresh KUBECACHEDIR and HOME, and runs kubectl through apply, paging, list-then-watch, the three
patch types, the status subresource, deletion with a finalizer, wait, raw watch, Retry-After and a
generator command (protobuf body). Every step checks kubectl's exit code and output and, where it
matters, the server's counters. The server and any kubectl still running are stopped on exit.
"""
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from testlib import ApiServer  # noqa: E402

KUBECTL = os.environ.get("KUBECTL", "/usr/bin/kubectl")
DEPLOY_BASE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "deploy", "base")
NS = "demo"

MANIFESTS = """\
apiVersion: storage.kubestash.com/v1alpha1
kind: BackupStorage
metadata: {name: s3-storage, namespace: demo}
spec:
  storage:
    provider: s3
    s3: {endpoint: "https://s3.us-west-1.amazonaws.com", bucket: kubestash-demo, region: us-west-1,
         prefix: /backup/demo/deployment/kubestash-demo, secretName: s3-secret}
  usagePolicy: {allowedNamespaces: {from: All}}
  default: true
  deletionPolicy: WipeOut
---
apiVersion: v1
kind: Secret
metadata: {name: s3-secret, namespace: demo}
stringData: {AWS_ACCESS_KEY_ID: not-a-key, AWS_SECRET_ACCESS_KEY: not-a-secret}
"""

EXTRA = """\
apiVersion: storage.kubestash.com/v1alpha1
kind: BackupStorage
metadata: {{name: {name}, namespace: demo}}
spec: {{storage: {{provider: gcs, gcs: {{bucket: b-{name}}}}}}}
"""


class Failure(AssertionError):
    pass


def check(condition, message, *details):
    """Fail with message and details; a callable detail is called only on failure."""
    if not condition:
        raise Failure("\n".join([message] + [str(d() if callable(d) else d) for d in details]))


def json_documents(text):
    """Every JSON document in text (kubectl prints watch events one after another)."""
    decoder, documents, pos = json.JSONDecoder(), [], 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            return documents
        document, pos = decoder.raw_decode(text, pos)
        documents.append(document)


class Fidelity:
    def __init__(self, server, directory):
        self.server, self.directory = server, directory
        self.background = []
        kubeconfig = os.path.join(directory, "kubeconfig")
        with open(kubeconfig, "w") as f:
            json.dump({"apiVersion": "v1", "kind": "Config", "current-context": "test",
                       "clusters": [{"name": "test", "cluster": {"server": server.url,
                                                                 "certificate-authority": server.ca}}],
                       "users": [{"name": "test", "user": {"token": server.token}}],
                       "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test",
                                                                 "namespace": NS}}]}, f)
        self.env = dict(os.environ, KUBECONFIG=kubeconfig, KUBECACHEDIR=os.path.join(directory, "cache"),
                        HOME=directory)

    def kubectl(self, *args, stdin=None, ok=True, timeout=20):
        result = subprocess.run([KUBECTL, *args], input=stdin, capture_output=True, text=True, env=self.env,
                                timeout=timeout)
        if ok is not None:
            check((result.returncode == 0) == ok, f"kubectl {' '.join(args)} exited {result.returncode}",
                  "stdout: " + result.stdout, "stderr: " + result.stderr)
        return result

    def start(self, *args):
        process = subprocess.Popen([KUBECTL, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   env=self.env)
        self.background.append(process)
        return process

    def stop_background(self):
        for process in self.background:
            if process.poll() is None:
                process.kill()
            process.communicate()

    def get(self, name, kind="bs"):
        return json.loads(self.kubectl("get", kind, name, "-o", "json").stdout)

    def wait_for(self, condition, what, timeout=10):
        deadline = time.monotonic() + timeout
        while not condition():
            check(time.monotonic() < deadline, f"timed out waiting for {what}")
            time.sleep(0.05)

    def wait_for_watch(self, before):
        self.wait_for(lambda: self.server.stats()["watch_connections"] > before, "kubectl to open its watch")

    # ------------------------------------------------------------------------------------------ steps

    def step_apply(self):
        path = os.path.join(self.directory, "storage.yaml")
        with open(path, "w") as f:
            f.write(MANIFESTS)
        result = self.kubectl("apply", "-f", path)
        check("backupstorage.storage.kubestash.com/s3-storage created" in result.stdout, "apply create", result.stdout)
        check("secret/s3-secret created" in result.stdout, "apply secret", result.stdout)
        check(result.stderr == "", "apply printed warnings", result.stderr)
        result = self.kubectl("apply", "-f", path)
        check("backupstorage.storage.kubestash.com/s3-storage unchanged" in result.stdout, "re-apply", result.stdout)
        with open(path, "w") as f:
            f.write(MANIFESTS.replace("deletionPolicy: WipeOut", "deletionPolicy: Delete"))
        result = self.kubectl("apply", "-f", path)
        check("backupstorage.storage.kubestash.com/s3-storage configured" in result.stdout, "apply change", result.stdout)
        check(result.stderr == "", "apply printed warnings", result.stderr)
        obj = self.get("s3-storage")
        check(obj["spec"]["deletionPolicy"] == "Delete" and obj["metadata"]["generation"] == 2, "applied change", obj)
        secret = self.get("s3-secret", "secret")
        check(secret["data"]["AWS_ACCESS_KEY_ID"] == "bm90LWEta2V5" and secret["type"] == "Opaque", "secret", secret)
        for name in ("extra-1", "extra-2", "extra-3", "extra-4"):
            self.kubectl("apply", "-f", "-", stdin=EXTRA.format(name=name))

    def step_paging(self):
        before = self.server.stats()
        result = self.kubectl("get", "backupstorages", "-o", "json", "--chunk-size=2")
        names = [o["metadata"]["name"] for o in json.loads(result.stdout)["items"]]
        check(names == ["extra-1", "extra-2", "extra-3", "extra-4", "s3-storage"], "paged list", names)
        after = self.server.stats()
        check(after["list_continues"] - before["list_continues"] == 2, "kubectl paged with continue tokens",
              before, after)
        check(after["requests_by_verb"]["list"] - before["requests_by_verb"].get("list", 0) == 3, "three pages", after)

    def step_table(self):
        lines = self.kubectl("get", "bs").stdout.splitlines()
        check(lines[0].split() == ["NAME", "PROVIDER", "DEFAULT", "DELETION-POLICY", "TOTAL-SIZE", "PHASE", "AGE"],
              "printer columns", lines)
        row = [line for line in lines if line.startswith("s3-storage")][0].split()
        check(row[:4] == ["s3-storage", "s3", "true", "Delete"], "table row", lines)

    def step_watch(self):
        before = self.server.stats()["watch_connections"]
        watcher = self.start("get", "bs", "-w", "-o", "json", "--output-watch-events", "--request-timeout=30s")
        self.wait_for_watch(before)
        self.kubectl("apply", "-f", "-", stdin=EXTRA.format(name="extra-9"))
        self.kubectl("label", "bs", "extra-1", "team=storage")
        self.kubectl("delete", "bs", "extra-2")
        time.sleep(0.5)
        check(watcher.poll() is None, "kubectl get -w exited early", watcher.communicate)
        watcher.terminate()
        out, err = watcher.communicate(timeout=10)
        events = [(e["type"], e["object"]["metadata"]["name"]) for e in json_documents(out)]
        initial = [("ADDED", n) for n in ("extra-1", "extra-2", "extra-3", "extra-4", "s3-storage")]
        expected = initial + [("ADDED", "extra-9"), ("MODIFIED", "extra-1"), ("DELETED", "extra-2")]
        check(events == expected, "list-then-watch events", events, err)
        labeled = [e for e in json_documents(out) if e["type"] == "MODIFIED"][0]["object"]
        check(labeled["metadata"]["labels"] == {"team": "storage"}, "the MODIFIED object", labeled)

    def step_patches(self):
        obj = json.loads(self.kubectl("patch", "bs", "extra-1", "--type=merge", "-p",
                                      '{"spec":{"default":true}}', "-o", "json").stdout)
        check(obj["spec"]["default"] is True and obj["metadata"]["generation"] == 2, "merge patch", obj)
        ops = [{"op": "test", "path": "/spec/default", "value": True},
               {"op": "add", "path": "/spec/deletionPolicy", "value": "WipeOut"}]
        obj = json.loads(self.kubectl("patch", "bs", "extra-1", "--type=json", "-p", json.dumps(ops),
                                      "-o", "json").stdout)
        check(obj["spec"]["deletionPolicy"] == "WipeOut" and obj["metadata"]["generation"] == 3, "json patch", obj)
        failing = [{"op": "test", "path": "/spec/default", "value": False},
                   {"op": "replace", "path": "/spec/deletionPolicy", "value": "Delete"}]
        result = self.kubectl("patch", "bs", "extra-1", "--type=json", "-p", json.dumps(failing), ok=False)
        check("test failed" in result.stderr, "failed test op message", result.stderr)
        after = self.get("extra-1")
        check(after["metadata"]["resourceVersion"] == obj["metadata"]["resourceVersion"], "failed patch changed", after)
        result = self.kubectl("patch", "bs", "extra-1", "-p", '{"spec":{"default":false}}', ok=False)
        check("strategic-merge-patch" in result.stderr and "not supported" in result.stderr,
              "strategic merge patch on a custom resource", result.stderr)

    def step_status(self):
        patch = {"status": {"phase": "Ready", "totalSize": "1.134 MiB"}, "spec": {"default": False}}
        obj = json.loads(self.kubectl("patch", "bs", "s3-storage", "--subresource=status", "--type=merge",
                                      "-p", json.dumps(patch), "-o", "json").stdout)
        check(obj["status"]["phase"] == "Ready" and obj["spec"]["default"] is True, "status patch", obj)
        check(obj["metadata"]["generation"] == 2, "a status write moved generation", obj)
        row = [line for line in self.kubectl("get", "bs").stdout.splitlines() if line.startswith("s3-storage")][0]
        check(row.split()[4:7] == ["1.134", "MiB", "Ready"], "status columns", row)

    def step_wait(self):
        before = self.server.stats()["watch_connections"]
        waiter = self.start("wait", "--for=condition=Ready", "bs/extra-3", "--timeout=20s")
        self.wait_for_watch(before)
        check(waiter.poll() is None, "kubectl wait returned before the condition", waiter.communicate)
        condition = {"type": "Ready", "status": "True", "reason": "BackendInitializationSucceeded",
                     "message": "Successfully initialized backend.", "lastTransitionTime": "2025-04-21T12:29:15Z",
                     "observedGeneration": 1}
        self.kubectl("patch", "bs", "extra-3", "--subresource=status", "--type=merge", "-p",
                     json.dumps({"status": {"phase": "Ready", "conditions": [condition]}}))
        out, err = waiter.communicate(timeout=15)
        check(waiter.returncode == 0 and "condition met" in out, "kubectl wait", out, err)

    def step_finalizer_delete(self):
        self.kubectl("patch", "bs", "extra-4", "--type=merge", "-p",
                     '{"metadata":{"finalizers":["kubestash.com/cleanup"]}}')
        deleter = self.start("delete", "bs", "extra-4", "--timeout=20s")
        self.wait_for(lambda: self.get("extra-4")["metadata"].get("deletionTimestamp"), "deletionTimestamp")
        obj = self.get("extra-4")
        check(obj["metadata"]["finalizers"] == ["kubestash.com/cleanup"] and obj["metadata"]["generation"] == 2,
              "deleting object", obj)
        time.sleep(0.3)
        check(deleter.poll() is None, "kubectl delete returned while the finalizer holds", deleter.communicate)
        result = self.kubectl("patch", "bs", "extra-4", "--type=json", "-p",
                              '[{"op":"add","path":"/metadata/finalizers/-","value":"late"}]', ok=False)
        check("no new finalizers" in result.stderr, "adding a finalizer while deleting", result.stderr)
        self.kubectl("patch", "bs", "extra-4", "--type=json", "-p",
                     '[{"op":"test","path":"/metadata/finalizers/0","value":"kubestash.com/cleanup"},'
                     '{"op":"remove","path":"/metadata/finalizers/0"}]')
        out, err = deleter.communicate(timeout=15)
        check(deleter.returncode == 0 and 'backupstorage.storage.kubestash.com "extra-4" deleted' in out,
              "kubectl delete", out, err)
        result = self.kubectl("get", "bs", "extra-4", ok=False)
        check("NotFound" in result.stderr, "object gone", result.stderr)

    def step_raw_watch(self):
        started = time.monotonic()
        result = self.kubectl("get", "--raw", "/apis/storage.kubestash.com/v1alpha1/backupstorages?watch=1"
                                              "&timeoutSeconds=2")
        elapsed = time.monotonic() - started
        events = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
        names = sorted(e["object"]["metadata"]["name"] for e in events)
        check({e["type"] for e in events} == {"ADDED"} and names == ["extra-1", "extra-3", "extra-9", "s3-storage"],
              "raw watch events", result.stdout)
        check(1.8 <= elapsed < 6, f"raw watch took {elapsed:.1f}s, expected about timeoutSeconds=2")

    def step_retry_after(self):
        self.server.control(action="fail", code=429, count=1, verb="list", retry_after=1)
        started = time.monotonic()
        result = self.kubectl("get", "bs", "-o", "name")
        check("backupstorage.storage.kubestash.com/s3-storage" in result.stdout, "list after a 429", result.stdout)
        check(time.monotonic() - started >= 1, "kubectl did not wait Retry-After")
        check(self.server.stats()["faults"]["served"].get("fail") == 1, "fault not served")

    def step_generator(self):
        result = self.kubectl("create", "secret", "generic", "generated", "--from-literal=AWS_ACCESS_KEY_ID=x")
        check("secret/generated created" in result.stdout, "kubectl create secret (protobuf body)", result.stdout)
        check(self.get("generated", "secret")["data"] == {"AWS_ACCESS_KEY_ID": "eA=="}, "generated secret")

    def step_deploy_manifests(self):
        # The product's own kustomize base (Namespace, CRDs, ServiceAccount, RBAC, a Deployment, its metrics
        # Service and PodDisruptionBudget), rendered
        # by kubectl's own kustomize and applied as on a real cluster: the base creates its namespace itself.
        result = self.kubectl("apply", "-k", DEPLOY_BASE)
        created = ["namespace/stowage-system", "serviceaccount/stowage"]
        created += [f"customresourcedefinition.apiextensions.k8s.io/{plural}.storage.kubestash.com"
                    for plural in ("backupstorages", "repositories", "snapshots")]
        created += ["clusterrole.rbac.authorization.k8s.io/stowage", "clusterrolebinding.rbac.authorization.k8s.io/stowage",
                    "role.rbac.authorization.k8s.io/stowage-leader-election",
                    "rolebinding.rbac.authorization.k8s.io/stowage-leader-election", "deployment.apps/stowage",
                    "service/stowage-metrics", "poddisruptionbudget.policy/stowage"]
        for name in created:
            check(f"{name} created" in result.stdout, f"apply -k deploy/base: {name}", result.stdout, result.stderr)
        check(result.stderr == "", "apply -k deploy/base printed warnings", result.stderr)
        result = self.kubectl("apply", "-k", DEPLOY_BASE)
        for name in created:
            # A PodDisruptionBudget's spec.selector has patchStrategy replace: kubectl's patch always carries
            # it, so a re-apply says "configured" on a real API server too.
            again = "configured" if name.startswith("poddisruptionbudget") else "unchanged"
            check(f"{name} {again}" in result.stdout, f"re-apply -k deploy/base: {name}", result.stdout)
        check(self.kubectl("get", "namespace", "stowage-system", "-o", "name").stdout.strip()
              == "namespace/stowage-system", "deploy/base created its namespace")
        result = self.kubectl("get", "deploy,sa,clusterrole,clusterrolebinding,role,rolebinding", "-A")
        lines = [line.split() for line in result.stdout.splitlines()]
        for kind in ("deployment.apps/stowage", "serviceaccount/stowage", "clusterrole.rbac.authorization.k8s.io/stowage",
                     "clusterrolebinding.rbac.authorization.k8s.io/stowage",
                     "role.rbac.authorization.k8s.io/stowage-leader-election",
                     "rolebinding.rbac.authorization.k8s.io/stowage-leader-election"):
            namespace = "" if kind.startswith("cluster") else "stowage-system"
            check(any(kind in line and (not namespace or line[0] == namespace) for line in lines),
                  f"kubectl get -A lists {kind}", result.stdout)
        deployment = json.loads(self.kubectl("get", "deployment", "stowage", "-n", "stowage-system", "-o",
                                             "json").stdout)
        check(deployment["metadata"]["generation"] == 1 and deployment["spec"]["replicas"] == 1, "deployment", deployment)
        check(deployment["spec"]["template"]["spec"]["serviceAccountName"] == "stowage", "deployment", deployment)
        role = json.loads(self.kubectl("get", "clusterrole", "stowage", "-o", "json").stdout)
        check({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "watch"]} in role["rules"],
              "clusterrole rules", role)
        # A change to a built-in kind goes as a strategic merge patch; the status subresource is separate.
        with open(os.path.join(DEPLOY_BASE, "deployment.yaml")) as f:
            manifest = f.read()
        check("replicas: 1" in manifest, "deploy/base/deployment.yaml has replicas: 1", manifest)
        result = self.kubectl("apply", "-f", "-", stdin=manifest.replace("replicas: 1", "replicas: 3"))
        check("deployment.apps/stowage configured" in result.stdout, "apply a changed deployment", result.stdout)
        self.kubectl("patch", "deployment", "stowage", "-n", "stowage-system", "--subresource=status", "--type=merge",
                     "-p", '{"status":{"replicas":3,"updatedReplicas":3,"availableReplicas":3}}')
        deployment = json.loads(self.kubectl("get", "deployment", "stowage", "-n", "stowage-system", "-o",
                                             "json").stdout)
        check(deployment["spec"]["replicas"] == 3 and deployment["metadata"]["generation"] == 2
              and deployment["status"]["availableReplicas"] == 3, "scaled deployment", deployment)
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "stowage-0", "namespace": "stowage-system"},
               "spec": {"serviceAccountName": "stowage", "containers": [{"name": "stowage", "image": "stowage:0.1.0"}]},
               "status": {"phase": "Running"}}
        self.kubectl("apply", "-f", "-", stdin=json.dumps(pod))
        check("status" not in json.loads(self.kubectl("get", "pod", "stowage-0", "-n", "stowage-system", "-o",
                                                      "json").stdout), "pod status is a subresource")
        result = self.kubectl("get", "po", "-n", "stowage-system", "--field-selector=spec.serviceAccountName=stowage",
                              "-o", "name")
        check(result.stdout.split() == ["pod/stowage-0"], "pods by field selector", result.stdout)


def main():
    steps = [name for name in dir(Fidelity) if name.startswith("step_")]
    order = ["step_apply", "step_paging", "step_table", "step_watch", "step_patches", "step_status", "step_wait",
             "step_finalizer_delete", "step_raw_watch", "step_retry_after", "step_generator", "step_deploy_manifests"]
    assert sorted(order) == sorted(steps)
    with tempfile.TemporaryDirectory() as directory, ApiServer(directory, tls=True, token="kubectl-token") as server:
        fidelity = Fidelity(server, directory)
        try:
            for name in order:
                started = time.monotonic()
                getattr(fidelity, name)()
                print(f"ok   {name[5:]:<18} {time.monotonic() - started:5.2f}s", flush=True)
        except (Failure, subprocess.TimeoutExpired) as e:
            print(f"FAIL {name[5:]}: {e}", flush=True)
            with open(os.path.join(directory, "apiserver.log")) as log:
                print("--- apiserver log ---\n" + log.read()[-4000:])
            return 1
        finally:
            fidelity.stop_background()
    return 0


if __name__ == "__main__":
    sys.exit(main())
