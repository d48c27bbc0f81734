// Budgets for untrusted files, on the real binary: every bomb of issue 10 (a YAML alias bomb in a
// manifest and in a kubeconfig, files far over the size budget, too many documents, too many
// objects, symbolic links looping back into the manifest folder) is refused quickly, with a message
// naming the setting that raises the budget, and with bounded peak memory: the child's peak RSS is
// read from wait4()'s rusage when it is reaped.
//
// Every child runs with its address space capped (RLIMIT_AS 2 GiB, MALLOC_ARENA_MAX=2, far above
// what stowage needs): a binary without the budgets fails these tests (bad_alloc, or killed at the
// deadline) instead of taking the machine's memory.
//
// Under AddressSanitizer (make test-asan) neither the cap nor the RSS bounds apply: ASan reserves
// terabytes of address space for its shadow at start, and keeps freed memory in a quarantine
// (256 MiB by default) so RSS no longer says what stowage holds. The behaviour is still checked
// there; the native build (make test) checks the memory.
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>

#include "support.hpp"

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr rlim_t kAddressSpaceCap = rlim_t{2} << 30;
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kAddressSanitizer = true;
#else
constexpr bool kAddressSanitizer = false;
#endif

// Whether a peak RSS is within a bound (always, under ASan: see above).
bool rss_within(long peak_rss_mib, long bound_mib) { return kAddressSanitizer || peak_rss_mib < bound_mib; }

struct Measured {
  int code = -1;               // exit code, 128 + signal, or -1 when it had to be killed at the deadline
  long peak_rss_mib = 0;       // ru_maxrss of the child
  std::chrono::milliseconds took{0};
  std::string out, err;
};

// One stowage child with its address space capped, measured when it is reaped.
class MeasuredChild {
 public:
  MeasuredChild(const std::vector<std::string>& args, const fs::path& dir, const std::string& name)
      : out_(dir / (name + ".out")), err_(dir / (name + ".err")), started_(std::chrono::steady_clock::now()) {
    pid_ = ::fork();
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (!kAddressSanitizer) {
        rlimit cap{kAddressSpaceCap, kAddressSpaceCap};
        ::setrlimit(RLIMIT_AS, &cap);
      }
      ::setenv("MALLOC_ARENA_MAX", "2", 1);
      int o = ::open(out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      int e = ::open(err_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(o, 1);
      ::dup2(e, 2);
      std::string bin = STOWAGE_BINARY;
      std::vector<std::string> copy = args;
      std::vector<char*> argv{bin.data()};
      for (auto& a : copy) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(bin.c_str(), argv.data());
      ::_exit(127);
    }
  }
  MeasuredChild(const MeasuredChild&) = delete;
  MeasuredChild& operator=(const MeasuredChild&) = delete;
  ~MeasuredChild() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }

  void signal(int sig) const { ::kill(pid_, sig); }
  std::string err() const { return test::read_file(err_); }

  // Waits for it to exit (killing it once `limit` has passed) and reaps it with its resource usage.
  Measured finish(std::chrono::milliseconds limit = 60s) {
    Measured m;
    auto deadline = started_ + limit;
    int status = 0;
    rusage usage{};
    for (;;) {
      pid_t reaped = ::wait4(pid_, &status, WNOHANG, &usage);
      if (reaped == pid_) break;
      if (std::chrono::steady_clock::now() > deadline) {
        ::kill(pid_, SIGKILL);
        ::wait4(pid_, &status, 0, &usage);
        status = -1;
        break;
      }
      std::this_thread::sleep_for(10ms);
    }
    pid_ = -1;
    m.took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started_);
    m.code = status == -1 ? -1 : WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    m.peak_rss_mib = usage.ru_maxrss / 1024;
    m.out = test::read_file(out_);
    m.err = test::read_file(err_);
    return m;
  }

 private:
  pid_t pid_ = -1;
  fs::path out_, err_;
  std::chrono::steady_clock::time_point started_;
};

Measured run_measured(const std::vector<std::string>& args, const fs::path& dir, const std::string& name,
                      std::chrono::milliseconds limit = 60s) {
  MeasuredChild child(args, dir, name);
  return child.finish(limit);
}

std::string describe(const Measured& m) {
  return "exit " + std::to_string(m.code) + " after " + std::to_string(m.took.count()) + " ms, peak RSS " +
         std::to_string(m.peak_rss_mib) + " MiB\nstdout:\n" + m.out + "\nstderr:\n" + m.err.substr(0, 20000);
}

