#include "engine/webhook.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstdint>

#include "engine/admission_defaults.hpp"
#include "engine/probes.hpp"
#include "kube/admission_review.hpp"
#include "kube/json_fields.hpp"

namespace stowage::engine {

namespace {

constexpr std::string_view kGroup = "storage.kubestash.com";
constexpr std::string_view kResource = "backupstorages";

// Whether the request is one this webhook judges: CREATE or UPDATE of a BackupStorage itself.
bool judged(const kube::AdmissionRequest& request) {
  return (request.operation == "CREATE" || request.operation == "UPDATE") && request.group == kGroup &&
         request.resource == kResource && request.sub_resource.empty();
}

// The object of the request as a BackupStorage, in the request's namespace (the object itself may
// leave it out) and under the request's name (empty with generateName).
kube::ParseResult<kube::BackupStorage> storage_of(const boost::json::value& object,
                                                  const kube::AdmissionRequest& request, std::string_view which) {
  if (!object.is_object()) return Err(kube::ParseError{std::string(which), "missing: the request carries no object"});
  auto parsed = kube::parse_backup_storage(object);
  if (!parsed.ok()) {
    auto e = parsed.error();
    e.path = e.path.empty() ? std::string(which) : std::string(which) + "." + e.path;
    return Err(e);
  }
  if (!request.namespace_.empty()) parsed.value().metadata.namespace_ = request.namespace_;
  if (parsed.value().metadata.name.empty()) parsed.value().metadata.name = request.name;
  return parsed;
}

// The request's namespace/name, quoted and cut: whoever reaches the port chooses them.
std::string who(const kube::AdmissionRequest& request) {
  return kube::fields::quoted_excerpt(request.namespace_ + "/" +
                                      (request.name.empty() ? "(generated name)" : request.name));
}

// A body that is not an AdmissionReview comes from whoever reaches the port, not from the API server:
// one warning a minute at most (saying how many were quieter), the others at debug. Reactor thread only.
void log_unreadable_review(std::string_view path, const std::string& why) {
  static std::chrono::steady_clock::time_point next_warning{};
  static std::uint64_t quieted = 0;
  const auto now = std::chrono::steady_clock::now();
  if (now < next_warning) {
    ++quieted;
    return spdlog::debug("webhook: a request to {} is not an AdmissionReview v1: {}", path, why);
  }
  spdlog::warn("webhook: a request to {} is not an AdmissionReview v1: {}{}", path, why,
               quieted ? " (" + std::to_string(quieted) + " more since the last warning, logged at debug)" : "");
  next_warning = now + std::chrono::minutes(1);
  quieted = 0;
}

bool served(const std::vector<std::string>& namespaces, const std::string& ns) {
  return namespaces.empty() || std::find(namespaces.begin(), namespaces.end(), ns) != namespaces.end();
}

// A storage outside --namespace's list is judged against what the caches hold (the served
// namespaces' storages: a location on one of theirs is refused), but the rules about its own
// namespace (one default storage) and about other namespaces cannot be: the API server shows this.
std::string not_served_warning(const AdmissionCaches& caches) {
  std::string list;
  for (const auto& ns : caches.namespaces) list += (list.empty() ? "" : ",") + ns;
  return "stowage serves namespaces " + list + " only (--namespace): this BackupStorage was checked against "
         "the storages there, not against others in its own namespace, and this stowage will not reconcile it";
}

kube::AdmissionVerdict validate(const kube::AdmissionRequest& request, const std::optional<AdmissionCaches>& caches) {
  if (!judged(request)) return kube::AdmissionVerdict::allow();
  auto storage = storage_of(request.object, request, "request.object");
  if (!storage.ok()) return kube::AdmissionVerdict::bad_request("cannot read the BackupStorage: " + storage.error().to_string());
  if (!caches)
    return kube::AdmissionVerdict{false, 503, "ServiceUnavailable",
                                  "stowage's caches of BackupStorages have not synced yet: try again in a moment", {}, {}};
  std::optional<std::string> refused;
  if (request.operation == "CREATE") {
    refused = validate_create(storage.value(), *caches);
  } else {
    auto old = storage_of(request.old_object, request, "request.oldObject");
    if (!old.ok()) return kube::AdmissionVerdict::bad_request("cannot read the BackupStorage: " + old.error().to_string());
    refused = validate_update(storage.value(), old.value(), *caches);
  }
  if (!refused) {
    auto verdict = kube::AdmissionVerdict::allow();
    if (!served(caches->namespaces, request.namespace_)) verdict.warnings.push_back(not_served_warning(*caches));
    return verdict;
  }
  spdlog::info("webhook: refusing {} of BackupStorage {}: {}", request.operation, who(request), *refused);
  return kube::AdmissionVerdict::deny(std::move(*refused));
}

}  // namespace

std::string mutate_review(std::string_view body) {
  auto request = kube::parse_admission_review(body);
  if (!request.ok()) {
    log_unreadable_review(kMutatePath, request.error().to_string());
    return kube::admission_response("", kube::AdmissionVerdict::bad_request(request.error().to_string()));
  }
  const auto& r = request.value();
  auto verdict = kube::AdmissionVerdict::allow();
  if (judged(r) && r.object.is_object()) {
    verdict.patch = backup_storage_defaults(r.object);
    if (!verdict.patch.empty())
      spdlog::debug("webhook: defaults for BackupStorage {}: {} operations", who(r), verdict.patch.size());
  }
  return kube::admission_response(r.uid, verdict);
}

std::string validate_review(std::string_view body, const std::optional<AdmissionCaches>& caches) {
  auto request = kube::parse_admission_review(body);
  if (!request.ok()) {
    log_unreadable_review(kValidatePath, request.error().to_string());
    return kube::admission_response("", kube::AdmissionVerdict::bad_request(request.error().to_string()));
  }
  return kube::admission_response(request.value().uid, validate(request.value(), caches));
}

void serve_webhooks(HttpServer& server, AdmissionCachesSource caches) {
  server.route_post(std::string(kMutatePath), [](std::string_view body) {
    return HttpResponse{200, "application/json", mutate_review(body)};
  });
  server.route_post(std::string(kValidatePath), [caches = std::move(caches)](std::string_view body) {
    return HttpResponse{200, "application/json", validate_review(body, caches ? caches() : std::nullopt)};
  });
}

}  // namespace stowage::engine
