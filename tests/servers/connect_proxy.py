#!/usr/bin/env python3
"""A forward HTTP proxy for tests that tunnels with CONNECT only (what stowage's HTTP client uses).

    connect_proxy.py --port P [--user U --password W] [--allow-port N ...] [--misbehave close|silent]
                     [--map NAME=ADDRESS ...]

    CONNECT host:port   with the right Proxy-Authorization (Basic) when --user is given, else 407 with
                        Proxy-Authenticate; 403 when --allow-port is given and the port is not in it;
                        502 when the target cannot be reached; otherwise "200 Connection established"
                        and bytes are piped both ways until either side closes.
    GET /__stats        text, one "name value" per line: "tunnels N" (opened so far), "open N" (open
                        now), "refused N" (CONNECTs refused), then per CONNECT received
                        "connect HOST:PORT with-auth|without-auth" (whether it carried
                        Proxy-Authorization; no credential is ever recorded)
    anything else       405: absolute-form requests are not supported.

--map NAME=ADDRESS: the proxy's own name resolution: a CONNECT to NAME:port reaches ADDRESS:port
(so tests can use a host name the client itself cannot resolve, and that is not loopback).
--misbehave close: read the CONNECT, then close without answering. --misbehave silent: read it and
never answer (the client's timeout must end the exchange). Loopback only, Python 3 standard library,
asyncio. Exits by itself when the process that started it goes away.
"""
import argparse
import asyncio
import base64
import os


class Stats:
    def __init__(self):
        self.tunnels = 0
        self.open = 0
        self.refused = 0
        self.connects = []

    def to_text(self):
        lines = [f"tunnels {self.tunnels}", f"open {self.open}", f"refused {self.refused}"]
        lines += [f"connect {target} {auth}" for target, auth in self.connects]
        return ("\n".join(lines) + "\n").encode()


async def reply(writer, status, reason, headers=(), body=b""):
    head = f"HTTP/1.1 {status} {reason}\r\n"
    for name, value in headers:
        head += f"{name}: {value}\r\n"
    head += f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    writer.write(head.encode("latin-1") + body)
    try:
        await writer.drain()
    finally:
        writer.close()


async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        try:
            if writer.can_write_eof():
                writer.write_eof()
        except (ConnectionError, OSError):
            pass


def split_target(target):
    """ "host:port" or "[v6]:port" -> (host, port) or None."""
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit() or not host:
        return None
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


class Proxy:
    def __init__(self, args):
        self.args = args
        self.stats = Stats()
        self.expected = None
        if args.user is not None:
            token = base64.b64encode(f"{args.user}:{args.password or ''}".encode()).decode()
            self.expected = "Basic " + token

    async def handle(self, reader, writer):
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError, ConnectionError):
            writer.close()
            return
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3:
            return await reply(writer, 400, "Bad Request")
        method, target, _ = parts
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        if method == "GET" and target == "/__stats":
            return await reply(writer, 200, "OK", [("Content-Type", "text/plain")], self.stats.to_text())
        if method != "CONNECT":
            return await reply(writer, 405, "Method Not Allowed", [("Allow", "CONNECT")], b"CONNECT only\n")
        self.stats.connects.append((target, "with-auth" if "proxy-authorization" in headers else "without-auth"))
        if self.args.misbehave == "close":
            writer.close()
            return
        if self.args.misbehave == "silent":
            await reader.read()  # until the client gives up
            writer.close()
            return
        if self.expected is not None and headers.get("proxy-authorization") != self.expected:
            self.stats.refused += 1
            return await reply(writer, 407, "Proxy Authentication Required",
                               [("Proxy-Authenticate", 'Basic realm="connect_proxy"')], b"who are you?\n")
        address = split_target(target)
        if address is None:
            self.stats.refused += 1
            return await reply(writer, 400, "Bad Request", body=b"CONNECT wants host:port\n")
        if self.args.allow_port and address[1] not in self.args.allow_port:
            self.stats.refused += 1
            return await reply(writer, 403, "Forbidden", body=b"port not allowed\n")
        try:
            host = self.args.hosts.get(address[0], address[0])
            up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(host, address[1]), 10)
        except (OSError, asyncio.TimeoutError):
            self.stats.refused += 1
            return await reply(writer, 502, "Bad Gateway", body=b"cannot reach the target\n")
        self.stats.tunnels += 1
        self.stats.open += 1
        try:
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        except (ConnectionError, OSError):
            pass
        finally:
            self.stats.open -= 1
            up_writer.close()
            writer.close()


async def exit_with_parent():
    parent = os.getppid()
    while os.getppid() == parent:
        await asyncio.sleep(0.5)
    os._exit(0)


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--user", help="require Proxy-Authorization: Basic for this user")
    parser.add_argument("--password")
    parser.add_argument("--allow-port", type=int, action="append", help="refuse (403) CONNECTs to other ports")
    parser.add_argument("--misbehave", choices=["close", "silent"])
    parser.add_argument("--map", action="append", default=[], metavar="NAME=ADDRESS",
                        help="connect CONNECTs to NAME to ADDRESS instead")
    args = parser.parse_args()
    args.hosts = dict(entry.split("=", 1) for entry in args.map)
    proxy = Proxy(args)
    server = await asyncio.start_server(proxy.handle, args.host, args.port)
    asyncio.ensure_future(exit_with_parent())
    print(f"connect_proxy listening on {args.host}:{args.port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
