// The manifest source on a real folder, with inotify and with the polling fallback: it follows the
// folder, keeps the objects of a file that fails, and reports a removal only after the delete grace.
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <catch2/catch.hpp>

#include <algorithm>
#include <fstream>
#include <stdexcept>

#include "engine/manifest_source.hpp"
#include "support.hpp"
#include "support/log_capture.hpp"

using namespace stowage;
using namespace stowage::engine;
using namespace std::chrono_literals;

namespace {

struct Recorder final : SourceSink {
  std::map<std::string, std::string> storages;  // key -> hostPath
  std::map<std::string, std::map<std::string, std::string>> secrets;
  std::vector<std::string> events;  // "synced", "-demo/a" (storage removed), "-secret demo/s", in order
  int synced_calls = 0, upserts = 0;
  void storage_upserted(kube::BackupStorage s) override {
    ++upserts;
    storages[s.metadata.namespace_ + "/" + s.metadata.name] = s.spec.storage.local ? s.spec.storage.local->host_path : "";
  }
  void storage_removed(const ObjectKey& k) override {
    storages.erase(k.str());
    events.push_back("-" + k.str());
  }
  void secret_upserted(kube::Secret s) override { secrets[s.metadata.namespace_ + "/" + s.metadata.name] = s.data; }
  void secret_removed(const ObjectKey& k) override {
    secrets.erase(k.str());
    events.push_back("-secret " + k.str());
  }
  void synced() override {
    ++synced_calls;
    events.push_back("synced");
  }
  std::size_t removals() const {
    return std::size_t(std::count_if(events.begin(), events.end(), [](const auto& e) { return e[0] == '-'; }));
  }
};

// Runs the reactor until `pred` holds (or 10 s pass).
template <class Pred>
bool run_until(boost::asio::io_context& io, Pred pred) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!pred() && std::chrono::steady_clock::now() < deadline) {
    io.restart();
    io.run_for(std::chrono::milliseconds(20));
  }
  return pred();
}

void run_for(boost::asio::io_context& io, std::chrono::milliseconds d) {
  io.restart();
  io.run_for(d);
}

const std::string kSecret = "apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: demo}\nstringData: {K: v}\n";

// A source on `dir` with a 10 ms debounce, polled every 50 ms or watched with inotify.
struct Running {
  boost::asio::io_context io;
  boost::asio::thread_pool pool{1};
  Recorder sink;
  ManifestSource source;
  bool synced = false;

  Running(const test::fs::path& dir, bool poll, std::chrono::milliseconds grace, std::vector<ObjectKey> known = {},
          ManifestBudgets budgets = {})
      : source(io.get_executor(), pool, {dir, 10ms, 50ms, poll, grace, std::move(known), budgets}, sink) {
    source.start([this] { synced = true; });
    REQUIRE(run_until(io, [this] { return synced; }));
  }
  ~Running() {
    source.stop();
    pool.join();
  }
  // Lets the source see a change just made: at least one scan after it, then some quiet.
  void settle() {
    auto before = source.scans();
    REQUIRE(run_until(io, [&] { return source.scans() > before; }));
    run_for(io, 300ms);
  }
};

}  // namespace

TEST_CASE("the manifest source follows a folder as it changes") {
  bool poll = GENERATE(false, true);
  INFO((poll ? "polling" : "inotify"));
  auto dir = test::temp_dir(poll ? "source-poll" : "source-inotify");
  test::write_file(dir / "a.yaml", test::local_storage("a", "/data/a"));
  Running r(dir, poll, 0ms);
  CHECK(r.sink.synced_calls == 1);
  CHECK(r.sink.storages.at("demo/a") == "/data/a");

  // A new file in a new sub-folder, with a Secret.
  test::write_file(dir / "sub/b.yaml", test::local_storage("b", "/data/b") + "---\n" + kSecret);
  REQUIRE(run_until(r.io, [&] { return r.sink.storages.count("demo/b") && r.sink.secrets.count("demo/s"); }));

  // An edit is seen; an unchanged rescan delivers nothing.
  int upserts = r.sink.upserts;
  test::write_file(dir / "a.yaml", test::local_storage("a", "/data/a2"));
  REQUIRE(run_until(r.io, [&] { return r.sink.storages.at("demo/a") == "/data/a2"; }));
  CHECK(r.sink.upserts == upserts + 1);

  // A broken file keeps its objects; removing a file removes them (no grace here).
  test::write_file(dir / "a.yaml", "kind: [\n");
  r.settle();
  CHECK(r.sink.storages.count("demo/a"));
  test::fs::remove_all(dir / "sub");
  REQUIRE(run_until(r.io, [&] { return !r.sink.storages.count("demo/b") && !r.sink.secrets.count("demo/s"); }));
  CHECK(r.sink.storages.count("demo/a"));
}

