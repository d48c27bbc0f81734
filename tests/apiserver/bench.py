#!/usr/bin/env python3
"""How fast the test API server is at benchmark sizes (end to end with a Python client over TLS, so
the figures are upper bounds of the server's own cost).

    bench.py [--objects 10000] [--page 500] [--max-seconds 5] [--http-creates N]

Measures: seeding N BackupStorages through /__control; listing them in pages of --page; replaying
N watch events from history; N live watch events (a watch open while N more objects are created);
a watch's 2N initial events; creating --http-creates objects (another namespace) with one POST each
on one keep-alive connection. Exits 1 if the list or a watch takes more than --max-seconds, so CTest
notices if the server would become a benchmark's bottleneck.
"""
import argparse
import json
import os
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from testlib import ApiServer  # noqa: E402

COLLECTION = "/apis/storage.kubestash.com/v1alpha1/namespaces/bench/backupstorages"
HTTP_COLLECTION = "/apis/storage.kubestash.com/v1alpha1/namespaces/bench-http/backupstorages"


def storage(name, namespace="bench"):
    return {"apiVersion": "storage.kubestash.com/v1alpha1", "kind": "BackupStorage",
            "metadata": {"name": name, "namespace": namespace, "labels": {"bench": "yes"},
                         "finalizers": ["kubestash.com/cleanup"]},
            "spec": {"storage": {"provider": "s3", "s3": {"endpoint": "https://s3.example.com", "bucket": "bench",
                                                          "region": "us-east-1", "prefix": f"bench/{name}",
                                                          "secretName": "s3-secret"}},
                     "usagePolicy": {"allowedNamespaces": {"from": "Same"}}, "deletionPolicy": "Delete"}}


def timed(label, results, fn):
    started = time.monotonic()
    detail = fn()
    elapsed = time.monotonic() - started
    results[label] = elapsed
    print(f"{label:<44} {elapsed:7.3f} s  {detail or ''}", flush=True)
    return elapsed


def seed(server, names):
    for start in range(0, len(names), 2000):
        server.control(action="create", objects=[storage(n) for n in names[start:start + 2000]])
    return f"{len(names)} objects"


def create_over_http(server, names):
    client = server.client()
    for name in names:
        status, _, _ = client.raw("POST", HTTP_COLLECTION, storage(name, "bench-http"))
        assert status == 201, status
    client.close()
    return f"{len(names)} requests"


def list_pages(server, page, expected):
    client = server.client()
    items, token, pages, rvs = 0, "", 0, set()
    while True:
        query = f"?limit={page}" + (f"&continue={token}" if token else "")
        status, body = client.request("GET", COLLECTION + query)
        assert status == 200, body
        items, pages = items + len(body["items"]), pages + 1
        rvs.add(body["metadata"]["resourceVersion"])
        token = body["metadata"].get("continue")
        if not token:
            break
    client.close()
    assert items == expected and len(rvs) == 1, (items, expected, rvs)
    return f"{items} items in {pages} pages"


def read_events(server, path, count, before_reading=None):
    client = server.client()
    watch = client.watch(path)
    if before_reading:
        before_reading()
    events = watch.collect(count, timeout=30)
    client.close()
    assert len(events) == count and all(e["type"] == "ADDED" for e in events), len(events)
    return f"{len(events)} events"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--objects", type=int, default=10000)
    p.add_argument("--page", type=int, default=500)
    p.add_argument("--max-seconds", type=float, default=5.0)
    p.add_argument("--http-creates", type=int, default=2000)
    args = p.parse_args()
    n, results = args.objects, {}
    with tempfile.TemporaryDirectory() as directory, ApiServer(directory, tls=True) as server:
        start_rv = server.stats()["resourceVersion"]
        timed(f"seed {n} via /__control", results, lambda: seed(server, [f"bs-{i:05d}" for i in range(n)]))
        timed(f"list {n} in pages of {args.page}", results, lambda: list_pages(server, args.page, n))
        timed(f"watch: replay {n} events from history", results,
              lambda: read_events(server, f"{COLLECTION}?watch=1&resourceVersion={start_rv}", n))
        rv = server.stats()["resourceVersion"]
        more = [f"live-{i:05d}" for i in range(n)]
        seeder = threading.Thread(target=seed, args=(server, more))
        timed(f"watch: {n} live events while they are created", results,
              lambda: read_events(server, f"{COLLECTION}?watch=1&resourceVersion={rv}", n, seeder.start))
        seeder.join()
        timed(f"watch: {2 * n} initial events (no resourceVersion)", results,
              lambda: read_events(server, f"{COLLECTION}?watch=1", 2 * n))
        if args.http_creates:
            names = [f"http-{i:05d}" for i in range(args.http_creates)]
            elapsed = timed(f"create {len(names)} with POST (one connection)", results,
                            lambda: create_over_http(server, names))
            print(f"{'':<44} {len(names) / elapsed:7.0f} creates/s")
    print(json.dumps({k: round(v, 3) for k, v in results.items()}))
    slow = {k: v for k, v in results.items() if (k.startswith("list") or k.startswith("watch")) and v > args.max_seconds}
    if slow:
        print(f"FAIL: slower than {args.max_seconds} s: {slow}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
