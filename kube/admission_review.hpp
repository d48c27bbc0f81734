#pragma once
// AdmissionReview (admission.k8s.io/v1) as an admission webhook reads and answers it. The request
// body comes from whoever can reach the webhook's port, so it is read as untrusted bytes: a size
// limit checked before parsing, a JSON nesting limit, every field's type checked, and a failure is a
// ParseError naming the field ("request.uid: expected a non-empty string") — never an exception.
// The answer echoes the request's uid (the API server refuses an answer with another one) and, as
// controller-runtime's admission.Denied does, a refusal carries status {code: 403, reason:
// Forbidden, message}: kubectl then prints `admission webhook "NAME" denied the request: MESSAGE`.
// A mutation is a JSONPatch (RFC 6902), sent base64-encoded with patchType JSONPatch.
// Only v1 is read: the webhook configurations ask for it (admissionReviewVersions: [v1]).
#include <boost/json/array.hpp>
#include <boost/json/value.hpp>

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "kube/model.hpp"

namespace stowage::kube {

// An AdmissionReview holds the object and, for an update, its old version: each at most 1.5 MiB
// (etcd's limit), plus the review's own fields. 4 MiB leaves room for both with JSON's escaping.
inline constexpr std::size_t kMaxAdmissionReviewBytes = 4u << 20;
// Kubernetes objects nest far less (a pod template's affinity is about 12 levels inside the review).
inline constexpr unsigned kMaxAdmissionReviewDepth = 64;

struct AdmissionRequest {
  std::string uid;
  std::string operation;  // CREATE | UPDATE | DELETE | CONNECT
  std::string group, version, resource, sub_resource;  // request.resource and request.subResource
  std::string kind;                                    // request.kind.kind
  std::string name, namespace_;                        // name may be empty (generateName on CREATE)
  bool dry_run = false;
  boost::json::value object;      // null when absent (DELETE)
  boost::json::value old_object;  // null when absent (CREATE)
};

// Reads an AdmissionReview v1 request. `max_bytes` bounds the body before any parsing.
ParseResult<AdmissionRequest> parse_admission_review(std::string_view body,
                                                     std::size_t max_bytes = kMaxAdmissionReviewBytes);

struct AdmissionVerdict {
  bool allowed = true;
  int code = 200;             // status.code: 403 for a refusal (controller-runtime's Denied), 400 for a bad request
  std::string reason;         // status.reason: "Forbidden", "BadRequest"
  std::string message;        // status.message: what kubectl shows after "denied the request: "
  boost::json::array patch;   // JSONPatch operations; empty: none
  std::vector<std::string> warnings;

  static AdmissionVerdict allow() { return {}; }
  static AdmissionVerdict deny(std::string message);         // 403 Forbidden
  static AdmissionVerdict bad_request(std::string message);  // 400 BadRequest
};

// The AdmissionReview v1 answer, serialized. `uid` is the request's ("" when it could not be read).
std::string admission_response(std::string_view uid, const AdmissionVerdict& verdict);

}  // namespace stowage::kube