TEST_CASE("the manifest source keeps the objects of a file that fails in any way") {
  bool poll = GENERATE(false, true);
  struct Case {
    const char* what;
    std::string text;
  };
  std::string typed = test::local_storage("a", "/data/a");
  typed.insert(typed.find("metadata:\n") + 10, "  labels: [oops]\n");
  auto c = GENERATE_COPY(values<Case>({
      {"truncated (empty)", ""},
      {"whitespace only", "\n   \n"},
      {"cut mid-object", "apiVersion: storage.kubestash.com/v1alpha1\nkind: BackupStora"},
      {"a field of the wrong type", typed},
      {"a document that is not a mapping", "- a\n"},
      {"not YAML", "kind: [\n"},
  }));
  INFO((poll ? "polling: " : "inotify: ") << c.what);
  auto dir = test::temp_dir("source-failing");
  test::write_file(dir / "a.yaml", test::local_storage("a", "/data/a") + "---\n" + kSecret);
  // No grace at all: only the failing-file rule stands between the edit and a removal.
  Running r(dir, poll, 0ms);
  REQUIRE(r.sink.storages.count("demo/a"));
  REQUIRE(r.sink.secrets.count("demo/s"));

  test::write_file(dir / "a.yaml", c.text);
  r.settle();
  CHECK(r.sink.storages.count("demo/a"));
  CHECK(r.sink.secrets.count("demo/s"));
  CHECK(r.sink.removals() == 0);

  // Fixed, without the Secret: now it is really gone.
  test::write_file(dir / "a.yaml", test::local_storage("a", "/data/a"));
  REQUIRE(run_until(r.io, [&] { return !r.sink.secrets.count("demo/s"); }));
  CHECK(r.sink.storages.count("demo/a"));
}

TEST_CASE("in a failing file, an object that parses is updated and a broken one is kept") {
  bool poll = GENERATE(false, true);
  INFO((poll ? "polling" : "inotify"));
  auto dir = test::temp_dir("source-partly");
  test::write_file(dir / "a.yaml", test::local_storage("one", "/data/one") + "---\n" + test::local_storage("two", "/data/two"));
  Running r(dir, poll, 0ms);
  REQUIRE(r.sink.storages.size() == 2);

  std::string broken_two = test::local_storage("two", "/data/two2");
  broken_two.insert(broken_two.find("metadata:\n") + 10, "  labels: [oops]\n");
  test::write_file(dir / "a.yaml", test::local_storage("one", "/data/one2") + "---\n" + broken_two);
  REQUIRE(run_until(r.io, [&] { return r.sink.storages.at("demo/one") == "/data/one2"; }));
  run_for(r.io, 300ms);
  CHECK(r.sink.storages.at("demo/two") == "/data/two");  // kept as it was

  // Still failing (another broken document), and two is not even there: kept, as last seen.
  test::write_file(dir / "a.yaml", test::local_storage("one", "/data/one2") + "---\n- a\n");
  r.settle();
  CHECK(r.sink.storages.at("demo/two") == "/data/two");
  CHECK(r.sink.storages.at("demo/one") == "/data/one2");
  CHECK(r.sink.removals() == 0);

  // Clean again without two: two goes.
  test::write_file(dir / "a.yaml", test::local_storage("one", "/data/one2"));
  REQUIRE(run_until(r.io, [&] { return !r.sink.storages.count("demo/two"); }));
}

