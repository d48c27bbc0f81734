// The real `stowage` binary end to end: init, get, run with a watched folder, config errors.
#include <catch2/catch.hpp>

#include "support.hpp"

namespace {

struct Env {
  test::fs::path dir, state, root, manifests;
  explicit Env(const std::string& name)
      : dir(test::temp_dir(name)), state(dir / "state"), root(dir / "root"), manifests(dir / "manifests") {
    test::fs::create_directories(manifests);
    test::fs::create_directories(root);  // local.root must exist: it is the administrator's, never created
  }
  std::vector<std::string> common() const {
    return {"--state-dir", state.string(), "--local-root", root.string()};
  }
  test::RunResult stowage(std::vector<std::string> args, bool with_common = true) const {
    if (with_common) {
      auto c = common();
      args.insert(args.end(), c.begin(), c.end());
    }
    return test::run(args, dir);
  }
};

const std::string kS3NoSecret =
    "apiVersion: storage.kubestash.com/v1alpha1\nkind: BackupStorage\nmetadata: {name: cloud, namespace: demo}\n"
    "spec: {storage: {provider: s3, s3: {bucket: b, endpoint: http://127.0.0.1:9, secretName: nope}}}\n";

}  // namespace

TEST_CASE("init: one line per storage, exit 0 only when all are Ready") {
  Env env("init");
  test::write_file(env.manifests / "ok.yaml",
                   test::local_storage("one", "/data/one") + "---\n" + test::local_storage("two", "/data/two"));
  auto ok = env.stowage({"init", "-f", (env.manifests / "ok.yaml").string()});
  INFO(ok.err);
  CHECK(ok.code == 0);
  CHECK_THAT(ok.out, Catch::Contains("demo/one\tReady") && Catch::Contains("demo/two\tReady"));
  CHECK(test::fs::exists(env.root / "data/one/metadata.yaml"));

  test::write_file(env.manifests / "mixed.yaml", test::local_storage("three", "/data/three") + "---\n" + kS3NoSecret);
  auto mixed = env.stowage({"init", "-f", (env.manifests / "mixed.yaml").string()});
  CHECK(mixed.code == 1);
  CHECK_THAT(mixed.out, Catch::Contains("demo/three\tReady"));
  CHECK_THAT(mixed.out, Catch::Contains("demo/cloud\tNotReady") && Catch::Contains("BackendSecretNotAvailable"));
}

TEST_CASE("init: bad input is reported with file and line, and nothing crashes") {
  Env env("init-bad");
  test::write_file(env.manifests / "broken.yaml", "kind: BackupStorage\nmetadata: {name: [\n");
  auto r = env.stowage({"init", "-f", (env.manifests / "broken.yaml").string()});
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Catch::Contains("broken.yaml:") && Catch::Contains("not valid YAML"));
  CHECK_THAT(r.err, Catch::Contains("no BackupStorage found"));
  auto missing = env.stowage({"init", "-f", (env.manifests / "absent.yaml").string()});
  CHECK(missing.code == 1);
  CHECK_THAT(missing.err, Catch::Contains("absent.yaml: cannot read"));
}