// ---------------------------------------------------------------------------------------------
// The bombs.

const std::string kSecretHeader = "apiVersion: v1\nkind: Secret\nmetadata: {name: NAME, namespace: demo}\n";

std::string secret_header(const std::string& name) {
  std::string text = kSecretHeader;
  return text.replace(text.find("NAME"), 4, name);
}

// Billion laughs: nine levels of nine aliases, 500 bytes that expand to 10^9 scalars.
std::string laughs() {
  std::string text = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n";
  char prev = 'a';
  for (char c = 'b'; c <= 'i'; ++c, ++prev) {
    text += std::string(1, c) + ": &" + c + " [";
    for (int i = 0; i < 9; ++i) text += std::string(i ? ", *" : "*") + prev;
    text += "]\n";
  }
  return text;
}

// Few nodes, many bytes: a 64 KiB string behind five levels of ten aliases. 66 KB that expand to
// 6.4 GB in 111,111 nodes, which a node count (4 million allowed) let through.
std::string leaf_bomb() {
  std::string text = "l0: &l0 \"" + std::string(64 * 1024, 'x') + "\"\n";
  for (int level = 1; level <= 5; ++level) {
    text += "l" + std::to_string(level) + ": &l" + std::to_string(level) + " [";
    for (int i = 0; i < 10; ++i) text += std::string(i ? ", " : "") + "*l" + std::to_string(level - 1);
    text += "]\n";
  }
  return text;
}

// A file that says it holds `bytes` without taking the disk space.
void sparse_file(const fs::path& path, std::uintmax_t bytes) {
  test::write_file(path, "");
  fs::resize_file(path, bytes);
}

std::string many_documents(int n) {
  std::string text;
  text.reserve(static_cast<std::size_t>(n) * 12);
  for (int i = 0; i < n; ++i) text += "kind: X\n---\n";
  return text;
}

// One document: a List of `n` small Secrets.
std::string list_of_secrets(int n) {
  std::string text = "apiVersion: v1\nkind: List\nitems:\n";
  for (int i = 0; i < n; ++i)
    text += "- {apiVersion: v1, kind: Secret, metadata: {name: s" + std::to_string(i) + ", namespace: crowd}}\n";
  return text;
}

struct Folder {
  fs::path dir, manifests, state, root;
  explicit Folder(const std::string& name)
      : dir(test::temp_dir(name)), manifests(dir / "manifests"), state(dir / "state"), root(dir / "root") {
    fs::create_directories(manifests);
    fs::create_directories(root);
  }
  std::vector<std::string> with_dirs(std::vector<std::string> args) const {
    for (const auto& a : {"--state-dir", state.c_str(), "--local-root", root.c_str()}) args.emplace_back(a);
    return args;
  }
};

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

std::size_t count_of(const std::string& text, const std::string& part) {
  std::size_t n = 0;
  for (auto at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) ++n;
  return n;
}

}  // namespace

TEST_CASE("init refuses YAML alias bombs at once, with bounded memory, naming yaml.max-alias-expansion") {
  Folder f("budget-alias");
  test::write_file(f.manifests / "laughs.yaml", secret_header("laughs") + laughs());
  test::write_file(f.manifests / "leaf-bomb.yaml", secret_header("leaf") + leaf_bomb());
  auto m = run_measured(f.with_dirs({"init", "-f", (f.manifests / "laughs.yaml").string(), "-f",
                                     (f.manifests / "leaf-bomb.yaml").string()}),
                        f.dir, "init");
  INFO(describe(m));
  CHECK(m.code == 1);
  CHECK(contains(m.err, "laughs.yaml:"));
  CHECK(contains(m.err, "leaf-bomb.yaml:"));
  CHECK(count_of(m.err, "YAML aliases here would expand past yaml.max-alias-expansion (4Mi for all files together") ==
        2);
  CHECK(contains(m.err, "raise --yaml-max-alias-expansion"));
  CHECK(contains(m.err, "no BackupStorage found"));
  CHECK(m.took < 10s);
  CHECK(rss_within(m.peak_rss_mib, 100));
}