// The source keeps a storage between scans as its text, not as the parsed object: one that a failing
// file kept, and that has to be delivered (the copy that won a duplicate went meanwhile), is parsed
// again from that text, as last seen; a duplicate is reported with both files and lines.
TEST_CASE("a storage kept by a failing file is delivered as last seen when the copy that won goes") {
  test_support::LogCapture logs;
  auto dir = test::temp_dir("source-kept-duplicate");
  test::write_file(dir / "a.yaml", test::local_storage("dup", "/data/a-x"));
  test::write_file(dir / "b.yaml", "# x again\n" + test::local_storage("dup", "/data/b-x") + "---\n" +
                                       test::local_storage("other", "/data/b-other"));
  Running r(dir, true, 0ms);
  CHECK(r.sink.storages.at("demo/dup") == "/data/a-x");
  CHECK(logs.count("error", (dir / "b.yaml").string() + ":2: BackupStorage demo/dup is already defined at " +
                                (dir / "a.yaml").string() + ":1; this copy is ignored") == 1);
  test::write_file(dir / "b.yaml", "kind: [\n");  // fails: both its storages as last read are kept
  r.settle();
  test::write_file(dir / "a.yaml", test::local_storage("z", "/data/a-z"));
  REQUIRE(run_until(r.io, [&] { return r.sink.storages.count("demo/z") > 0; }));
  r.settle();
  CHECK(r.sink.storages.at("demo/dup") == "/data/b-x");
  CHECK(r.sink.storages.at("demo/other") == "/data/b-other");
  CHECK(r.sink.removals() == 0);
}

TEST_CASE("a removed object is delivered only after the delete grace, by the source's own timer") {
  bool poll = GENERATE(false, true);
  INFO((poll ? "polling" : "inotify"));
  auto dir = test::temp_dir("source-grace");
  test::write_file(dir / "a.yaml", test::local_storage("a", "/data/a"));
  test::write_file(dir / "b.yaml", test::local_storage("b", "/data/b") + "---\n" + kSecret);
  const auto grace = 2000ms;
  Running r(dir, poll, grace);

  auto removed_at = std::chrono::steady_clock::now();
  test::fs::remove(dir / "b.yaml");
  r.settle();  // the removal has been seen...
  run_for(r.io, std::chrono::duration_cast<std::chrono::milliseconds>(removed_at + grace / 2 -
                                                                      std::chrono::steady_clock::now()));
  CHECK(r.sink.storages.count("demo/b"));  // ...and half the grace later nothing is removed
  CHECK(r.sink.secrets.count("demo/s"));
  // No file changes from here on: with inotify only the source's own timer can bring the removal.
  REQUIRE(run_until(r.io, [&] { return !r.sink.storages.count("demo/b") && !r.sink.secrets.count("demo/s"); }));
  CHECK(std::chrono::steady_clock::now() - removed_at >= grace);
  CHECK(r.sink.storages.count("demo/a"));
  run_for(r.io, 200ms);
  CHECK(r.sink.removals() == 2);  // once each
}

TEST_CASE("an object that comes back within the grace is not removed") {
  bool poll = GENERATE(false, true);
  INFO((poll ? "polling" : "inotify"));
  auto dir = test::temp_dir("source-back");
  const std::string b = test::local_storage("b", "/data/b");
  test::write_file(dir / "b.yaml", b + "---\n" + kSecret);
  const auto grace = 1000ms;
  Running r(dir, poll, grace);
  int upserts = r.sink.upserts;

  // Gone for a while, then back unchanged: nothing is delivered at all.
  test::fs::remove(dir / "b.yaml");
  r.settle();
  test::write_file(dir / "b.yaml", b + "---\n" + kSecret);
  r.settle();
  run_for(r.io, grace + 500ms);
  CHECK(r.sink.removals() == 0);
  CHECK(r.sink.upserts == upserts);
  CHECK(r.sink.storages.count("demo/b"));

  // Rewritten in place with a pause at a document boundary: the half-written file parses but
  // misses the Secret for a while; it is not removed.
  {
    std::ofstream out(dir / "b.yaml", std::ios::binary | std::ios::trunc);
    out << b << "---\n" << std::flush;
    r.settle();
    out << kSecret;
  }
  r.settle();
  run_for(r.io, grace + 500ms);
  CHECK(r.sink.removals() == 0);
  CHECK(r.sink.secrets.count("demo/s"));

  // Back changed: an upsert, still no removal; the grace starts over at the next absence.
  test::fs::remove(dir / "b.yaml");
  r.settle();
  test::write_file(dir / "b.yaml", test::local_storage("b", "/data/b2") + "---\n" + kSecret);
  REQUIRE(run_until(r.io, [&] { return r.sink.storages.at("demo/b") == "/data/b2"; }));
  run_for(r.io, grace);
  CHECK(r.sink.removals() == 0);
}

