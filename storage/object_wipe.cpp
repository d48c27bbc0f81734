// wipe_objects(): see object_wipe.hpp for the flow, the guarantees and what it costs.
#include "storage/object_wipe.hpp"

#include <spdlog/spdlog.h>

#include <map>
#include <string_view>
#include <utility>

#include "storage/metadata.hpp"

namespace stowage::storage {
namespace asio = boost::asio;
namespace {

constexpr std::string_view kFoundMetadata = "another storage's metadata.yaml";
constexpr std::string_view kPlanned = "another storage's location";

// Locations left out of the wipe, as directories relative to the storage's ("team-b/"), each with
// why. No entry lies inside another: adding an outer location drops the inner ones.
class KeptLocations {
 public:
  // The kept location `rel` lies in, or nullptr. With no entry inside another, only the greatest
  // entry not after `rel` can be a prefix of it.
  const std::string* containing(std::string_view rel) const {
    auto it = kept_.upper_bound(rel);
    if (it == kept_.begin()) return nullptr;
    --it;
    return rel.starts_with(it->first) ? &it->first : nullptr;
  }

  void add(std::string rel, std::string_view why) {
    if (containing(rel)) return;
    auto first = kept_.lower_bound(rel);
    auto last = first;
    while (last != kept_.end() && last->first.starts_with(rel)) ++last;
    kept_.erase(first, last);
    kept_.emplace(std::move(rel), std::string(why));
  }

  // "s3://bucket/backup/demo/team-b: another storage's metadata.yaml", one per location.
  std::vector<std::string> describe(const ObjectStore& store, const std::string& dir) const {
    std::vector<std::string> out;
    for (const auto& [rel, why] : kept_)
      out.push_back(store.object_location(dir + rel.substr(0, rel.size() - 1)) + ": " + why);
    return out;
  }

 private:
  std::map<std::string, std::string, std::less<>> kept_;
};

// Why a kept location from the plan cannot be used, or nothing when it is a relative path of
// non-empty segments other than "." and "..".
std::optional<std::string> plan_entry_problem(std::string_view entry) {
  if (entry.empty()) return "is empty";
  std::size_t start = 0;
  for (;;) {
    const std::size_t slash = entry.find('/', start);
    const std::string_view segment = entry.substr(start, slash == std::string_view::npos ? slash : slash - start);
    if (segment.empty()) return "has an empty segment (a leading, trailing or double '/')";
    if (segment == "." || segment == "..") return "has a `.` or `..` segment";
    if (slash == std::string_view::npos) return std::nullopt;
    start = slash + 1;
  }
}

// For a key "<dir><rel>/metadata.yaml" with rel non-empty: "<rel>/". Otherwise empty.
std::string nested_storage_dir(std::string_view rel) {
  const std::string_view file = kMetadataFile;
  if (rel.size() < file.size() + 2 || !rel.ends_with(file)) return {};
  std::string_view dir = rel.substr(0, rel.size() - file.size());
  if (dir.back() != '/' || dir.size() < 2) return {};
  return std::string(dir);
}

// The state of one wipe; its coroutines are members so that nothing is held by reference into a
// caller's frame across an await.
class Wipe {
 public:
  Wipe(ObjectStore& store, Backend::DeleteProgress progress)
      : store_(store),
        progress_(std::move(progress)),
        dir_(store.object_directory()),
        own_key_(dir_ + std::string(kMetadataFile)) {}

  asio::awaitable<WipeReport> run(WipePlan plan) {
    for (const auto& entry : plan.keep) {
      if (auto problem = plan_entry_problem(entry)) {
        report_.refused = BackendError{false, "InvalidPlan",
                                       "WipeOut of " + store_.object_location(dir_) + ": kept location `" + entry +
                                           "` " + *problem + ": nothing was deleted",
                                       std::nullopt};
        co_return std::move(report_);
      }
      kept_.add(entry + "/", kPlanned);
    }
    const bool owned = co_await prove_ownership();
    if (!owned) co_return std::move(report_);
    const bool discovered = co_await discover();
    if (!discovered) co_return finish();
    const bool emptied = co_await delete_pass();
    if (!emptied) co_return finish();
    if (gone_) co_return finish();
    std::vector<std::string> last{own_key_};  // named: no temporary inside the co_await (GCC 12)
    co_await delete_keys(std::move(last));
    co_return finish();
  }

