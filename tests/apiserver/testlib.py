"""Helpers for the test API server's own tests and benchmark: certificates, a server process, a client.

    with ApiServer(tmp, tls=True, token="t") as server:   # started on a free port, stopped on exit
        client = server.client()
        status, body = client.request("GET", "/version")

The server is a child process; it is terminated when the `with` block ends (also on an exception),
and it exits by itself if this process dies first (apiserver.py watches its parent).
"""
import http.client
import json
import os
import signal
import ssl
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = os.path.join(HERE, "apiserver.py")


def make_certificates(directory):
    """A CA and a server certificate for 127.0.0.1/localhost signed by it, made with the openssl CLI."""
    ca_key, ca_crt = os.path.join(directory, "ca.key"), os.path.join(directory, "ca.crt")
    key, csr, crt = (os.path.join(directory, n) for n in ("server.key", "server.csr", "server.crt"))
    ext = os.path.join(directory, "server.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
                "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
    run = lambda *args: subprocess.run(["openssl", *args], check=True, capture_output=True)  # noqa: E731
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca_crt, "-days", "1",
        "-subj", "/CN=stowage-test-ca")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1")
    run("x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial", "-out", crt, "-days", "1",
        "-extfile", ext)
    return ca_crt, crt, key


def make_client_certificate(directory, name, ca_crt, ca_key, common_name, organizations=()):
    """A client certificate (CN=common_name, one O per organization) signed by the CA; (cert, key) paths."""
    key, csr, crt = (os.path.join(directory, f"{name}.{ext}") for ext in ("key", "csr", "crt"))
    ext = os.path.join(directory, f"{name}.ext")
    with open(ext, "w") as f:
        f.write("basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n")
    subject = f"/CN={common_name}" + "".join(f"/O={o}" for o in organizations)
    run = lambda *args: subprocess.run(["openssl", *args], check=True, capture_output=True)  # noqa: E731
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", subject)
    run("x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial", "-out", crt, "-days", "1",
        "-extfile", ext)
    return crt, key


def make_server_certificate(directory, name, ca_crt, ca_key, dns_names=(), ips=()):
    """A serving certificate for dns_names and ips signed by the CA (cert, key paths)."""
    key, csr, crt = (os.path.join(directory, f"{name}.{ext}") for ext in ("key", "csr", "crt"))
    ext = os.path.join(directory, f"{name}.ext")
    names = ",".join([f"DNS:{n}" for n in dns_names] + [f"IP:{i}" for i in ips])
    with open(ext, "w") as f:
        f.write(f"subjectAltName={names}\nbasicConstraints=CA:FALSE\n"
                "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
    run = lambda *args: subprocess.run(["openssl", *args], check=True, capture_output=True)  # noqa: E731
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", f"/CN={(dns_names or ips)[0]}")
    run("x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial", "-out", crt, "-days", "1",
        "-extfile", ext)
    return crt, key


def make_ca(directory, name):
    """Another self-signed CA (cert, key paths): certificates it signs are foreign to the server."""
    key, crt = os.path.join(directory, f"{name}.key"), os.path.join(directory, f"{name}.crt")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", crt,
                    "-days", "1", "-subj", f"/CN={name}"], check=True, capture_output=True)
    return crt, key