TEST_CASE("storages recorded from the folder but absent at start are removed only after the grace") {
  bool poll = GENERATE(false, true);
  INFO((poll ? "polling" : "inotify"));
  auto dir = test::temp_dir("source-known");
  test::write_file(dir / "a.yaml", test::local_storage("a", "/data/a"));
  const auto grace = 1000ms;
  auto started = std::chrono::steady_clock::now();
  Running r(dir, poll, grace, {{"demo", "a"}, {"demo", "gone"}, {"demo", "late"}});
  CHECK(r.sink.events == std::vector<std::string>{"synced"});
  run_for(r.io, grace / 2);
  CHECK(r.sink.removals() == 0);
  test::write_file(dir / "late.yaml", test::local_storage("late", "/data/late"));  // comes back in time
  REQUIRE(run_until(r.io, [&] { return r.sink.events.size() > 1; }));
  CHECK(std::chrono::steady_clock::now() - started >= grace);
  CHECK(r.sink.events == std::vector<std::string>{"synced", "-demo/gone"});
  CHECK(r.sink.storages.count("demo/late"));
}

TEST_CASE("with no grace, a removal is delivered at the first scan that misses it, after synced") {
  auto dir = test::temp_dir("source-no-grace");
  test::write_file(dir / "a.yaml", test::local_storage("a", "/data/a"));
  Running r(dir, false, 0ms, {{"demo", "gone"}});
  CHECK(r.sink.events == std::vector<std::string>{"synced", "-demo/gone"});
  test::fs::remove(dir / "a.yaml");
  REQUIRE(run_until(r.io, [&] { return r.sink.removals() == 2; }));
  CHECK(r.sink.events.back() == "-demo/a");
}

TEST_CASE("recorded storages wait while a file not read cleanly since the start fails: they may be in it") {
  bool poll = GENERATE(false, true);
  INFO((poll ? "polling" : "inotify"));
  auto dir = test::temp_dir("source-known-failing");
  test::write_file(dir / "a.yaml", test::local_storage("a", "/data/a"));
  test::write_file(dir / "b.yaml", "apiVersion: storage.kubestash.com/v1alpha1\nkind: BackupStora");  // cut
  const auto grace = 300ms;
  Running r(dir, poll, grace, {{"demo", "a"}, {"demo", "b"}});
  run_for(r.io, grace + 1000ms);
  CHECK(r.sink.removals() == 0);

  // Fixed, and b is really not in it: now b goes, a grace after the fix.
  auto fixed_at = std::chrono::steady_clock::now();
  test::write_file(dir / "b.yaml", test::local_storage("c", "/data/c"));
  REQUIRE(run_until(r.io, [&] { return r.sink.removals() == 1; }));
  CHECK(std::chrono::steady_clock::now() - fixed_at >= grace);
  CHECK(r.sink.events.back() == "-demo/b");
  CHECK(r.sink.storages.count("demo/a"));
  CHECK(r.sink.storages.count("demo/c"));
}

