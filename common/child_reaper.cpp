// Claims of our own children and the PID-1 reaper (see child_reaper.hpp for what they guarantee).
#include "common/child_reaper.hpp"

#include <boost/asio/posix/stream_descriptor.hpp>
#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

namespace stowage::process {

namespace {

// The write end of the wake-up pipe while a reaper is active, else -1. Read by the signal handler:
// a lock-free atomic.
std::atomic<int> g_wake_fd{-1};
static_assert(std::atomic<int>::is_always_lock_free);

// The wake-up pipe, made once and never closed: a handler still running on another thread when a
// reaper goes can then neither write into a reused descriptor number nor into a pipe without a
// reader (SIGPIPE). Each reaper reads through a duplicate of the read end. Throws when it cannot.
struct WakePipe {
  int read_fd = -1, write_fd = -1;
};
const WakePipe& wake_pipe() {
  static const WakePipe pipe = [] {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0)
      throw std::runtime_error(std::string("cannot create the SIGCHLD pipe: ") + std::strerror(errno));
    return WakePipe{fds[0], fds[1]};
  }();
  return pipe;
}

extern "C" void on_sigchld(int) {
  const int saved = errno;
  const int fd = g_wake_fd.load();
  if (fd >= 0) {
    const char byte = 0;
    [[maybe_unused]] ssize_t n = ::write(fd, &byte, 1);  // full pipe: a wake-up is pending anyway
  }
  errno = saved;
}

ChildState exited(int status) { return ChildState{ChildState::Kind::Exited, status}; }

}  // namespace

bool receives_orphans() {
  if (::getpid() == 1) return true;
  int subreaper = 0;
  return ::prctl(PR_GET_CHILD_SUBREAPER, &subreaper) == 0 && subreaper != 0;
}

// --- OwnChildren ---

pid_t OwnChildren::spawn(const std::function<pid_t()>& start) {
  std::lock_guard lock(m_);
  const pid_t pid = start();
  if (pid > 0) claims_[pid] = Claim{};
  return pid;
}

bool OwnChildren::record_locked(pid_t pid, int status) {
  auto it = claims_.find(pid);
  // An ended claim keeps its first status: the same pid reaped again is a newer process (an
  // orphan that was given the number after ours was reaped), not ours.
  if (it == claims_.end() || it->second.status) return false;
  it->second.status = status;
  return true;
}

ChildState OwnChildren::poll(pid_t pid) {
  std::lock_guard lock(m_);
  auto it = claims_.find(pid);
  if (it != claims_.end() && it->second.status) return exited(*it->second.status);
  for (;;) {
    int status = 0;
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      if (it != claims_.end()) it->second.status = status;
      return exited(status);
    }
    if (r == 0) return ChildState{};
    if (errno == EINTR) continue;
    return ChildState{ChildState::Kind::Lost, 0};  // ECHILD, and reap_all did not take it (we hold the lock)
  }
}

ChildState OwnChildren::wait(pid_t pid) {
  {
    std::lock_guard lock(m_);
    auto it = claims_.find(pid);
    if (it != claims_.end() && it->second.status) return exited(*it->second.status);
  }
  // Not under the lock: reap_all (on another thread) must not wait for this. If it takes the child
  // first, waitpid says ECHILD and the status is in the claim by the time the lock is ours again.
  int status = 0;
  pid_t r;
  while ((r = ::waitpid(pid, &status, 0)) < 0 && errno == EINTR) {
  }
  std::lock_guard lock(m_);
  auto it = claims_.find(pid);
  if (r == pid) {
    if (it != claims_.end() && !it->second.status) it->second.status = status;
    return exited(status);
  }
  if (it != claims_.end() && it->second.status) return exited(*it->second.status);
  return ChildState{ChildState::Kind::Lost, 0};
}