TEST_CASE("run --kubeconfig refuses a kubeconfig alias bomb, or one over the size budget, with exit 2") {
  Folder f("budget-kubeconfig");
  const std::string rest =
      "clusters:\n- name: c\n  cluster: {server: 'https://127.0.0.1:1'}\nusers:\n- name: u\n  user: {token: t}\n"
      "contexts:\n- name: dev\n  context: {cluster: c, user: u}\ncurrent-context: dev\n";
  auto bomb = f.dir / "bomb-kubeconfig";
  test::write_file(bomb, "apiVersion: v1\nkind: Config\n" + leaf_bomb() + rest);
  auto m = run_measured(f.with_dirs({"run", "--kubeconfig", bomb.string()}), f.dir, "bomb", 30s);
  INFO(describe(m));
  CHECK(m.code == 2);
  CHECK(contains(m.err, bomb.string() + ":"));
  CHECK(contains(m.err, "its YAML aliases expand past 4Mi (yaml.max-alias-expansion; an alias bomb?): if the file "
                        "is trusted, raise --yaml-max-alias-expansion"));
  CHECK(m.took < 10s);
  CHECK(rss_within(m.peak_rss_mib, 100));

  auto huge = f.dir / "huge-kubeconfig";
  sparse_file(huge, std::uintmax_t{8} << 30);
  auto big = run_measured(f.with_dirs({"run", "--kubeconfig", huge.string()}), f.dir, "huge", 30s);
  INFO(describe(big));
  CHECK(big.code == 2);
  CHECK(contains(big.err, huge.string() + ": 8589934592 bytes, over kube.max-kubeconfig-size (4Mi): not read; if it "
                                          "really is the kubeconfig, raise --max-kubeconfig-size"));
  CHECK(big.took < 10s);
  CHECK(rss_within(big.peak_rss_mib, 100));
}

TEST_CASE("init refuses a manifest over the size budget from its size, without reading it") {
  Folder f("budget-size");
  auto huge = f.manifests / "huge.yaml";
  sparse_file(huge, std::uintmax_t{8} << 30);
  test::write_file(f.manifests / "good.yaml", test::local_storage("good", "/data/good"));
  auto m = run_measured(f.with_dirs({"init", "-f", huge.string(), "-f", (f.manifests / "good.yaml").string()}),
                        f.dir, "init");
  INFO(describe(m));
  CHECK(m.code == 1);  // bad input, though the good storage is Ready
  CHECK(contains(m.out, "demo/good\tReady"));
  CHECK(contains(m.err, huge.string() + ": 8589934592 bytes, over manifests.max-file-size (4Mi): the file is not "
                                        "read; split it, or raise --manifests-max-file-size"));
  CHECK(m.took < 10s);
  CHECK(rss_within(m.peak_rss_mib, 100));
}