TEST_CASE("a file over a budget never makes the source remove anything") {
  bool poll = GENERATE(false, true);
  INFO((poll ? "polling" : "inotify"));
  auto dir = test::temp_dir("source-budget");
  ManifestBudgets budgets;
  budgets.max_objects = 2;
  test::write_file(dir / "a.yaml", test::local_storage("a", "/data/a"));
  auto z = [](int n) {
    std::string text;
    for (int i = 1; i <= n; ++i) text += test::local_storage("z" + std::to_string(i), "/data/z") + "---\n";
    return text;
  };
  test::write_file(dir / "z.yaml", z(3));
  Running r(dir, poll, 0ms, {}, budgets);  // no grace: only the budget rule stands between an edit and a removal
  CHECK(r.sink.storages.size() == 2);      // a, then what was left for z.yaml: z1
  CHECK(r.sink.storages.count("demo/z1"));

  // a.yaml goes; z.yaml, stopped short before, is read again with the room made: z2 comes, z3 still
  // does not fit, so z.yaml is still over the budget and a is kept.
  test::fs::remove(dir / "a.yaml");
  REQUIRE(run_until(r.io, [&] { return r.sink.storages.count("demo/z2") > 0; }));
  run_for(r.io, 300ms);
  CHECK(r.sink.storages.count("demo/a"));
  CHECK_FALSE(r.sink.storages.count("demo/z3"));
  CHECK(r.sink.removals() == 0);

  // Within the budget again: now a's absence counts.
  test::write_file(dir / "z.yaml", z(2));
  REQUIRE(run_until(r.io, [&] { return !r.sink.storages.count("demo/a"); }));
  CHECK(r.sink.events.back() == "-demo/a");
  CHECK(r.sink.storages.size() == 2);

  // A file over a budget of its own (here its size) holds removals just the same.
  budgets.max_file_size = 2048;
  test::write_file(dir / "big.yaml", z(0) + std::string(3000, '#'));
  Running sized(dir, poll, 0ms, {}, budgets);
  test::fs::remove(dir / "z.yaml");
  sized.settle();
  run_for(sized.io, 300ms);
  CHECK(sized.sink.removals() == 0);
  test::fs::remove(dir / "big.yaml");
  REQUIRE(run_until(sized.io, [&] { return sized.sink.removals() == 2; }));
}

TEST_CASE("links looping back into the folder: the first scan ends at once and each object is delivered once") {
  auto dir = test::temp_dir("source-loops");
  test::write_file(dir / "s.yaml", test::local_storage("s", "/data/s"));
  test::fs::create_directory_symlink(".", dir / "a");
  test::fs::create_directory_symlink(".", dir / "b");
  auto started = std::chrono::steady_clock::now();
  Running r(dir, false, 0ms);
  CHECK(std::chrono::steady_clock::now() - started < 2s);
  CHECK(r.sink.upserts == 1);
  CHECK(r.sink.storages.count("demo/s"));
  test::write_file(dir / "t.yaml", test::local_storage("t", "/data/t"));
  REQUIRE(run_until(r.io, [&] { return r.sink.storages.count("demo/t") > 0; }));
  CHECK(r.sink.upserts == 2);
}

namespace {
// A sink that cannot take the storage named "poison" (an exception, as a bug in the engine would throw).
struct ThrowingSink final : SourceSink {
  std::vector<std::string> storages;
  int synced_calls = 0;
  void storage_upserted(kube::BackupStorage s) override {
    if (s.metadata.name == "poison") throw std::runtime_error("the sink cannot take demo/poison");
    storages.push_back(s.metadata.name);
  }
  void storage_removed(const ObjectKey&) override {}
  void secret_upserted(kube::Secret) override {}
  void secret_removed(const ObjectKey&) override {}
  void synced() override { ++synced_calls; }
};
}  // namespace

TEST_CASE("an exception from the sink ends the manifest source through liveness, not std::terminate") {
  auto dir = test::temp_dir("ms-throws");
  test::write_file(dir / "a.yaml", test::local_storage("a", "/data/a"));
  boost::asio::io_context io;
  boost::asio::thread_pool pool{1};
  ThrowingSink sink;
  common::Liveness liveness;
  ManifestSourceOptions options{dir, 10ms, 50ms, false, 0ms};
  options.liveness = &liveness;
  ManifestSource source(io.get_executor(), pool, options, sink);
  source.start([] {});
  REQUIRE(run_until(io, [&] { return sink.synced_calls == 1; }));
  CHECK(liveness.healthy());

  test::write_file(dir / "poison.yaml", test::local_storage("poison", "/data/p"));
  REQUIRE(run_until(io, [&] { return !liveness.healthy(); }));  // before: std::terminate, the test process aborted
  auto ended = liveness.ended();
  REQUIRE(ended.size() == 1);
  CHECK(ended[0].loop == "manifest source " + dir.string());
  CHECK(ended[0].reason == "an exception: the sink cannot take demo/poison");
  source.stop();
  run_for(io, 100ms);
  CHECK(liveness.ended().size() == 1);
  pool.join();
}
