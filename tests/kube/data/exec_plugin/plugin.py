#!/usr/bin/env python3
"""A test exec credential plugin (client.authentication.k8s.io), driven by environment variables
that tests/kube/exec_plugin_test.cpp sets through the kubeconfig's exec.env:

  PLUGIN_COUNT_FILE   one line is appended per run; the number of earlier lines is this run's index
  PLUGIN_TOKENS       comma-separated tokens: run i prints the i-th (the last one once they run out)
  PLUGIN_EXPIRE_IN    seconds: status.expirationTimestamp = now + that (RFC 3339, whole seconds)
  PLUGIN_INFO_FILE    writes what the plugin saw: KUBERNETES_EXEC_INFO, argv, stdin, process group,
                      open descriptors, a few environment variables
  PLUGIN_SLEEP        seconds to sleep before answering
  PLUGIN_GRANDCHILD_PID_FILE  starts `sleep 60` (same process group) and writes its pid there
  PLUGIN_EXIT         exit with this code after printing a token on stdout and a line on stderr
  PLUGIN_ORPHANS      starts this many `sleep 0.3` (stdout not inherited) and never waits for them: when
                      the plugin exits they are orphans, re-parented to PID 1 or the nearest subreaper
  PLUGIN_LINGER       seconds: after answering, close stdout and wait this long before exiting
  PLUGIN_MODE         garbage (stdout that is not JSON), flood (2 MiB), signal (SIGTERM to itself),
                      cert (status.clientCertificateData/clientKeyData from PLUGIN_CERT_FILE/_KEY_FILE)
  PLUGIN_API_VERSION  the apiVersion to answer with; by default the one KUBERNETES_EXEC_INFO asks
                      for, as real plugins do
"""
import datetime
import json
import os
import signal
import subprocess
import sys
import time

env = os.environ
info = json.loads(env.get("KUBERNETES_EXEC_INFO", "{}"))

run = 0
if env.get("PLUGIN_COUNT_FILE"):
    try:
        with open(env["PLUGIN_COUNT_FILE"]) as f:
            run = sum(1 for _ in f)
    except FileNotFoundError:
        pass
    with open(env["PLUGIN_COUNT_FILE"], "a") as f:
        f.write(f"{os.getpid()}\n")

if env.get("PLUGIN_INFO_FILE"):
    fds = [int(fd) for fd in os.listdir("/proc/self/fd")]
    devnull = os.stat("/dev/null")
    stdin = os.fstat(0)
    seen = {
        "exec_info": info,
        "args": sys.argv[1:],
        "stdin_is_devnull": (stdin.st_rdev, stdin.st_ino) == (devnull.st_rdev, devnull.st_ino),
        "own_process_group": os.getpgid(0) == os.getpid(),
        "fds": sorted(fds),
        "inherited": env.get("STOWAGE_TEST_INHERITED"),
        "overridden": env.get("STOWAGE_TEST_OVERRIDDEN"),
        "from_exec_env": env.get("PLUGIN_MARK"),
    }
    with open(env["PLUGIN_INFO_FILE"], "w") as f:
        json.dump(seen, f)

if env.get("PLUGIN_GRANDCHILD_PID_FILE"):
    child = subprocess.Popen(["sleep", "60"], stdout=subprocess.DEVNULL)
    with open(env["PLUGIN_GRANDCHILD_PID_FILE"], "w") as f:
        f.write(str(child.pid))

if env.get("PLUGIN_SLEEP"):
    time.sleep(float(env["PLUGIN_SLEEP"]))

for _ in range(int(env.get("PLUGIN_ORPHANS", "0"))):
    subprocess.Popen(["sleep", "0.3"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)

tokens = env.get("PLUGIN_TOKENS", "plugin-token").split(",")
status = {"token": tokens[min(run, len(tokens) - 1)]}
if env.get("PLUGIN_EXPIRE_IN"):
    expiry = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=float(env["PLUGIN_EXPIRE_IN"]))
    status["expirationTimestamp"] = expiry.strftime("%Y-%m-%dT%H:%M:%SZ")

mode = env.get("PLUGIN_MODE", "")
if mode == "garbage":
    sys.stdout.write("{this is not json: [secret-output-xyz\n")
    sys.exit(0)
if mode == "flood":
    sys.stdout.write("x" * (2 << 20))
    sys.exit(0)
if mode == "signal":
    sys.stdout.write('{"secret-output-xyz": 1}')
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(10)
if mode == "cert":
    with open(env["PLUGIN_CERT_FILE"]) as f:
        status["clientCertificateData"] = f.read()
    with open(env["PLUGIN_KEY_FILE"]) as f:
        status["clientKeyData"] = f.read()
    if env.get("PLUGIN_NO_TOKEN"):
        del status["token"]

credential = {
    "kind": "ExecCredential",
    "apiVersion": env.get("PLUGIN_API_VERSION") or info.get("apiVersion", "client.authentication.k8s.io/v1"),
    "status": status,
}
json.dump(credential, sys.stdout)
sys.stdout.write("\n")
sys.stdout.flush()

if env.get("PLUGIN_LINGER"):
    os.close(1)
    sys.stdout = open(os.devnull, "w")
    time.sleep(float(env["PLUGIN_LINGER"]))

if env.get("PLUGIN_EXIT"):
    sys.stderr.write("test plugin: failing on purpose\n")
    sys.exit(int(env["PLUGIN_EXIT"]))
