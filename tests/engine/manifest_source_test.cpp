// The manifest source on a real folder, with inotify and with the polling fallback.
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <catch2/catch.hpp>

#include "engine/manifest_source.hpp"
#include "support.hpp"

using namespace stowage;
using namespace stowage::engine;

namespace {

struct Recorder final : SourceSink {
  std::map<std::string, std::string> storages;  // key -> hostPath
  std::map<std::string, std::map<std::string, std::string>> secrets;
  int synced_calls = 0, upserts = 0;
  void storage_upserted(kube::BackupStorage s) override {
    ++upserts;
    storages[s.metadata.namespace_ + "/" + s.metadata.name] = s.spec.storage.local ? s.spec.storage.local->host_path : "";
  }
  void storage_removed(const ObjectKey& k) override { storages.erase(k.str()); }
  void secret_upserted(kube::Secret s) override { secrets[s.metadata.namespace_ + "/" + s.metadata.name] = s.data; }
  void secret_removed(const ObjectKey& k) override { secrets.erase(k.str()); }
  void synced() override { ++synced_calls; }
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

}  // namespace

TEST_CASE("the manifest source follows a folder as it changes") {
  bool poll = GENERATE(false, true);
  INFO((poll ? "polling" : "inotify"));
  auto dir = test::temp_dir(poll ? "source-poll" : "source-inotify");
  test::write_file(dir / "a.yaml", test::local_storage("a", "/data/a"));
  boost::asio::io_context io;
  boost::asio::thread_pool pool(1);
  Recorder sink;
  ManifestSource source(io.get_executor(), pool,
                        {dir, std::chrono::milliseconds(10), std::chrono::milliseconds(50), poll}, sink);
  bool synced = false;
  source.start([&] { synced = true; });
  REQUIRE(run_until(io, [&] { return synced; }));
  CHECK(sink.synced_calls == 1);
  CHECK(sink.storages.at("demo/a") == "/data/a");

  // A new file in a new sub-folder, with a Secret.
  test::write_file(dir / "sub/b.yaml", test::local_storage("b", "/data/b") +
                                           "---\napiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: demo}\n"
                                           "stringData: {K: v}\n");
  REQUIRE(run_until(io, [&] { return sink.storages.count("demo/b") && sink.secrets.count("demo/s"); }));

  // An edit is seen; an unchanged rescan delivers nothing.
  int upserts = sink.upserts;
  test::write_file(dir / "a.yaml", test::local_storage("a", "/data/a2"));
  REQUIRE(run_until(io, [&] { return sink.storages.at("demo/a") == "/data/a2"; }));
  CHECK(sink.upserts == upserts + 1);

  // A broken file keeps its objects; removing a file removes them.
  test::write_file(dir / "a.yaml", "kind: [\n");
  io.restart();
  io.run_for(std::chrono::milliseconds(300));
  CHECK(sink.storages.count("demo/a"));
  test::fs::remove_all(dir / "sub");
  REQUIRE(run_until(io, [&] { return !sink.storages.count("demo/b") && !sink.secrets.count("demo/s"); }));
  CHECK(sink.storages.count("demo/a"));
  source.stop();
  pool.join();
}