TEST_CASE("get: kubectl's columns, namespaces, -o yaml and NotFound") {
  Env env("get");
  test::write_file(env.manifests / "s.yaml",
                   test::local_storage("one", "/data/one") + "---\n" + test::local_storage("other", "/d/o", "WipeOut", "prod"));
  REQUIRE(env.stowage({"init", "-f", (env.manifests / "s.yaml").string()}).code == 0);

  auto table = env.stowage({"get", "backupstorages", "-n", "demo", "--state-dir", env.state.string()}, false);
  CHECK(table.code == 0);
  CHECK_THAT(table.out, Catch::StartsWith("NAME   PROVIDER   DEFAULT   DELETION-POLICY   TOTAL-SIZE   PHASE   AGE\n"));
  CHECK_THAT(table.out, Catch::Contains("one    local") && Catch::Contains("Delete") && Catch::Contains("Ready"));
  CHECK_THAT(table.out, !Catch::Contains("other"));

  auto all = env.stowage({"get", "bs", "-A", "--state-dir", env.state.string()}, false);
  CHECK_THAT(all.out, Catch::StartsWith("NAMESPACE   NAME"));
  CHECK_THAT(all.out, Catch::Contains("prod        other") && Catch::Contains("WipeOut"));

  auto yaml = env.stowage({"get", "bs", "one", "-n", "demo", "-o", "yaml", "--state-dir", env.state.string()}, false);
  CHECK_THAT(yaml.out, Catch::Contains("kind: BackupStorage") && Catch::Contains("phase: Ready") &&
                           Catch::Contains("type: BackendInitialized") && Catch::Contains("uid:"));

  auto none = env.stowage({"get", "bs", "nope", "-n", "demo", "--state-dir", env.state.string()}, false);
  CHECK(none.code == 1);
  CHECK_THAT(none.err, Catch::Contains("\"nope\" not found"));
  auto empty = env.stowage({"get", "bs", "-n", "empty", "--state-dir", env.state.string()}, false);
  CHECK_THAT(empty.err, Catch::Contains("No resources found in empty namespace."));
  auto wrong = env.stowage({"get", "pods", "--state-dir", env.state.string()}, false);
  CHECK(wrong.code == 1);
}

TEST_CASE("bad configuration exits 2 naming the setting and its origin") {
  Env env("config");
  auto flag = env.stowage({"run", "--manifests", env.manifests.string(), "--workers", "many"});
  CHECK(flag.code == 2);
  CHECK_THAT(flag.err, Catch::Contains("--workers") && Catch::Contains("many"));
  test::write_file(env.dir / "c.yaml", "reconcile:\n  retry-base: 5 parsecs\n");
  auto file = env.stowage({"run", "--config", (env.dir / "c.yaml").string()});
  CHECK(file.code == 2);
  CHECK_THAT(file.err, Catch::Contains("c.yaml:2") && Catch::Contains("5 parsecs"));
  auto nothing = env.stowage({"run"});
  CHECK(nothing.code == 2);
  CHECK_THAT(nothing.err, Catch::Contains("--manifests"));
  auto missing = env.stowage({"run", "--manifests", (env.dir / "nowhere").string()});
  CHECK(missing.code == 2);
  CHECK_THAT(missing.err, Catch::Contains("nowhere does not exist"));
  auto print = env.stowage({"config", "print", "--workers", "3"});
  CHECK(print.code == 0);
  CHECK_THAT(print.out, Catch::Contains("workers: 3"));
}

TEST_CASE("run: an empty folder is reported and watched") {
  Env env("run-empty");
  auto child = test::Child::spawn({"run", "--manifests", env.manifests.string(), "--state-dir", env.state.string(),
                                   "--local-root", env.root.string()},
                                  env.dir / "e.out", env.dir / "e.err");
  CHECK(test::eventually([&] {
    return test::read_file(env.dir / "e.err").find("no BackupStorage manifests in") != std::string::npos;
  }));
  test::write_file(env.manifests / "late.yaml", test::local_storage("late", "/data/late"));
  CHECK(test::eventually([&] { return test::fs::exists(env.root / "data/late/metadata.yaml"); }));
  child.signal(SIGINT);
  CHECK(child.wait(std::chrono::seconds(15)) == 0);
}