class ApiServer:
    def __init__(self, directory, tls=True, token="test-token", args=(), client_ca=False):
        """client_ca: also pass --client-ca with the server's own CA (client certificates it signs work)."""
        self.directory, self.tls, self.token, self.args = directory, tls, token, list(args)
        self.client_ca = client_ca
        self.process = None

    def __enter__(self):
        argv = [sys.executable, SERVER, "--port", "0", "--port-file", os.path.join(self.directory, "port")]
        if self.tls:
            self.ca, cert, key = make_certificates(self.directory)
            argv += ["--cert", cert, "--key", key]
            if self.client_ca:
                argv += ["--client-ca", self.ca]
        if self.token:
            argv += ["--token", self.token]
        self.log = open(os.path.join(self.directory, "apiserver.log"), "w")
        self.process = subprocess.Popen(argv + self.args, stdout=self.log, stderr=subprocess.STDOUT)
        port_file = os.path.join(self.directory, "port")
        deadline = time.monotonic() + 10
        while not os.path.exists(port_file):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"apiserver did not start; see {self.log.name}")
            time.sleep(0.02)
        with open(port_file) as f:
            self.port = int(f.read())
        self.url = f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if getattr(self, "log", None):
            self.log.close()

    def client(self, token=None, certificate=None, authorization=None):
        """A client with the admin token, another `token`, a client `certificate` (cert, key) and/or an
        explicit Authorization header value (which replaces the bearer token)."""
        return Client(self, self.token if token is None else token, certificate=certificate,
                      authorization=authorization)

    def control(self, **spec):
        client = self.client()
        status, body = client.request("POST", "/__control", spec)
        client.close()
        assert status == 200, (status, body)
        return body

    def stats(self):
        client = self.client()
        body = client.request("GET", "/__stats")[1]
        client.close()
        return body


class Client:
    """A keep-alive HTTP(S) client speaking JSON to the test server."""

    def __init__(self, server, token, timeout=10, certificate=None, authorization=None):
        self.server, self.token, self.timeout = server, token, timeout
        self.certificate, self.authorization = certificate, authorization
        self.connection = self.connect()
        self.watches = []

    def connect(self):
        if self.server.tls:
            context = ssl.create_default_context(cafile=self.server.ca)
            if self.certificate:
                context.load_cert_chain(*self.certificate)
            return http.client.HTTPSConnection("127.0.0.1", self.server.port, context=context, timeout=self.timeout)
        return http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=self.timeout)

    def headers(self, extra=None):
        headers = {"Accept": "application/json"}
        if self.authorization:
            headers["Authorization"] = self.authorization
        elif self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        headers.update(extra or {})
        return headers

    def raw(self, method, path, body=None, headers=None):
        """(status, headers, body bytes)."""
        if body is not None and not isinstance(body, bytes):
            body = json.dumps(body).encode()
        all_headers = self.headers(headers)
        if body is not None:
            all_headers.setdefault("Content-Type", "application/json")
        self.connection.request(method, path, body=body, headers=all_headers)
        response = self.connection.getresponse()
        data = response.read()
        return response.status, response.headers, data

    def request(self, method, path, body=None, headers=None):
        status, _, data = self.raw(method, path, body, headers)
        return status, (json.loads(data) if data else None)

    def close(self):
        """Close the connection and every watch opened from this client."""
        for watch in self.watches:
            watch.close()
        self.connection.close()

    def watch(self, path, headers=None):
        """A Watch on a fresh connection (watches hold their connection until the stream ends)."""
        self.watches.append(Watch(self, path, headers))
        return self.watches[-1]


class Watch:
    """Reads watch events line by line; `events()` yields decoded events until EOF or the timeout."""

    def __init__(self, client, path, headers=None):
        self.connection = client.connect()
        self.connection.request("GET", path, headers=client.headers(headers))
        self.response = self.connection.getresponse()
        self.buffer, self.position = b"", 0
        self.eof = False

    def set_timeout(self, seconds):
        self.connection.sock.settimeout(seconds)

    def next_event(self, timeout=5):
        """The next event, or None at a clean EOF. Raises socket.timeout, http.client.IncompleteRead."""
        self.set_timeout(timeout)
        end = self.buffer.find(b"\n", self.position)
        while end < 0:
            if self.eof:
                return None
            data = self.response.read1(1 << 20)
            if not data:
                self.eof = True
                if self.position < len(self.buffer):
                    raise http.client.IncompleteRead(self.buffer[self.position:])
                return None
            self.buffer = self.buffer[self.position:] + data
            self.position = 0
            end = self.buffer.find(b"\n")
        line, self.position = self.buffer[self.position:end], end + 1
        return json.loads(line)

    def collect(self, count, timeout=5):
        events = []
        while len(events) < count:
            event = self.next_event(timeout)
            if event is None:
                break
            events.append(event)
        return events

    def close(self):
        self.connection.close()
