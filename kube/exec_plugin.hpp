#pragma once
// run_exec_plugin — runs a kubeconfig exec credential plugin (users[].user.exec) once, on the
// caller's reactor, and returns the ExecCredential it printed (kube/exec_credential.hpp parses it).
//
// Guarantees:
// - The reactor never blocks: the child is started with posix_spawn, its stdout is read through a
//   stream_descriptor, and its exit is awaited on a pidfd (pidfd_open); where pidfds are missing,
//   by polling waitpid(WNOHANG) on a timer. Nothing waits in a blocking call while it runs.
// - The child gets: the inherited environment plus exec_environment(...) (exec.env, then
//   KUBERNETES_EXEC_INFO; a later entry replaces an inherited one); stdin /dev/null unless the
//   run is interactive (then our stdin); stderr inherited, as client-go does, so the plugin's own
//   messages reach our log; stdout a pipe; default signal dispositions and an empty signal mask;
//   none of our other file descriptors (all are close-on-exec here).
// - Its own process group (not when interactive: a background group cannot read the terminal).
//   After `timeout` the group (or, interactive, the process) gets SIGKILL and the error says so;
//   more than max_output_bytes on stdout kills it the same way.
// - The child is always reaped: no zombie is left, also when the coroutine is destroyed midway
//   (then the child is killed and reaped at once; SIGKILL makes that wait short).
// - The child is claimed in process::own_children() (common/child_reaper.hpp) from its start: as PID 1,
//   where a ChildReaper reaps every ended child, its exit status still reaches this waiter, and
//   once it is reaped its pid (which may be reused) is never signalled.
// - Errors name the command (never its arguments, environment or output, which may hold secrets)
//   and say what to do: not found (with the kubeconfig's installHint), not executable, exit code,
//   signal, timeout, output too large, or parse_exec_credential's message for bad output.
//
// Assumes: nothing but process::own_children() reaps children it did not start (waitpid(-1) elsewhere,
// or SIGCHLD set to SIG_IGN, would lose the exit status: the output is then judged alone).
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>

#include "common/result.hpp"
#include "kube/client_config.hpp"
#include "kube/exec_credential.hpp"

namespace stowage::kube {

struct ExecPluginOptions {
  // client-go has no limit; a controller cannot wait forever for a plugin that hangs on the network.
  std::chrono::milliseconds timeout{std::chrono::seconds(60)};
  // An ExecCredential with a certificate chain is a few KiB; 1 MiB is generous.
  std::size_t max_output_bytes = std::size_t{1} << 20;
  // Whether our stdin is a terminal (for interactiveMode); nullopt = isatty(0) when the plugin runs.
  std::optional<bool> stdin_is_terminal;
  // false: await the exit by polling waitpid(WNOHANG) every 20 ms, as on kernels without pidfd_open
  // (before 5.3) — the fallback taken automatically there; false here lets tests take it too.
  bool use_pidfd = true;
};

struct ExecPluginError {
  enum class Kind {
    Interactive,     // interactiveMode cannot be honoured (Always without a terminal)
    NotFound,        // the command does not exist (on PATH, or at its path)
    CannotStart,     // exists but cannot be run (permissions, format, out of resources)
    Failed,          // exited with a non-zero code
    Killed,          // ended by a signal it did not get from us
    TimedOut,        // still running after the timeout: killed
    OutputTooLarge,  // printed more than max_output_bytes: killed
    BadOutput,       // exited 0 but its stdout is not a usable ExecCredential
  };
  Kind kind = Kind::Failed;
  std::string message;  // "exec plugin CMD ...": never its arguments or output
  int exit_code = 0;    // Failed
  int signal = 0;       // Killed

  // Worth running again later: a plugin that failed, was killed or timed out may have met a
  // passing problem (the network, its identity provider). A missing or unusable plugin, or output
  // of the wrong shape, needs a person.
  bool transient() const { return kind == Kind::Failed || kind == Kind::Killed || kind == Kind::TimedOut; }
  const std::string& to_string() const { return message; }
};

using ExecPluginResult = Result<ExecCredential, ExecPluginError>;

// Runs `exec` once for the cluster `cluster` (its server, CA, ... go into KUBERNETES_EXEC_INFO when
// exec.provide_cluster_info) on the awaiting coroutine's executor.
boost::asio::awaitable<ExecPluginResult> run_exec_plugin(ExecConfig exec, ClientConfig cluster,
                                                         ExecPluginOptions options = {});

}  // namespace stowage::kube