TEST_CASE("run: a watched folder is reconciled as it changes, SIGTERM stops it cleanly") {
  Env env("run");
  test::write_file(env.manifests / "a.yaml", test::local_storage("a", "/data/a"));
  auto args = std::vector<std::string>{"run", "--manifests", env.manifests.string(), "--manifests-debounce", "20ms",
                                       "--manifests-delete-grace", "0s"};
  for (auto& c : env.common()) args.push_back(c);
  auto child = test::Child::spawn(args, env.dir / "run.out", env.dir / "run.err");
  CHECK(test::eventually([&] { return test::fs::exists(env.root / "data/a/metadata.yaml"); }));

  // A second controller on the same state directory is refused.
  auto second = env.stowage({"run", "--manifests", env.manifests.string()});
  CHECK(second.code == 1);
  CHECK_THAT(second.err, Catch::Contains("another stowage process is using the state directory"));

  // New file: reconciled while running.
  test::write_file(env.manifests / "sub/b.yaml", test::local_storage("b", "/data/b", "WipeOut"));
  CHECK(test::eventually([&] { return test::fs::exists(env.root / "data/b/metadata.yaml"); }));
  test::write_file(env.root / "data/b/repo/file", "backup data");

  // A broken edit keeps the storage; fixing it is picked up.
  test::write_file(env.manifests / "a.yaml", "kind: [oops\n");
  CHECK(test::eventually([&] { return test::read_file(env.dir / "run.err").find("a.yaml") != std::string::npos; }));
  CHECK(test::fs::exists(env.root / "data/a/metadata.yaml"));

  // Removing a WipeOut storage's manifest deletes it and wipes its data.
  test::fs::remove(env.manifests / "sub/b.yaml");
  CHECK(test::eventually([&] { return !test::fs::exists(env.root / "data/b/repo/file"); }));
  CHECK(test::fs::exists(env.root / "data/a/metadata.yaml"));

  child.signal(SIGTERM);
  CHECK(child.wait(std::chrono::seconds(15)) == 0);
  auto get = env.stowage({"get", "bs", "-n", "demo", "--state-dir", env.state.string()}, false);
  CHECK_THAT(get.out, Catch::Contains("Ready"));
  CHECK_THAT(get.out, !Catch::Contains("\nb "));
}

TEST_CASE("run: SIGTERM as soon as it is up is handled gracefully and is not fatal") {
  Env env("run-early-term");
  test::write_file(env.manifests / "a.yaml", test::local_storage("a", "/data/a"));
  for (int i = 0; i < 5; ++i) {
    auto err = env.dir / ("t" + std::to_string(i) + ".err");
    auto child = test::Child::spawn({"run", "--manifests", env.manifests.string(), "--state-dir", env.state.string(),
                                     "--local-root", env.root.string()},
                                    env.dir / "t.out", err);
    // The first log line is written during start-up, before the signal handlers exist.
    REQUIRE(test::eventually([&] { return test::count_of(err, "watching") > 0; }, std::chrono::seconds(20)));
    std::this_thread::sleep_for(std::chrono::milliseconds(i));
    child.signal(SIGTERM);
    CHECK(child.wait(std::chrono::seconds(20)) == 0);
  }
}

TEST_CASE("run: a Ready storage is checked again every revalidate period and a broken backend turns it NotReady") {
  Env env("revalidate");
  test::write_file(env.manifests / "a.yaml", test::local_storage("a", "/data/a"));
  auto args = std::vector<std::string>{"run", "--manifests", env.manifests.string(), "--revalidate-period", "500ms",
                                       "--permanent-retry", "500ms"};
  for (auto& c : env.common()) args.push_back(c);
  auto child = test::Child::spawn(args, env.dir / "run.out", env.dir / "run.err");
  auto meta = env.root / "data/a/metadata.yaml";
  REQUIRE(test::eventually([&] { return test::fs::exists(meta); }));
  auto phase = [&] { return env.stowage({"get", "bs", "a", "-n", "demo", "-o", "wide", "--state-dir", env.state.string()}, false).out; };
  REQUIRE(test::eventually([&] { return phase().find("Ready") != std::string::npos; }));

  // Nothing about the object changes; only the backend breaks. The next revalidation notices.
  test::write_file(meta, "not: a BackendMeta\n");
  REQUIRE(test::eventually([&] { return phase().find("NotReady") != std::string::npos; }, std::chrono::seconds(10)));
  CHECK_THAT(test::read_file(env.dir / "run.err"), Catch::Contains("is not a valid BackendMeta"));
  // Fixed (the bad file removed): initialized again, Ready.
  test::fs::remove(meta);
  REQUIRE(test::eventually([&] { return phase().find("NotReady") == std::string::npos && test::fs::exists(meta); },
                           std::chrono::seconds(10)));
  child.signal(SIGTERM);
  CHECK(child.wait(std::chrono::seconds(15)) == 0);
}
