#pragma once
// The admission webhook for BackupStorages (storage.kubestash.com/v1alpha1), on controller-runtime's
// paths, served over HTTPS by `stowage run` in Kubernetes mode (--webhook-bind-address, certificate
// from --webhook-cert-dir, see engine/serving_certificate.hpp):
//  - kMutatePath: KubeStash's defaults as a JSONPatch (engine/admission_defaults.hpp);
//  - kValidatePath: KubeStash's rules and stowage's own (engine/admission_rules.hpp).
// Each request is answered on the reactor from the informers' caches alone (no API or backend
// call), in microseconds per cached storage: far inside the configurations' timeoutSeconds. Before
// the caches have synced, the validating webhook refuses (the rules cannot be judged yet; the
// readiness probe fails meanwhile, so a Service sends nothing here); the mutating one needs no cache.
// With --namespace's list, a storage in a namespace not served is judged against the served
// storages only (a location overlapping one of theirs is still refused) and, when allowed, the answer
// carries a warning saying so (kubectl prints it); deploy/overlays/namespaced sends the webhook only
// the served namespaces (a namespaceSelector), so this is for hand-made configurations.
// A body that is not an AdmissionReview v1 is answered, as controller-runtime does, with HTTP 200 and
// an AdmissionReview refusing it with code 400 and the reason. Operations other than CREATE and
// UPDATE, subresources and other resources are allowed untouched (the configurations do not send them).
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "engine/admission_rules.hpp"

namespace stowage::engine {

class HttpServer;

inline constexpr std::string_view kMutatePath = "/mutate-storage-kubestash-com-v1alpha1-backupstorage";
inline constexpr std::string_view kValidatePath = "/validate-storage-kubestash-com-v1alpha1-backupstorage";
inline constexpr std::string_view kWebhookBindAddressFlag = "--webhook-bind-address";

// The caches, or nullopt while they have not synced.
using AdmissionCachesSource = std::function<std::optional<AdmissionCaches>()>;

// The AdmissionReview answers (the response bodies) to a request body.
std::string mutate_review(std::string_view body);
std::string validate_review(std::string_view body, const std::optional<AdmissionCaches>& caches);

// Routes both paths on `server` (POST, application/json answers).
void serve_webhooks(HttpServer& server, AdmissionCachesSource caches);

}  // namespace stowage::engine
