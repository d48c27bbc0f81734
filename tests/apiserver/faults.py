"""Faults armed on demand by tests, and the counters tests read back.

A fault matches a request by optional `path` (a substring of the URL path), `verb` (the Kubernetes
verb: get, list, watch, create, update, patch, delete, deletecollection) and `method`. `count` is
how many matching requests (or, for the watch faults, watch streams) it affects: 1 by default, -1
for every one until cleared. Kinds:

  fail         answer with `code` (410, 429, 500, 504, ...) and a Status; `retry_after` adds the
               Retry-After header. A 410 on a watch is sent the way a real server sends it: HTTP 200,
               one ERROR event carrying the Expired Status, then EOF (`"http": true` sends a plain 410).
  delay        wait `ms` milliseconds before handling the request.
  drop_watch   the next matching watch stream that has something to send (an event, a bookmark) sends
               half of it and closes the connection: a truncated chunk and a JSON event cut in two.
  stall_watch  the next matching watch stream that has something to send (or a new one, at once)
               goes silent with its socket open: no events, no bookmarks, no EOF, until the client
               closes it or `clear_faults` releases it (then the server closes it).
  garbage_watch the next matching watch stream that has something to send sends a line that is not
               JSON instead, then closes the connection.
"""
import threading
from collections import Counter

MAX_DENIALS = 100
KINDS = ("fail", "delay", "drop_watch", "stall_watch", "garbage_watch")


class Faults:
    def __init__(self):
        self.lock = threading.Lock()
        self.armed = []
        self.release_generation = 0   # clear_faults bumps it; stalled watches end when it moves
        self.served = Counter()

    def arm(self, spec):
        kind = spec.get("action")
        if kind not in KINDS:
            raise ValueError(f"unknown fault {kind!r}; one of {', '.join(KINDS)}")
        if kind == "fail" and not isinstance(spec.get("code"), int):
            raise ValueError("fail needs an integer code")
        if kind == "delay" and not isinstance(spec.get("ms"), (int, float)):
            raise ValueError("delay needs ms")
        fault = dict(spec, kind=kind, count=int(spec.get("count", 1)))
        with self.lock:
            self.armed.append(fault)
        return fault

    def clear(self):
        with self.lock:
            self.armed = []
            self.release_generation += 1

    def take(self, kinds, path, verb, method):
        """The first armed fault of one of `kinds` matching the request, consuming one count."""
        with self.lock:
            for fault in self.armed:
                if fault["kind"] not in kinds:
                    continue
                if fault.get("path") and fault["path"] not in path:
                    continue
                if fault.get("verb") and fault["verb"] != verb:
                    continue
                if fault.get("method") and fault["method"].upper() != method:
                    continue
                if fault["count"] > 0:
                    fault["count"] -= 1
                    if fault["count"] == 0:
                        self.armed.remove(fault)
                self.served[fault["kind"]] += 1
                return fault
        return None

    def snapshot(self):
        with self.lock:
            return {"armed": [dict(f) for f in self.armed], "served": dict(self.served)}


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        with getattr(self, "lock", threading.Lock()):
            self.by_verb = Counter()
            self.by_path = Counter()
            self.by_code = Counter()
            self.list_continues = 0
            self.list_pages_with_continue = 0
            self.watch_connections = 0
            self.active_watches = 0
            self.unauthorized = 0
            self.forbidden = 0
            self.denials = []  # the first MAX_DENIALS 403 messages, for a test to show
            self.admission = Counter()  # webhook calls, denials, patches, failed_open, failed_closed

    def request(self, verb, path):
        with self.lock:
            self.by_verb[verb] += 1
            self.by_path[f"{verb} {path}"] += 1

    def add(self, name, amount=1):
        with self.lock:
            setattr(self, name, getattr(self, name) + amount)

    def admission_event(self, name):
        with self.lock:
            self.admission[name] += 1

    def deny(self, message):
        with self.lock:
            self.forbidden += 1
            if len(self.denials) < MAX_DENIALS:
                self.denials.append(message)

    def code(self, code):
        with self.lock:
            self.by_code[str(code)] += 1

    def snapshot(self):
        with self.lock:
            return {"requests_by_verb": dict(self.by_verb), "requests_by_path": dict(self.by_path),
                    "responses_by_code": dict(self.by_code), "list_continues": self.list_continues,
                    "list_pages_with_continue": self.list_pages_with_continue,
                    "watch_connections": self.watch_connections, "active_watches": self.active_watches,
                    "unauthorized": self.unauthorized, "forbidden": self.forbidden, "denials": list(self.denials),
                    "admission": dict(self.admission)}