void OwnChildren::signal(pid_t pid, int sig, bool group) {
  std::lock_guard lock(m_);
  auto it = claims_.find(pid);
  if (it == claims_.end() || it->second.status) return;  // reaped: the number may be someone else's now
  ::kill(group ? -pid : pid, sig);
}

void OwnChildren::release(pid_t pid) {
  std::lock_guard lock(m_);
  claims_.erase(pid);
}

OwnChildren::Reaped OwnChildren::reap_all() {
  Reaped reaped;
  std::lock_guard lock(m_);
  for (;;) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid < 0 && errno == EINTR) continue;
    if (pid <= 0) break;  // 0: children left, none ended; ECHILD: none at all
    if (record_locked(pid, status)) {
      ++reaped.own;
      continue;
    }
    ++reaped.orphans;
    if (WIFSIGNALED(status))
      spdlog::debug("reaped orphaned process {} (killed by signal {})", pid, WTERMSIG(status));
    else
      spdlog::debug("reaped orphaned process {} (exit code {})", pid, WEXITSTATUS(status));
  }
  return reaped;
}

std::size_t OwnChildren::claimed() const {
  std::lock_guard lock(m_);
  return claims_.size();
}

OwnChildren& own_children() {
  static OwnChildren children;
  return children;
}

// --- ChildReaper ---

struct ChildReaper::State {
  explicit State(boost::asio::any_io_executor ex) : wake(std::move(ex)) {}
  boost::asio::posix::stream_descriptor wake;  // a duplicate of the pipe's read end
  struct sigaction previous {};
  std::atomic<std::size_t> orphans{0}, own{0};

  void reap() {
    const auto reaped = own_children().reap_all();
    orphans += reaped.orphans;
    own += reaped.own;
  }
};

namespace {

void drain(int fd) {
  char buffer[256];
  while (::read(fd, buffer, sizeof buffer) > 0) {
  }
}

void reap_when_woken(std::shared_ptr<ChildReaper::State> state) {
  auto* s = state.get();
  s->wake.async_wait(boost::asio::posix::descriptor_base::wait_read,
                     [state = std::move(state)](boost::system::error_code ec) mutable {
                       if (ec) return;  // cancelled: the reaper is gone
                       drain(state->wake.native_handle());
                       state->reap();
                       reap_when_woken(std::move(state));
                     });
}

}  // namespace

ChildReaper::ChildReaper(boost::asio::any_io_executor executor)
    : state_(std::make_shared<State>(std::move(executor))) {
  const WakePipe& pipe = wake_pipe();
  int expected = -1;
  if (!g_wake_fd.compare_exchange_strong(expected, pipe.write_fd))
    throw std::runtime_error("a ChildReaper is already running in this process");
  const int read_fd = ::fcntl(pipe.read_fd, F_DUPFD_CLOEXEC, 0);
  if (read_fd < 0) {
    const int err = errno;
    g_wake_fd = -1;
    throw std::runtime_error(std::string("cannot duplicate the SIGCHLD pipe: ") + std::strerror(err));
  }
  state_->wake.assign(read_fd);
  drain(read_fd);  // wake-ups meant for an earlier reaper
  struct sigaction action {};
  action.sa_handler = on_sigchld;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART | SA_NOCLDSTOP;
  if (::sigaction(SIGCHLD, &action, &state_->previous) != 0) {
    const int err = errno;
    g_wake_fd = -1;
    throw std::runtime_error(std::string("cannot install the SIGCHLD handler: ") + std::strerror(err));
  }
  state_->reap();  // what ended before the handler was there
  reap_when_woken(state_);
}

ChildReaper::~ChildReaper() {
  ::sigaction(SIGCHLD, &state_->previous, nullptr);
  g_wake_fd = -1;
  boost::system::error_code ignored;
  state_->wake.cancel(ignored);
}

std::size_t ChildReaper::orphans_reaped() const { return state_->orphans.load(); }

std::size_t ChildReaper::own_reaped() const { return state_->own.load(); }

}  // namespace stowage::process
