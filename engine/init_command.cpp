// `stowage init -f FILE...`: one-shot initialization of the storages in some manifests.
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <optional>
#include <set>

#include "common/liveness.hpp"
#include "engine/commands.hpp"
#include "engine/manifests.hpp"
#include "engine/runtime.hpp"
#include "kube/conditions.hpp"

namespace stowage::engine {

namespace {
// One line per storage: namespace/name, phase, and the first reason it is not Ready.
std::string summary_line(const ObjectKey& key, const kube::BackupStorageStatus& st) {
  std::string phase = st.phase.empty() ? "NotReady" : st.phase;
  std::string detail;
  for (const auto& c : st.conditions)
    if (c.status != "True" && detail.empty()) detail = c.reason + ": " + c.message;
  if (detail.empty())
    if (const auto* c = kube::find_condition(st.conditions, kube::kConditionBackendInitialized)) detail = c->message;
  if (detail.empty()) detail = "not reconciled before the timeout";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%-9s", phase.c_str());
  return key.str() + "\t" + buf + "\t" + detail;
}
}  // namespace

int init_command(const config::Config& config, const std::vector<std::filesystem::path>& files,
                 std::chrono::milliseconds timeout) {
  Snapshot snap;
  bool bad_input = false;
  for (const auto& contents : read_manifest_files(files, budgets_from(config))) {
    bad_input |= contents.unreadable;
    add_to_snapshot(snap, contents);
  }
  for (const auto& p : snap.problems) std::fprintf(stderr, "error: %s\n", p.c_str());
  bad_input |= !snap.problems.empty();
  if (snap.storages.empty()) {
    std::fprintf(stderr, "error: no BackupStorage found in the given files: nothing to initialize\n");
    return 1;
  }

  Runtime rt(config, OfflineSource{"init", /*deletions=*/false});
  for (auto& [_, s] : snap.secrets) rt.world().secret_upserted(s.object);
  std::set<std::string> waiting;
  for (auto& [key, s] : snap.storages) {
    waiting.insert(persistence::QueueKey{"BackupStorage", key.namespace_, key.name}.str());
    rt.world().storage_upserted(s.object);
  }
  bool timed_out = false;
  boost::asio::steady_timer deadline(rt.io());
  auto done = [&] {
    rt.controller().stop();
    deadline.cancel();
    rt.store().when_durable([&] { rt.io().stop(); });
  };
  rt.controller().on_outcome([&](const persistence::QueueKey& key, const Outcome& o) {
    if (o.kind != Outcome::Transient) waiting.erase(key.str());  // settled: Ready, or failed for good
    if (waiting.empty()) done();
  });
  deadline.expires_after(timeout);
  deadline.async_wait([&](boost::system::error_code ec) {
    if (ec) return;
    timed_out = true;
    done();
  });
  // A loop that dies (the state store's writer: nothing could be recorded, and `done` would wait
  // for a commit that never comes) ends the command at once with exit code 1, naming it.
  std::optional<common::LoopEnd> died;
  common::Liveness::process().on_first_end(rt.io().get_executor(), [&](const common::LoopEnd& first) {
    died = first;
    rt.controller().stop();
    deadline.cancel();
    rt.cancel_work();
    rt.io().stop();
  });
  rt.controller().start();
  rt.io().run();
  common::Liveness::process().on_first_end(rt.io().get_executor(), nullptr);  // its captures end here
  if (died) {
    std::fprintf(stderr, "error: %s stopped (%s): nothing more could be done or recorded\n", died->loop.c_str(),
                 died->reason.c_str());
    return 1;
  }
  const bool recorded = rt.store().flush_within(config.shutdown_grace);
  if (!recorded)
    std::fprintf(stderr, "error: the state store could not record the results within %lld ms\n",
                 static_cast<long long>(config.shutdown_grace.count()));

  bool all_ready = true;
  for (const auto& [key, _] : snap.storages) {
    auto found = rt.world().get(key);
    kube::BackupStorageStatus st = found ? found->object.status : kube::BackupStorageStatus{};
    all_ready &= st.phase == kube::kPhaseReady;
    std::printf("%s\n", summary_line(key, st).c_str());
  }
  if (timed_out) std::fprintf(stderr, "error: gave up after %lld ms with storages still retrying\n",
                              static_cast<long long>(timeout.count()));
  return all_ready && !bad_input && recorded ? 0 : 1;
}

}  // namespace stowage::engine
