#!/usr/bin/env python3
"""A small HTTP/1.1 server for the HTTP client's tests (keep-alive, TLS, faults). Loopback only.

Routes:  /echo            200, body "<METHOD> <path>" (echoes the request body after a newline)
         /status/N        status N
         /flaky/KEY/N     the first N requests for KEY answer 503 (Retry-After: 0), then 200
         /slow/MS         waits MS milliseconds, then 200
         /close           200 with Connection: close
         /stats           JSON {"connections": number of TCP connections accepted so far}
         /stream/N/MS     chunked body: N lines "event i\n", one chunk each, MS milliseconds apart
         /stall           chunked body: one line, then silence with the connection open
"""
import argparse
import json
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

lock = threading.Lock()
flaky = {}
connections = 0


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def setup(self):
        global connections
        with lock:
            connections += 1
        super().setup()

    def log_message(self, *args):
        pass

    def reply(self, status, body=b"", headers=None):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = self.path.split("?")[0].strip("/").split("/")
        if parts[0] == "echo":
            return self.reply(200, f"{self.command} {self.path}\n".encode() + body)
        if parts[0] == "status":
            return self.reply(int(parts[1]), b"status")
        if parts[0] == "flaky":
            key, n = parts[1], int(parts[2])
            with lock:
                seen = flaky.get(key, 0)
                flaky[key] = seen + 1
            if seen < n:
                return self.reply(503, b"slow down", {"Retry-After": "0"})
            return self.reply(200, f"ok after {seen}".encode())
        if parts[0] == "slow":
            time.sleep(int(parts[1]) / 1000.0)
            return self.reply(200, b"slow")
        if parts[0] == "close":
            self.close_connection = True
            return self.reply(200, b"bye", {"Connection": "close"})
        if parts[0] in ("stream", "stall"):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            n, ms = (int(parts[1]), int(parts[2])) if parts[0] == "stream" else (1, 0)
            for i in range(n):
                data = f"event {i}\n".encode()
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()
                time.sleep(ms / 1000.0)
            if parts[0] == "stall":
                time.sleep(30)
            self.wfile.write(b"0\r\n\r\n")
            return
        if parts[0] == "stats":
            with lock:
                return self.reply(200, json.dumps({"connections": connections}).encode())
        return self.reply(404, b"no route")

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_any


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--client-ca", help="require client certificates signed by this CA")
    a = p.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    server.daemon_threads = True
    if a.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(a.cert, a.key)
        if a.client_ca:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(a.client_ca)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