 private:
  WipeReport finish() {
    report_.left = kept_.describe(store_, dir_);
    return std::move(report_);
  }

  // False when the wipe must stop here (refused, failed, or nothing there at all).
  bool stop_on(const BackendError& error) {
    if (store_.bucket_missing(error)) {
      gone_ = true;  // no bucket, nothing (left) to delete: done
      return false;
    }
    report_.error = error;
    return false;
  }

  asio::awaitable<bool> prove_ownership() {
    auto state = co_await store_.read_own_metadata();
    if (!state.ok()) co_return stop_on(state.error());
    if (!state.value().meta) {
      report_.refused = ownership_refusal(state.value(), store_.object_location(own_key_));
      co_return false;
    }
    co_return true;
  }

  // First pass: other storages' metadata.yaml below this one.
  asio::awaitable<bool> discover() {
    std::string token;
    do {
      auto page = co_await store_.list_objects(token);
      if (!page.ok()) co_return stop_on(page.error());
      for (const std::string& key : page.value().keys) {
        if (!key.starts_with(dir_)) continue;
        std::string nested = nested_storage_dir(std::string_view(key).substr(dir_.size()));
        if (nested.empty() || kept_.containing(nested)) continue;
        const bool checked = co_await check_nested(key, std::move(nested));
        if (!checked) co_return false;
      }
      token = std::move(page.value().next);
    } while (!token.empty());
    co_return true;
  }

  asio::awaitable<bool> check_nested(std::string key, std::string nested) {
    auto body = co_await store_.read_object(key, kMaxNestedMetadataBytes);
    if (!body.ok()) co_return stop_on(body.error());
    if (!body.value()) co_return true;  // deleted since it was listed
    std::string reason;
    const bool valid = body.value()->size() <= kMaxNestedMetadataBytes && parse_metadata(*body.value(), reason);
    if (body.value()->size() > kMaxNestedMetadataBytes)
      reason = "larger than " + std::to_string(kMaxNestedMetadataBytes) + " bytes";
    if (valid) {
      spdlog::info("WipeOut of {}: {} is another storage's metadata.yaml; its location is left alone",
                   store_.object_location(dir_), store_.object_location(key));
      kept_.add(std::move(nested), kFoundMetadata);
    } else {
      spdlog::debug("WipeOut of {}: {} is not a BackendMeta ({}): deleted as data", store_.object_location(dir_),
                    store_.object_location(key), reason);
    }
    co_return true;
  }

  // Second pass: everything but the kept locations and the own metadata.yaml.
  asio::awaitable<bool> delete_pass() {
    std::string token;
    do {
      auto page = co_await store_.list_objects(token);
      if (!page.ok()) co_return stop_on(page.error());
      std::vector<std::string> doomed;
      for (std::string& key : page.value().keys) {
        if (key == own_key_ || !key.starts_with(dir_)) continue;
        if (kept_.containing(std::string_view(key).substr(dir_.size()))) continue;
        doomed.push_back(std::move(key));
      }
      if (!doomed.empty()) {
        const bool deleted = co_await delete_keys(std::move(doomed));
        if (!deleted) co_return false;
      }
      if (progress_) co_await progress_(report_.removed);
      token = std::move(page.value().next);
    } while (!token.empty());
    co_return true;
  }

  asio::awaitable<bool> delete_keys(std::vector<std::string> keys) {
    auto outcome = co_await store_.delete_objects(std::move(keys));
    report_.removed += outcome.removed;
    if (outcome.error) co_return stop_on(*outcome.error);
    co_return true;
  }

  ObjectStore& store_;
  Backend::DeleteProgress progress_;
  const std::string dir_;
  const std::string own_key_;
  KeptLocations kept_;
  WipeReport report_;
  bool gone_ = false;  // the bucket does not exist (any more)
};

}  // namespace

asio::awaitable<WipeReport> wipe_objects(ObjectStore& store, WipePlan plan, Backend::DeleteProgress progress) {
  Wipe wipe(store, std::move(progress));
  auto report = co_await wipe.run(std::move(plan));
  co_return report;
}

}  // namespace stowage::storage
