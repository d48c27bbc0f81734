// OwnChildren and ChildReaper with real processes: a claimed child's status survives a reap_all()
// that takes it first, and, with this test process made a child subreaper (what PID 1 is to its
// namespace), orphaned grandchildren are reaped on the reactor and no zombie is left.
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <catch2/catch.hpp>

#include <dirent.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>

#include "common/child_reaper.hpp"

using namespace stowage;
using namespace std::chrono_literals;

namespace {

// Processes whose parent is this process, with their state letter (Z: a zombie).
std::map<pid_t, char> my_children() {
  std::map<pid_t, char> out;
  DIR* proc = ::opendir("/proc");
  if (!proc) return out;
  while (dirent* e = ::readdir(proc)) {
    char* end = nullptr;
    long pid = std::strtol(e->d_name, &end, 10);
    if (!end || *end != '\0' || pid <= 0) continue;
    std::ifstream in(std::string("/proc/") + e->d_name + "/stat");
    std::stringstream text;
    text << in.rdbuf();
    std::string stat = text.str();
    auto close = stat.rfind(')');
    if (close == std::string::npos || close + 4 > stat.size()) continue;
    std::istringstream rest(stat.substr(close + 2));
    char state = '?';
    long ppid = 0;
    rest >> state >> ppid;
    if (ppid == ::getpid()) out[static_cast<pid_t>(pid)] = state;
  }
  ::closedir(proc);
  return out;
}

// Waits until `pid` (our child) has ended, without reaping it.
void wait_until_ended(pid_t pid) {
  siginfo_t info{};
  REQUIRE(::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOWAIT) == 0);
}

// A claimed child that starts `grandchildren` orphans-to-be (each sleeps 100 ms, then exits) and
// exits with `code` at once.
pid_t spawn_parent_of_orphans(int grandchildren, int code) {
  auto start = [&]() -> pid_t {
    pid_t pid = ::fork();
    if (pid == 0) {
      for (int i = 0; i < grandchildren; ++i)
        if (::fork() == 0) {
          ::usleep(100 * 1000);
          ::_exit(0);
        }
      ::_exit(code);
    }
    return pid;
  };
  return process::own_children().spawn(start);
}

// The process is a child subreaper while this lives: orphans of its descendants come to it.
struct Subreaper {
  Subreaper() { REQUIRE(::prctl(PR_SET_CHILD_SUBREAPER, 1) == 0); }
  ~Subreaper() { ::prctl(PR_SET_CHILD_SUBREAPER, 0); }
};

// Runs `io` until `done()` or 10 s.
void run_until(boost::asio::io_context& io, const std::function<bool()>& done) {
  boost::asio::steady_timer tick(io);
  std::function<void()> check = [&] {
    if (done()) return io.stop();
    tick.expires_after(10ms);
    tick.async_wait([&](boost::system::error_code ec) {
      if (!ec) check();
    });
  };
  boost::asio::steady_timer limit(io, 10s);
  limit.async_wait([&](boost::system::error_code ec) {
    if (!ec) io.stop();
  });
  check();
  io.run();
  io.restart();
}

}  // namespace

TEST_CASE("a claimed child's exit status reaches its waiter when reap_all reaps it first") {
  auto& children = process::own_children();
  pid_t pid = children.spawn([]() -> pid_t {
    pid_t p = ::fork();
    if (p == 0) ::_exit(7);
    return p;
  });
  REQUIRE(pid > 0);
  wait_until_ended(pid);
  auto reaped = children.reap_all();
  CHECK(reaped.own == 1);
  CHECK(reaped.orphans == 0);    // it was ours
  CHECK(my_children().empty());  // reaped, not a zombie
  for (int i = 0; i < 2; ++i) {  // kept until released
    auto state = children.poll(pid);
    REQUIRE(state.kind == process::ChildState::Kind::Exited);
    CHECK(WIFEXITED(state.status));
    CHECK(WEXITSTATUS(state.status) == 7);
  }
  CHECK(children.wait(pid).kind == process::ChildState::Kind::Exited);
  children.signal(pid, SIGKILL, false);  // reaped: nothing is sent (the number may be someone else's)
  children.release(pid);
  CHECK(children.claimed() == 0);
}

TEST_CASE("a claimed child still running polls as Running, and its own waitpid takes the status") {
  auto& children = process::own_children();
  pid_t pid = children.spawn([]() -> pid_t {
    pid_t p = ::fork();
    if (p == 0) {
      ::pause();
      ::_exit(0);
    }
    return p;
  });
  REQUIRE(pid > 0);
  CHECK(children.poll(pid).kind == process::ChildState::Kind::Running);
  CHECK(children.reap_all().own == 0);
  children.signal(pid, SIGKILL, false);
  auto state = children.wait(pid);
  REQUIRE(state.kind == process::ChildState::Kind::Exited);
  CHECK(WIFSIGNALED(state.status));
  CHECK(WTERMSIG(state.status) == SIGKILL);
  children.release(pid);
  CHECK(my_children().empty());
}

TEST_CASE("as a subreaper, ChildReaper reaps 20 orphans on the reactor and leaves no zombie") {
  Subreaper subreaper;
  CHECK(process::receives_orphans());
  boost::asio::io_context io;
  process::ChildReaper reaper(io.get_executor());
  CHECK_THROWS_AS(process::ChildReaper(io.get_executor()), std::runtime_error);  // one per process

  const pid_t parent = spawn_parent_of_orphans(20, 3);
  REQUIRE(parent > 0);
  // The parent exits at once, the orphans 100 ms later: the reaper takes the parent long before
  // anyone asks for its status, which must then still be there.
  run_until(io, [&] { return reaper.orphans_reaped() >= 20; });
  CHECK(reaper.orphans_reaped() == 20);
  CHECK(reaper.own_reaped() == 1);
  auto state = process::own_children().poll(parent);
  REQUIRE(state.kind == process::ChildState::Kind::Exited);
  CHECK(WEXITSTATUS(state.status) == 3);
  process::own_children().release(parent);
  CHECK(my_children().empty());
}

TEST_CASE("without a reaper, a subreaper's orphans stay zombies (what PID 1 had before)") {
  // The contrast that shows the case above tests something: the same orphans, nobody reaping.
  Subreaper subreaper;
  const pid_t parent = spawn_parent_of_orphans(3, 0);
  REQUIRE(parent > 0);
  CHECK(process::own_children().wait(parent).kind == process::ChildState::Kind::Exited);
  process::own_children().release(parent);
  auto zombies = [] {
    int n = 0;
    for (auto [pid, state] : my_children()) n += state == 'Z';
    return n;
  };
  for (int i = 0; i < 200 && zombies() < 3; ++i) std::this_thread::sleep_for(10ms);
  CHECK(zombies() == 3);
  CHECK(process::own_children().reap_all().orphans == 3);
  CHECK(my_children().empty());
}
