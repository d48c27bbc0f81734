// Runs an exec credential plugin without blocking the reactor: posix_spawn, stdout through a
// stream_descriptor, exit through a pidfd, a deadline timer that kills the process group. See
// exec_plugin.hpp for the guarantees.
#include "kube/exec_plugin.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <array>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <memory>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <utility>
#include <vector>

#include "common/child_reaper.hpp"

namespace stowage::kube {
namespace {

namespace asio = boost::asio;
using Kind = ExecPluginError::Kind;

constexpr const char* kDefaultInstallHint =
    "install it, or correct users[].user.exec.command in the kubeconfig (see "
    "https://kubernetes.io/docs/reference/access-authn-authz/authentication/#client-go-credential-plugins)";

std::string who(const ExecConfig& exec) { return "exec plugin " + exec.command; }

ExecPluginError error(Kind kind, std::string message) { return ExecPluginError{kind, std::move(message), 0, 0}; }

std::string duration_text(std::chrono::milliseconds d) {
  if (d.count() % 1000 == 0) return std::to_string(d.count() / 1000) + "s";
  return std::to_string(d.count()) + "ms";
}

std::string signal_name(int sig) {
  const char* abbrev = ::sigabbrev_np(sig);
  return abbrev ? "SIG" + std::string(abbrev) + " (" + std::to_string(sig) + ")" : std::to_string(sig);
}

// The inherited environment with `extra` applied in order (a later entry replaces an earlier one).
// glibc 2.36's <sys/pidfd.h> declares pidfd_open without extern "C" (fixed in 2.37): call the
// system call itself. -1 when the kernel has none (before 5.3) or a sandbox refuses it.
int open_pidfd(pid_t pid) {
#ifdef SYS_pidfd_open
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
#else
  (void)pid;
  errno = ENOSYS;
  return -1;
#endif
}

std::vector<std::string> child_environment(const std::vector<ExecEnvVar>& extra) {
  std::vector<std::string> env;
  for (char** e = environ; e && *e; ++e) env.emplace_back(*e);
  for (const auto& var : extra) {
    const std::string prefix = var.name + "=";
    std::erase_if(env, [&prefix](const std::string& entry) { return entry.starts_with(prefix); });
    env.push_back(prefix + var.value);
  }
  return env;
}

ExecPluginError spawn_error(const ExecConfig& exec, int err) {
  const bool has_path = exec.command.find('/') != std::string::npos;
  switch (err) {
    case ENOENT:
      return error(Kind::NotFound, who(exec) + " was not found" + (has_path ? "" : " on PATH") +
                                       " (nor, for a script, its #! interpreter): " +
                                       (exec.install_hint.empty() ? kDefaultInstallHint : exec.install_hint));
    case EACCES:
      return error(Kind::CannotStart, who(exec) + " cannot be run: permission denied (is it executable? chmod +x)");
    case ENOEXEC:
      return error(Kind::CannotStart,
                   who(exec) + " cannot be run: it is neither a program for this machine nor a script with a #! line");
    default:
      return error(Kind::CannotStart, who(exec) + " cannot be started: " + std::strerror(err));
  }
}

struct Spawned {
  pid_t pid = -1;
  int stdout_fd = -1;  // the read end of the child's stdout
  int pidfd = -1;      // readable once the child has ended; -1 without pidfds (or not asked for)
};

// posix_spawn's attribute and file-action objects, destroyed on every path.
struct SpawnSetup {
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  SpawnSetup() {
    ::posix_spawn_file_actions_init(&actions);
    ::posix_spawnattr_init(&attr);
  }
  ~SpawnSetup() {
    ::posix_spawn_file_actions_destroy(&actions);
    ::posix_spawnattr_destroy(&attr);
  }
  SpawnSetup(const SpawnSetup&) = delete;
  SpawnSetup& operator=(const SpawnSetup&) = delete;
};

Result<Spawned, ExecPluginError> spawn_plugin(const ExecConfig& exec, std::vector<std::string> env,
                                              bool interactive, bool use_pidfd) {
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return Err(spawn_error(exec, errno));

  SpawnSetup setup;
  if (!interactive) ::posix_spawn_file_actions_addopen(&setup.actions, 0, "/dev/null", O_RDONLY, 0);
  ::posix_spawn_file_actions_adddup2(&setup.actions, pipe_fds[1], 1);
  // Our sockets and files are not the plugin's business (Asio does not open them close-on-exec).
  ::posix_spawn_file_actions_addclosefrom_np(&setup.actions, 3);
  sigset_t none;
  sigemptyset(&none);
  ::posix_spawnattr_setsigmask(&setup.attr, &none);
  sigset_t all;
  sigfillset(&all);
  ::posix_spawnattr_setsigdefault(&setup.attr, &all);
  short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  if (!interactive) {
    flags |= POSIX_SPAWN_SETPGROUP;
    ::posix_spawnattr_setpgroup(&setup.attr, 0);  // a group of its own, led by the child
  }
  ::posix_spawnattr_setflags(&setup.attr, flags);

  std::vector<std::string> args_copy;
  args_copy.push_back(exec.command);
  args_copy.insert(args_copy.end(), exec.args.begin(), exec.args.end());
  std::vector<char*> argv;
  for (auto& a : args_copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);

  // Claimed while no reap can run: as PID 1 a reaper takes every ended child, and must hand this
  // one's status to wait_for_exit. The pidfd is opened here too, while the pid is surely ours.
  int rc = 0, pidfd = -1;
  auto start = [&]() -> pid_t {
    pid_t pid = -1;
    // glibc reports a failed exec (not found, not executable) as posix_spawnp's result.
    rc = ::posix_spawnp(&pid, exec.command.c_str(), &setup.actions, &setup.attr, argv.data(), envp.data());
    if (rc != 0) return -1;
    if (use_pidfd) pidfd = open_pidfd(pid);
    return pid;
  };
  const pid_t pid = process::own_children().spawn(start);
  ::close(pipe_fds[1]);
  if (rc != 0) {
    ::close(pipe_fds[0]);
    return Err(spawn_error(exec, rc));
  }
  return Spawned{pid, pipe_fds[0], pidfd};
}

// One running plugin. Shared with the deadline timer's handler, which may run after the coroutine
// has moved on; whoever lets go of it last reaps the child if nobody has. The child is claimed in
// process::own_children() from its start to here: whoever reaps it (our waitpid, or a PID-1
// reaper), its status reaches wait_for_exit, and a reaped pid is never signalled.
struct Child {
  Child(asio::any_io_executor ex, const Spawned& spawned, bool group)
      : pid(spawned.pid), own_group(group), out(ex), exited(ex) {
    boost::system::error_code ec;
    out.assign(spawned.stdout_fd, ec);
    if (ec) ::close(spawned.stdout_fd);  // reading then fails at once: the plugin's output is lost, not us
    if (spawned.pidfd >= 0) {
      exited.assign(spawned.pidfd, ec);
      if (ec) ::close(spawned.pidfd);  // then the exit is found by polling
    }
  }
  ~Child() {
    if (!reaped) {
      kill_now();
      process::own_children().wait(pid);
    }
    process::own_children().release(pid);
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  void kill_now() const {
    if (!reaped) process::own_children().signal(pid, SIGKILL, own_group);
  }

  pid_t pid;
  bool own_group;
  bool reaped = false;  // its status is known (or lost): nothing is left to wait for
  bool timed_out = false;
  bool too_large = false;
  asio::posix::stream_descriptor out;
  asio::posix::stream_descriptor exited;  // the pidfd, when there is one
};

// Everything the plugin prints on stdout until it closes it, or until the limit is passed (then
// the plugin is killed).
asio::awaitable<std::string> read_output(Child& child, std::size_t limit) {
  std::string output;
  std::array<char, 8192> buffer;
  for (;;) {
    auto [ec, n] = co_await child.out.async_read_some(asio::buffer(buffer), asio::as_tuple(asio::use_awaitable));
    output.append(buffer.data(), n);
    if (output.size() > limit) {
      child.too_large = true;
      child.kill_now();
      break;
    }
    if (ec) break;  // end of file, or the deadline cancelled the read
  }
  boost::system::error_code ignored;
  child.out.close(ignored);
  co_return output;
}

// The child's wait status once it has ended (reaped here, or by a PID-1 reaper before), or nullopt
// when nobody here has it (SIGCHLD ignored, or an unclaimed waitpid took it).
asio::awaitable<std::optional<int>> wait_for_exit(Child& child) {
  auto ex = co_await asio::this_coro::executor;
  asio::steady_timer poll(ex);
  for (;;) {
    const process::ChildState state = process::own_children().poll(child.pid);
    if (state.kind != process::ChildState::Kind::Running) {
      child.reaped = true;
      if (state.kind == process::ChildState::Kind::Exited) co_return state.status;
      co_return std::nullopt;
    }
    if (child.exited.is_open()) {
      auto [ec] = co_await child.exited.async_wait(asio::posix::descriptor_base::wait_read,
                                                   asio::as_tuple(asio::use_awaitable));
      if (ec) {  // fall back to polling
        boost::system::error_code ignored;
        child.exited.close(ignored);
      }
    } else {
      poll.expires_after(std::chrono::milliseconds(20));
      auto [ec] = co_await poll.async_wait(asio::as_tuple(asio::use_awaitable));
      if (ec) co_return std::nullopt;  // cancelled: ~Child kills and reaps
    }
  }
}

ExecPluginResult judge(const ExecConfig& exec, const ExecPluginOptions& options, const Child& child,
                       std::optional<int> status, const std::string& output) {
  if (child.timed_out)
    return Err(error(Kind::TimedOut, who(exec) + " did not finish within " + duration_text(options.timeout) +
                                         " and was killed" + (child.own_group ? " with its process group" : "") +
                                         ": check that it can reach its identity provider without prompting"));
  if (child.too_large)
    return Err(error(Kind::OutputTooLarge, who(exec) + " printed more than " +
                                               std::to_string(options.max_output_bytes) +
                                               " bytes on stdout and was killed: it must print one ExecCredential"));
  if (status && WIFEXITED(*status) && WEXITSTATUS(*status) != 0) {
    ExecPluginError e = error(Kind::Failed, who(exec) + " failed with exit code " +
                                                std::to_string(WEXITSTATUS(*status)) + " (its messages are on stderr)");
    e.exit_code = WEXITSTATUS(*status);
    return Err(e);
  }
  if (status && WIFSIGNALED(*status)) {
    ExecPluginError e = error(Kind::Killed, who(exec) + " was killed by signal " + signal_name(WTERMSIG(*status)));
    e.signal = WTERMSIG(*status);
    return Err(e);
  }
  auto parsed = parse_exec_credential(output, exec);
  if (!parsed) return Err(error(Kind::BadOutput, parsed.error().message));
  return std::move(parsed.value());
}

}  // namespace

asio::awaitable<ExecPluginResult> run_exec_plugin(ExecConfig exec, ClientConfig cluster, ExecPluginOptions options) {
  const bool terminal = options.stdin_is_terminal.value_or(::isatty(0) == 1);
  auto interactive = exec_interactive(exec, terminal);
  if (!interactive) co_return Err(error(Kind::Interactive, interactive.error().message));
  const bool is_interactive = interactive.value();

  auto ex = co_await asio::this_coro::executor;
  auto spawned = spawn_plugin(exec, child_environment(exec_environment(exec, cluster, is_interactive)), is_interactive,
                              options.use_pidfd);
  if (!spawned) co_return Err(spawned.error());
  auto child = std::make_shared<Child>(ex, spawned.value(), !is_interactive);

  asio::steady_timer deadline(ex, options.timeout);
  deadline.async_wait([child](boost::system::error_code ec) {
    if (ec || child->reaped) return;
    child->timed_out = true;
    child->kill_now();
    boost::system::error_code ignored;
    child->out.cancel(ignored);  // a grandchild outside the group may still hold stdout open
  });

  std::string output = co_await read_output(*child, options.max_output_bytes);
  std::optional<int> status = co_await wait_for_exit(*child);
  deadline.cancel();
  co_return judge(exec, options, *child, status, output);
}

}  // namespace stowage::kube
