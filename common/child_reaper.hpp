#pragma once
// Child processes: the process's own children (exec credential plugins) and, as PID 1, everyone's.
//
// A process that is PID 1 of its PID namespace (a container's entrypoint) or a child subreaper
// (PR_SET_CHILD_SUBREAPER) inherits every orphaned descendant: a plugin that leaves a background
// process behind hands it to us when it exits, and nobody but us can reap it. ChildReaper does:
// on SIGCHLD it calls waitpid(-1, WNOHANG) until nothing is left. That also takes the exit status
// of our own children, so they are claimed in OwnChildren, which keeps each claimed child's status
// until its waiter asks for it.
//
// Guarantees:
// - A claimed child's wait status is never lost, whoever reaps it first: OwnChildren::poll returns
//   it (until release()), whether its own waitpid or reap_all() took it. A child is claimed while no reap can
//   run (spawn() holds the lock across the fork), so not even an instant exit escapes the claim.
// - A reaped pid is never signalled again (it may already belong to another process).
// - Orphans' statuses are dropped (counted, and logged at debug level).
// - The SIGCHLD handler only writes a byte to a pipe (async-signal-safe) and is installed with
//   SA_RESTART | SA_NOCLDSTOP, so other threads' blocking calls are not interrupted by EINTR; the
//   reaping runs on the reactor that owns the ChildReaper.
//
// When to reap: only where orphans can arrive, receives_orphans() (PID 1 or a subreaper). Elsewhere
// the kernel gives them to init, and OwnChildren alone (each waiter reaping its own child) is what
// the process needs; a ChildReaper there would only take statuses from their waiters' waitpid.
//
// Assumes: nothing else in the process reaps with waitpid(-1) or sets SIGCHLD to SIG_IGN, and every
// child the process starts is started through OwnChildren::spawn (exec plugins are the only ones).
#include <boost/asio/any_io_executor.hpp>

#include <sys/types.h>

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>

namespace stowage::process {

// Whether orphaned descendants are re-parented to this process: PID 1, or a child subreaper.
bool receives_orphans();

// Where one claimed child is.
struct ChildState {
  enum class Kind {
    Running,  // not ended yet (or ended and not reaped yet)
    Exited,   // ended; `status` is its wait status (WIFEXITED, WEXITSTATUS, ...)
    Lost,     // nobody here has its status (SIGCHLD ignored, or an unclaimed waitpid took it)
  };
  Kind kind = Kind::Running;
  int status = 0;
};

// The process's own children, by pid. Process-wide (own_children()) and thread-safe.
class OwnChildren {
 public:
  // Runs `start` (which forks, e.g. posix_spawn, and returns the child's pid, or -1) while no reap
  // can run, and claims the pid it returns.
  pid_t spawn(const std::function<pid_t()>& start);

  // Without blocking: whether the claimed child `pid` has ended, and its wait status.
  ChildState poll(pid_t pid);
  // Blocks until the claimed child `pid` has ended (after a SIGKILL: the wait is short).
  ChildState wait(pid_t pid);
  // Sends `sig` to the claimed child (to its process group when `group`) unless it was reaped.
  void signal(pid_t pid, int sig, bool group);
  // Forgets the claim (its waiter is done).
  void release(pid_t pid);

  // waitpid(-1, WNOHANG) until no ended child is left: a claimed child's status is kept for poll(),
  // an orphan's dropped. Returns how many of each it reaped.
  struct Reaped {
    std::size_t own = 0;      // claimed children (their waiters get the status from the claim)
    std::size_t orphans = 0;  // everyone else
  };
  Reaped reap_all();

  std::size_t claimed() const;

 private:
  struct Claim {
    std::optional<int> status;  // set once reaped
  };
  // Records a reaped child under the lock: true when it was ours.
  bool record_locked(pid_t pid, int status);

  mutable std::mutex m_;
  std::map<pid_t, Claim> claims_;
};

OwnChildren& own_children();

// Reaps every child on `executor`'s reactor from construction to destruction: a SIGCHLD handler
// (see above) wakes it, then OwnChildren::reap_all() runs there. One at a time per process.
class ChildReaper {
 public:
  explicit ChildReaper(boost::asio::any_io_executor executor);  // throws std::runtime_error
  ~ChildReaper();
  ChildReaper(const ChildReaper&) = delete;
  ChildReaper& operator=(const ChildReaper&) = delete;

  std::size_t orphans_reaped() const;
  std::size_t own_reaped() const;  // claimed children it reaped before their waiters did

  struct State;  // opaque: the pipe's read end, the previous SIGCHLD action, the counts

 private:
  std::shared_ptr<State> state_;
};

}  // namespace stowage::process
