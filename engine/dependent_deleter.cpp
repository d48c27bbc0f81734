#include "engine/dependent_deleter.hpp"

#include <boost/json.hpp>
#include <spdlog/spdlog.h>

#include <map>

#include "engine/kube_paths.hpp"
#include "engine/repositories.hpp"
#include "kube/api.hpp"
#include "kube/json_path.hpp"

namespace stowage::engine {

namespace json = boost::json;
using kube::metadata_text;

namespace {

// How a Repository or Snapshot still there is named while the storage waits for it.
std::string waiting_for(const std::string& plural, const ObjectKey& key, const json::value& object) {
  std::string kind = plural == "snapshots" ? "Snapshot" : "Repository";
  std::string finalizers;
  if (const auto* list = kube::value_at(object, {"metadata", "finalizers"}); list && list->is_array())
    for (const auto& f : list->as_array())
      if (f.is_string()) finalizers += (finalizers.empty() ? "" : ", ") + std::string(f.as_string());
  return kind + " " + key.str() + (finalizers.empty() ? "" : " (finalizers: " + finalizers + ")");
}

bool has_finalizers(const json::value& object) {
  const auto* list = kube::value_at(object, {"metadata", "finalizers"});
  return list && list->is_array() && !list->as_array().empty();
}

}  // namespace

DependentDeleter::DependentDeleter(kube::Api& api, const RepositoryIndex& repositories)
    : api_(api), repositories_(repositories) {}

boost::asio::awaitable<TargetResult<Dependents>> DependentDeleter::delete_for(ObjectKey storage) {
  Dependents left;
  // A copy: the index changes (Repository events) while this coroutine awaits.
  auto repositories = repositories_.repositories_using(storage);
  std::map<std::string, std::vector<json::value>> snapshots_by_namespace;  // one listing per namespace
  for (const auto& repo : repositories) {
    auto listed = snapshots_by_namespace.find(repo.key.namespace_);
    if (listed == snapshots_by_namespace.end()) {
      auto snapshots = co_await snapshots_in(repo.key.namespace_);
      if (!snapshots.ok()) co_return Err(snapshots.error());
      listed = snapshots_by_namespace.emplace(repo.key.namespace_, std::move(snapshots.value())).first;
    }
    std::vector<json::value> mine;
    for (const auto& snapshot : listed->second)
      if (kube::string_at(snapshot, {"spec", "repository"}) == repo.key.name) mine.push_back(snapshot);
    bool snapshots_left = false;
    for (const auto& snapshot : mine) {
      ObjectKey key{repo.key.namespace_, metadata_text(snapshot, "name")};
      if (!metadata_text(snapshot, "deletionTimestamp").empty()) {  // already deleted: held by its finalizers
        left.waiting.push_back(waiting_for("snapshots", key, snapshot));
        snapshots_left = true;
        continue;
      }
      auto gone = co_await delete_one("snapshots", key, metadata_text(snapshot, "uid"));
      if (!gone.ok()) co_return Err(gone.error());
      if (gone.value()) {
        left.waiting.push_back(*gone.value());
        snapshots_left = true;
      }
    }
    if (snapshots_left) {  // a Repository goes after its Snapshots
      left.waiting.push_back("Repository " + repo.key.str() + " (after its Snapshots)");
      continue;
    }
    auto gone = co_await delete_one("repositories", repo.key, repo.uid);
    if (!gone.ok()) co_return Err(gone.error());
    if (gone.value()) left.waiting.push_back(*gone.value());
  }
  co_return left;
}

boost::asio::awaitable<TargetResult<std::optional<std::string>>> DependentDeleter::delete_one(std::string resource,
                                                                                             ObjectKey key,
                                                                                             std::string uid) {
  std::string path = kubestash_object_path(resource, key);
  json::value options = uid.empty() ? json::value(nullptr) : json::value{{"preconditions", {{"uid", uid}}}};
  auto removed = co_await api_.remove(std::move(path), std::move(options));
  if (!removed.ok()) {
    const auto& e = removed.error();
    // 404: gone already. 409: the name holds another object now (a precondition failed): not this storage's.
    if (e.http_status == 404 || e.http_status == 409) co_return std::optional<std::string>();
    std::string hint = e.http_status == 403 ? "; the controller's ClusterRole needs delete on " + resource +
                                                  ".storage.kubestash.com"
                                            : "";
    co_return Err(
        TargetError{"deleting " + waiting_for(resource, key, nullptr) + ": " + e.message + hint, e.transient()});
  }
  // The answer is the object while finalizers hold it, else the last state or a Status (gone).
  if (removed.value().is_object() && has_finalizers(removed.value())) {
    spdlog::debug("deleting {}: held by its finalizers", waiting_for(resource, key, removed.value()));
    co_return std::optional<std::string>(waiting_for(resource, key, removed.value()));
  }
  spdlog::info("deleted {}, which used a BackupStorage being deleted", waiting_for(resource, key, nullptr));
  co_return std::optional<std::string>();
}

boost::asio::awaitable<TargetResult<std::vector<json::value>>> DependentDeleter::snapshots_in(std::string ns) {
  std::vector<json::value> out;
  std::string continue_token;
  do {
    kube::ListOptions options;
    options.limit = 500;
    options.continue_token = continue_token;
    std::string path = kubestash_collection_path("snapshots", ns);
    auto page = co_await api_.list(std::move(path), std::move(options));
    if (!page.ok()) {
      const auto& e = page.error();
      std::string hint = e.http_status == 403 ? "; the controller's ClusterRole needs list on "
                                                "snapshots.storage.kubestash.com"
                                              : "";
      co_return Err(TargetError{"listing the Snapshots in namespace " + ns + ": " + e.message + hint, e.transient()});
    }
    continue_token = kube::string_at(page.value(), {"metadata", "continue"});
    if (const auto* items = kube::value_at(page.value(), {"items"}); items && items->is_array())
      for (const auto& item : items->as_array()) out.push_back(item);
  } while (!continue_token.empty());
  co_return out;
}

}  // namespace stowage::engine