TEST_CASE("init reads at most manifests.max-documents-per-file documents of a file") {
  Folder f("budget-documents");
  std::string text;
  for (int i = 1; i <= 5; ++i)
    text += test::local_storage("s" + std::to_string(i), "/data/s" + std::to_string(i)) + "---\n";
  test::write_file(f.manifests / "five.yaml", text);
  auto m = run_measured(
      f.with_dirs({"init", "-f", (f.manifests / "five.yaml").string(), "--manifests-max-documents-per-file", "3"}),
      f.dir, "init");
  INFO(describe(m));
  CHECK(m.code == 1);
  for (const char* loaded : {"demo/s1\tReady", "demo/s2\tReady", "demo/s3\tReady"}) CHECK(contains(m.out, loaded));
  CHECK_FALSE(contains(m.out, "demo/s4"));
  CHECK(contains(m.err, "five.yaml:43:1: more than 3 documents in one file (manifests.max-documents-per-file): the "
                        "rest of the file is not read; split the file, or raise --manifests-max-documents-per-file"));

  // With the default budget, a file of 300,000 documents stops at the 1,001st.
  test::write_file(f.manifests / "many.yaml", many_documents(300'000));
  auto many = run_measured(f.with_dirs({"init", "-f", (f.manifests / "many.yaml").string()}), f.dir, "many");
  INFO(describe(many));
  CHECK(many.code == 1);
  CHECK(contains(many.err, "many.yaml:2001:1: more than 1000 documents in one file"));
  CHECK(contains(many.err, "... and 980 more problems in the same file"));
  CHECK(many.took < 10s);
  CHECK(rss_within(many.peak_rss_mib, 100));
}

TEST_CASE("init loads at most manifests.max-objects objects from all its files together") {
  Folder f("budget-objects");
  test::write_file(f.manifests / "a.yaml",
                   test::local_storage("a1", "/data/a1") + "---\n" + test::local_storage("a2", "/data/a2"));
  test::write_file(f.manifests / "b.yaml",
                   test::local_storage("b1", "/data/b1") + "---\n" + test::local_storage("b2", "/data/b2"));
  auto m = run_measured(f.with_dirs({"init", "-f", (f.manifests / "a.yaml").string(), "-f",
                                     (f.manifests / "b.yaml").string(), "--manifests-max-objects", "3"}),
                        f.dir, "init");
  INFO(describe(m));
  CHECK(m.code == 1);
  for (const char* loaded : {"demo/a1\tReady", "demo/a2\tReady", "demo/b1\tReady"}) CHECK(contains(m.out, loaded));
  CHECK_FALSE(contains(m.out, "demo/b2"));
  CHECK(contains(m.err, (f.manifests / "b.yaml").string() +
                            ":15: past manifests.max-objects (3 BackupStorages and Secrets for all files together, 1 "
                            "of them left for this file after the files before it): this object and those after it "
                            "in the file are not loaded; raise --manifests-max-objects"));
}

// `a -> .` and `b -> .` made the old listing walk 2^n paths: 730 MB after 20 s, never loaded.
TEST_CASE("run: links looping back into the manifest folder are skipped and reported, and the folder loads at once") {
  Folder f("budget-loops");
  test::write_file(f.manifests / "good.yaml", test::local_storage("good", "/data/good"));
  fs::create_directory_symlink(".", f.manifests / "a");
  fs::create_directory_symlink(".", f.manifests / "b");
  MeasuredChild child(f.with_dirs({"run", "--manifests", f.manifests.string()}), f.dir, "run");
  bool ready = test::eventually([&] { return fs::exists(f.root / "data/good/metadata.yaml"); }, 15s);
  child.signal(SIGTERM);
  auto m = child.finish(30s);
  INFO(describe(m));
  CHECK(ready);
  CHECK(m.code == 0);
  for (const char* link : {"/a: leads to the folder ", "/b: leads to the folder "})
    CHECK(count_of(m.err, f.manifests.string() + link + f.manifests.string() +
                              ", which is already read (a symbolic link loop?): skipped") == 1);
  CHECK(rss_within(m.peak_rss_mib, 100));
}

TEST_CASE("run: a folder of every bomb at once stays under 256 MiB of peak RSS, and its valid storage goes Ready") {
  Folder f("budget-folder");
  const auto& dir = f.manifests;
  test::write_file(dir / "good.yaml", test::local_storage("good", "/data/good"));
  test::write_file(dir / "laughs.yaml", secret_header("laughs") + laughs());
  test::write_file(dir / "leaf-bomb.yaml", secret_header("leaf") + leaf_bomb());
  sparse_file(dir / "huge.yaml", std::uintmax_t{8} << 30);
  test::write_file(dir / "many-documents.yaml", many_documents(300'000));  // 3.6 MB, under the size budget
  test::write_file(dir / "objects.yaml", list_of_secrets(20'000));          // 1.6 MB, one document
  test::write_file(dir / "deep.yaml", std::string(100'000, '[') + std::string(100'000, ']') + "\n");
  test::write_file(dir / "sub/laughs-again.yaml", secret_header("again") + laughs());
  fs::create_directory_symlink(".", dir / "a");
  fs::create_directory_symlink(".", dir / "b");
  fs::create_directory_symlink("..", dir / "sub/up");

  MeasuredChild child(f.with_dirs({"run", "--manifests", dir.string()}), f.dir, "run");
  bool ready = test::eventually([&] { return fs::exists(f.root / "data/good/metadata.yaml"); }, 30s);
  bool reported = test::eventually([&] { return contains(child.err(), "nothing is deleted from"); }, 10s);
  child.signal(SIGTERM);
  auto m = child.finish(30s);
  INFO(describe(m));
  CHECK(ready);
  CHECK(reported);
  CHECK(m.code == 0);
  CHECK(contains(m.err, "demo/good: Ready"));
  CHECK(count_of(m.err, "would expand past yaml.max-alias-expansion") == 3);  // laughs, leaf-bomb, sub/laughs-again
  CHECK(contains(m.err, "huge.yaml: 8589934592 bytes, over manifests.max-file-size (4Mi)"));
  CHECK(contains(m.err, "many-documents.yaml:2001:1: more than 1000 documents in one file"));
  CHECK(contains(m.err, "objects.yaml:1: past manifests.max-objects (10000 BackupStorages and Secrets for all files "
                        "together, 9999 of them left for this file after the files before it)"));
  CHECK(contains(m.err, "deep.yaml:1:257: not valid YAML: document nested too deeply"));
  CHECK(count_of(m.err, "(a symbolic link loop?): skipped") == 3);
  CHECK(rss_within(m.peak_rss_mib, 256));
}
