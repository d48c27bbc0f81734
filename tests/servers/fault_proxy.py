#!/usr/bin/env python3
"""A small HTTP/1.1 reverse proxy for tests that injects faults in front of any server.

    fault_proxy.py --port P --upstream http://127.0.0.1:U

Every request is forwarded to the upstream unchanged - method, target, body and every end-to-end
header, the Host header included (SigV4 signs Host, so the proxy must not rewrite it) - and the
answer comes back unchanged, over keep-alive connections, until a fault is armed:

    POST /__fault  {"mode": M, "count": N, ...}   arm N faults of mode M (replaces any armed fault)
    POST /__reset                                 disarm and clear the log
    GET  /__log                                   JSON list of the requests seen (method, path, host,
                                                  credential scope of the Authorization, the fault applied)

Modes (each consumes one count per request; "method": "PUT" restricts a fault to one method):
    status503  answer 503 with an S3 <Error> ServiceUnavailable body, not forwarded
    slowdown   answer 503 SlowDown; "retry_after_ms": R adds x-amz-retry-after: R
    respond    answer "status", "headers" {...} and "body" given in the fault, not forwarded
    reset      read the request, then close the connection with a TCP RST, not forwarded
    truncate   forward, then send the status line and headers (with the full Content-Length) and only
               half the body - or half the header block when the body is empty - and close
    delay      wait "delay_ms" before forwarding (a client with a shorter timeout gives up)
Standard library only (threading server: one thread per connection). The proxy exits by itself when
the process that started it goes away (a crashed test leaves no proxy behind).
"""
import argparse
import http.client
import http.server
import json
import os
import socket
import struct
import sys
import threading
import time
import urllib.parse

HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
              "transfer-encoding", "upgrade"}


class State:
    def __init__(self, upstream):
        self.lock = threading.Lock()
        self.fault = None
        self.log = []
        self.upstream = upstream
        self.sequence = 0

    def take_fault(self, method):
        """The armed fault for this request, consuming one count, or None."""
        with self.lock:
            fault = self.fault
            if not fault or fault.get("count", 0) <= 0:
                return None
            if fault.get("method") and fault["method"].upper() != method:
                return None
            fault["count"] -= 1
            return dict(fault)

    def record(self, entry):
        with self.lock:
            self.sequence += 1
            entry["seq"] = self.sequence
            self.log.append(entry)


def s3_error(code, message, request_id):
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message>'
            f'<RequestId>{request_id}</RequestId></Error>').encode()


def credential_scope(authorization):
    """"AKID/20240101/us-east-1/s3/aws4_request" -> "20240101/us-east-1/s3/aws4_request" (no key id, no signature)."""
    marker = "Credential="
    if marker not in authorization:
        return ""
    credential = authorization.split(marker, 1)[1].split(",", 1)[0]
    return credential.split("/", 1)[1] if "/" in credential else ""


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fault-proxy"

    def log_message(self, format, *args):  # quiet: the log endpoint tells what happened
        pass

    def finish(self):
        try:
            super().finish()
        except OSError:
            pass

    def handle_one_request(self):
        try:
            super().handle_one_request()
        except (OSError, ValueError):
            self.close_connection = True

    def _body(self):
        length = int(self.headers.get("Content-Length", "0") or "0")
        return self.rfile.read(length) if length else b""

    def _reply(self, status, headers, body, head=False):
        self.send_response_only(status)
        sent_length = False
        for name, value in headers:
            if name.lower() in HOP_BY_HOP:
                continue
            if name.lower() == "content-length":
                sent_length = True
            self.send_header(name, value)
        if not sent_length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)
        self.wfile.flush()

    def _control(self, body):
        state = self.server.state
        if self.command == "POST" and self.path == "/__fault":
            fault = json.loads(body or b"{}")
            fault.setdefault("count", 1)
            with state.lock:
                state.fault = fault
            return self._reply(200, [("Content-Type", "application/json")], b'{"armed": true}')
        if self.command == "POST" and self.path == "/__reset":
            with state.lock:
                state.fault = None
                state.log = []
            return self._reply(200, [("Content-Type", "application/json")], b'{"reset": true}')
        if self.command == "GET" and self.path == "/__log":
            with state.lock:
                payload = json.dumps(state.log).encode()
            return self._reply(200, [("Content-Type", "application/json")], payload)
        return self._reply(404, [], b"unknown control path")

    def _forward(self, body):
        upstream = self.server.state.upstream
        connection = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=120)
        try:
            connection.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for name, value in self.headers.items():
                if name.lower() not in HOP_BY_HOP:
                    connection.putheader(name, value)
            connection.endheaders(body if body else None)
            response = connection.getresponse()
            data = response.read()
            return response.status, response.getheaders(), data
        finally:
            connection.close()

    def _reset(self):
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True

    def _truncate(self, status, headers, data):
        lines = [f"HTTP/1.1 {status} {http.client.responses.get(status, '')}\r\n"]
        length_sent = False
        for name, value in headers:
            if name.lower() in HOP_BY_HOP:
                continue
            if name.lower() == "content-length":
                length_sent = True
            lines.append(f"{name}: {value}\r\n")
        if not length_sent:
            lines.append(f"Content-Length: {len(data)}\r\n")
        head = "".join(lines).encode() + b"\r\n"
        if data and self.command != "HEAD":
            payload = head + data[: len(data) // 2]
        else:
            payload = head[: len(head) // 2]
        self.wfile.write(payload)
        self.wfile.flush()
        self.connection.shutdown(socket.SHUT_RDWR)
        self.close_connection = True

    def _handle(self):
        body = self._body()
        if self.path.startswith("/__"):
            return self._control(body)
        state = self.server.state
        fault = state.take_fault(self.command)
        state.record({"method": self.command, "path": self.path, "host": self.headers.get("Host", ""),
                      "scope": credential_scope(self.headers.get("Authorization", "")),
                      "fault": fault["mode"] if fault else None, "time": time.time()})
        head = self.command == "HEAD"
        mode = fault["mode"] if fault else None
        request_id = f"fault-{state.sequence}"
        if mode == "status503":
            return self._reply(503, [("Content-Type", "application/xml")],
                               s3_error("ServiceUnavailable", "injected by fault_proxy", request_id), head)
        if mode == "slowdown":
            headers = [("Content-Type", "application/xml")]
            if "retry_after_ms" in fault:
                headers.append(("x-amz-retry-after", str(fault["retry_after_ms"])))
            return self._reply(503, headers, s3_error("SlowDown", "Please reduce your request rate.", request_id),
                               head)
        if mode == "respond":
            payload = fault.get("body", "").encode()
            return self._reply(int(fault.get("status", 500)), list(fault.get("headers", {}).items()), payload, head)
        if mode == "reset":
            return self._reset()
        if mode == "delay":
            time.sleep(fault.get("delay_ms", 1000) / 1000.0)
        status, headers, data = self._forward(body)
        if mode == "truncate":
            return self._truncate(status, headers, data)
        return self._reply(status, headers, data, head)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _handle


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def exit_with_parent():
    parent = os.getppid()
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="http://host:port of the real server")
    args = parser.parse_args()
    upstream = urllib.parse.urlsplit(args.upstream)
    if upstream.scheme != "http":
        sys.exit("fault_proxy: only http:// upstreams are supported")
    server = Server((args.host, args.port), Handler)
    server.state = State(upstream)
    threading.Thread(target=exit_with_parent, daemon=True).start()
    print(f"fault_proxy listening on {args.host}:{args.port} -> {args.upstream}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
