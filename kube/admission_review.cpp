#include "kube/admission_review.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <array>

#include "common/crypto.hpp"
#include "kube/json_fields.hpp"

namespace stowage::kube {

namespace json = boost::json;

namespace {

constexpr std::string_view kApiVersion = "admission.k8s.io/v1";
constexpr std::array<std::string_view, 4> kOperations{"CREATE", "UPDATE", "DELETE", "CONNECT"};

ParseError error(std::string path, std::string message) { return ParseError{std::move(path), std::move(message)}; }

// An object member that must be an object, or null/absent (then `out` stays null).
fields::MaybeError read_any_object(const json::object& o, std::string_view key, const std::string& path,
                                   json::value& out) {
  const json::value* v = fields::member(o, key);
  if (!v) return std::nullopt;
  if (!v->is_object()) return fields::type_error(fields::join(path, key), "an object", *v, false);
  out = *v;
  return std::nullopt;
}

// request.resource / request.kind: {group, version, resource|kind}, all strings.
fields::MaybeError read_group_version(const json::object& request, std::string_view key, std::string_view last,
                                      std::string& group, std::string& version, std::string& name) {
  auto section = fields::read_object(request, key, "request");
  if (!section.ok()) return section.error();
  if (!section.value()) return std::nullopt;
  const std::string path = fields::join("request", key);
  return fields::read_strings(*section.value(), path, {{"group", &group}, {"version", &version}, {last, &name}});
}

}  // namespace

ParseResult<AdmissionRequest> parse_admission_review(std::string_view body, std::size_t max_bytes) {
  if (body.size() > max_bytes)
    return Err(error("", "the AdmissionReview is " + std::to_string(body.size()) + " bytes, more than the limit of " +
                             std::to_string(max_bytes)));
  if (body.empty()) return Err(error("", "the request has no body: expected an AdmissionReview (JSON)"));
  json::parse_options options;
  options.max_depth = kMaxAdmissionReviewDepth;
  boost::system::error_code ec;
  json::value doc = json::parse(json::string_view(body.data(), body.size()), ec, {}, options);
  if (ec) return Err(error("", "the body is not JSON: " + ec.message()));
  if (!doc.is_object()) return Err(fields::type_error("", "an AdmissionReview object", doc, false));
  const json::object& review = doc.get_object();

  std::string api_version, kind;
  if (auto e = fields::read_strings(review, "", {{"apiVersion", &api_version}, {"kind", &kind}})) return Err(*e);
  if (api_version != kApiVersion)
    return Err(error("apiVersion", "expected " + std::string(kApiVersion) + ", got " +
                                       fields::quoted_excerpt(api_version) +
                                       " (the webhook configuration must list admissionReviewVersions: [v1])"));
  if (kind != "AdmissionReview")
    return Err(error("kind", "expected AdmissionReview, got " + fields::quoted_excerpt(kind)));

  auto request_member = fields::read_object(review, "request", "");
  if (!request_member.ok()) return Err(request_member.error());
  if (!request_member.value())
    return Err(error("request", "missing: an AdmissionReview sent to a webhook has a request"));
  const json::object& request = *request_member.value();

  AdmissionRequest out;
  if (auto e = fields::read_strings(request, "request", {{"uid", &out.uid},
                                                         {"operation", &out.operation},
                                                         {"subResource", &out.sub_resource},
                                                         {"name", &out.name},
                                                         {"namespace", &out.namespace_}}))
    return Err(*e);
  if (out.uid.empty()) return Err(error("request.uid", "expected a non-empty string"));
  bool known = false;
  for (auto op : kOperations) known = known || out.operation == op;
  if (!known)
    return Err(error("request.operation",
                     "expected CREATE, UPDATE, DELETE or CONNECT, got " + fields::quoted_excerpt(out.operation)));
  if (auto e = read_group_version(request, "resource", "resource", out.group, out.version, out.resource))
    return Err(*e);
  std::string ignored_group, ignored_version;
  if (auto e = read_group_version(request, "kind", "kind", ignored_group, ignored_version, out.kind)) return Err(*e);
  if (auto e = fields::read_bool(request, "dryRun", "request", out.dry_run)) return Err(*e);
  if (auto e = read_any_object(request, "object", "request", out.object)) return Err(*e);
  if (auto e = read_any_object(request, "oldObject", "request", out.old_object)) return Err(*e);
  return out;
}

AdmissionVerdict AdmissionVerdict::deny(std::string message) {
  AdmissionVerdict v;
  v.allowed = false;
  v.code = 403;
  v.reason = "Forbidden";
  v.message = std::move(message);
  return v;
}

AdmissionVerdict AdmissionVerdict::bad_request(std::string message) {
  AdmissionVerdict v;
  v.allowed = false;
  v.code = 400;
  v.reason = "BadRequest";
  v.message = std::move(message);
  return v;
}

std::string admission_response(std::string_view uid, const AdmissionVerdict& verdict) {
  json::object status{{"code", verdict.code}};
  if (!verdict.reason.empty()) status["reason"] = verdict.reason;
  if (!verdict.message.empty()) status["message"] = verdict.message;
  json::object response{{"uid", json::string(uid)}, {"allowed", verdict.allowed}, {"status", std::move(status)}};
  if (verdict.allowed && !verdict.patch.empty()) {
    response["patchType"] = "JSONPatch";
    response["patch"] = crypto::base64_encode(json::serialize(verdict.patch));
  }
  if (!verdict.warnings.empty()) {
    json::array warnings;
    for (const auto& w : verdict.warnings) warnings.emplace_back(w);
    response["warnings"] = std::move(warnings);
  }
  json::object review{{"apiVersion", kApiVersion}, {"kind", "AdmissionReview"}, {"response", std::move(response)}};
  return json::serialize(review);
}

}  // namespace stowage::kube
