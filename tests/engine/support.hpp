#pragma once
// Test support for engine tests: temp folders, files, and running the real `stowage` binary.
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "support/lazy_info.hpp"

namespace test {

namespace fs = std::filesystem;

inline fs::path temp_dir(const std::string& name) {
  auto dir = fs::temp_directory_path() / ("stowage-engine-" + name + "-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

inline void write_file(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << text;
}

inline std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline std::string local_storage(const std::string& name, const std::string& host_path,
                                 const std::string& policy = "Delete", const std::string& ns = "demo") {
  return "apiVersion: storage.kubestash.com/v1alpha1\nkind: BackupStorage\nmetadata:\n  name: " + name +
         "\n  namespace: " + ns +
         "\nspec:\n  storage:\n    provider: local\n    local:\n      mountPath: /safe/data\n      hostPath:\n"
         "        path: " + host_path + "\n  deletionPolicy: " + policy + "\n";
}

// A child process running the stowage binary; stdout and stderr go to files.
struct Child {
  pid_t pid = -1;
  fs::path out, err;

  static Child spawn(const std::vector<std::string>& args, const fs::path& out, const fs::path& err) {
    Child c;
    c.out = out;
    c.err = err;
    c.pid = ::fork();
    if (c.pid == 0) {
      // A test that crashes (no destructor runs) must not leave controllers running behind it.
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      int o = ::open(out.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      int e = ::open(err.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      ::dup2(o, 1);
      ::dup2(e, 2);
      std::vector<char*> argv;
      std::string bin = STOWAGE_BINARY;
      argv.push_back(bin.data());
      std::vector<std::string> copy = args;
      for (auto& a : copy) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(bin.c_str(), argv.data());
      ::_exit(127);
    }
    return c;
  }

  // Waits up to `limit`; returns the exit code, or -1 (and kills it) on timeout, or 128+signal.
  int wait(std::chrono::milliseconds limit = std::chrono::seconds(60)) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    int status = 0;
    while (std::chrono::steady_clock::now() < deadline) {
      pid_t r = ::waitpid(pid, &status, WNOHANG);
      if (r == pid) {
        pid = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    kill9();
    return -1;
  }

  void kill9() {
    if (pid <= 0) return;
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    pid = -1;
  }

  void signal(int sig) const { ::kill(pid, sig); }
  Child() = default;
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  Child(Child&& other) noexcept : pid(std::exchange(other.pid, -1)), out(other.out), err(other.err) {}
  Child& operator=(Child&& other) noexcept {
    if (this != &other) {
      kill9();
      pid = std::exchange(other.pid, -1);
      out = other.out;
      err = other.err;
    }
    return *this;
  }
  ~Child() { kill9(); }
};

struct RunResult {
  int code;
  std::string out, err;
};

// Runs stowage to completion and returns its exit code and output.
inline RunResult run(const std::vector<std::string>& args, const fs::path& scratch,
                     std::chrono::milliseconds limit = std::chrono::seconds(60)) {
  static int n = 0;
  auto out = scratch / ("out-" + std::to_string(++n));
  auto err = scratch / ("err-" + std::to_string(n));
  auto c = Child::spawn(args, out, err);
  int code = c.wait(limit);
  return {code, read_file(out), read_file(err)};
}

inline std::size_t count_of(const fs::path& file, const std::string& text) {
  std::string all = read_file(file);
  std::size_t n = 0;
  for (auto p = all.find(text); p != std::string::npos; p = all.find(text, p + 1)) ++n;
  return n;
}

// Polls `pred` until it holds or `limit` passes.
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit = std::chrono::seconds(30)) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return pred();
}

}  // namespace test
