// AdmissionReview v1 from untrusted bytes: what is read, every refusal naming its field or limit,
// and the answer's shape (uid echoed, status, base64 JSONPatch, warnings).
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include "common/crypto.hpp"
#include "kube/admission_review.hpp"

using namespace stowage;
using namespace stowage::kube;
namespace json = boost::json;

namespace {

json::object valid_request() {
  return json::object{
      {"uid", "705ab4f5-6393-11e8-b7cc-42010a800002"},
      {"kind", {{"group", "storage.kubestash.com"}, {"version", "v1alpha1"}, {"kind", "BackupStorage"}}},
      {"resource", {{"group", "storage.kubestash.com"}, {"version", "v1alpha1"}, {"resource", "backupstorages"}}},
      {"requestKind", {{"group", "storage.kubestash.com"}, {"version", "v1alpha1"}, {"kind", "BackupStorage"}}},
      {"name", "s3"},
      {"namespace", "demo"},
      {"operation", "UPDATE"},
      {"userInfo", {{"username", "admin"}, {"groups", json::array{"system:authenticated"}}}},
      {"object", {{"apiVersion", "storage.kubestash.com/v1alpha1"}, {"kind", "BackupStorage"}}},
      {"oldObject", {{"apiVersion", "storage.kubestash.com/v1alpha1"}, {"kind", "BackupStorage"}, {"spec", json::object{}}}},
      {"dryRun", true},
      {"options", {{"apiVersion", "meta.k8s.io/v1"}, {"kind", "UpdateOptions"}}}};
}

std::string body(const json::object& request) {
  return json::serialize(json::object{{"apiVersion", "admission.k8s.io/v1"}, {"kind", "AdmissionReview"}, {"request", request}});
}

std::string refusal(std::string_view text, std::size_t max = kMaxAdmissionReviewBytes) {
  auto r = parse_admission_review(text, max);
  REQUIRE_FALSE(r.ok());
  return r.error().to_string();
}

}  // namespace

TEST_CASE("admission review: a v1 request is read whole") {
  auto r = parse_admission_review(body(valid_request()));
  REQUIRE(r.ok());
  const auto& q = r.value();
  CHECK(q.uid == "705ab4f5-6393-11e8-b7cc-42010a800002");
  CHECK(q.operation == "UPDATE");
  CHECK(q.group == "storage.kubestash.com");
  CHECK(q.version == "v1alpha1");
  CHECK(q.resource == "backupstorages");
  CHECK(q.sub_resource.empty());
  CHECK(q.kind == "BackupStorage");
  CHECK(q.name == "s3");
  CHECK(q.namespace_ == "demo");
  CHECK(q.dry_run);
  CHECK(q.object.at("kind") == "BackupStorage");
  CHECK(q.old_object.at("spec").is_object());
  // A CREATE has no oldObject; null counts as absent.
  auto create = valid_request();
  create["operation"] = "CREATE";
  create["oldObject"] = nullptr;
  auto c = parse_admission_review(body(create));
  REQUIRE(c.ok());
  CHECK(c.value().old_object.is_null());
}

TEST_CASE("admission review: bad bodies are refused with the field or the limit named") {
  CHECK(refusal("") == "the request has no body: expected an AdmissionReview (JSON)");
  CHECK_THAT(refusal("{\"apiVersion\":"), Catch::StartsWith("the body is not JSON: "));
  CHECK(refusal("[1]") == "expected an AdmissionReview object, got an array");
  CHECK(refusal(std::string(100, ' '), 99) == "the AdmissionReview is 100 bytes, more than the limit of 99");
  // Deeper than any Kubernetes object nests: refused by the parser, not by the stack.
  std::string deep = std::string(100000, '[') + std::string(100000, ']');
  CHECK_THAT(refusal(deep), Catch::StartsWith("the body is not JSON: "));
  CHECK_THAT(refusal(R"({"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{}})"),
             Catch::StartsWith("apiVersion: expected admission.k8s.io/v1, got \"admission.k8s.io/v1beta1\""));
  CHECK(refusal(R"({"apiVersion":"admission.k8s.io/v1","kind":"Pod"})") == "kind: expected AdmissionReview, got \"Pod\"");
  CHECK(refusal(R"({"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"})") ==
        "request: missing: an AdmissionReview sent to a webhook has a request");

  auto broken = [](const char* key, json::value value) {
    auto request = valid_request();
    if (value.is_null())
      request.erase(key);
    else
      request[key] = std::move(value);
    return refusal(body(request));
  };
  CHECK(broken("uid", nullptr) == "request.uid: expected a non-empty string");
  CHECK_THAT(broken("uid", 7), Catch::StartsWith("request.uid: expected a string"));
  CHECK(broken("operation", "PATCH") == "request.operation: expected CREATE, UPDATE, DELETE or CONNECT, got \"PATCH\"");
  CHECK_THAT(broken("object", "text"), Catch::StartsWith("request.object: expected an object"));
  CHECK_THAT(broken("oldObject", json::array{}), Catch::StartsWith("request.oldObject: expected an object"));
  CHECK_THAT(broken("resource", "backupstorages"), Catch::StartsWith("request.resource: expected an object"));
  CHECK_THAT(broken("dryRun", "yes"), Catch::StartsWith("request.dryRun: expected"));
}

TEST_CASE("admission review: the answer echoes the uid and carries status, patch and warnings") {
  auto denied = json::parse(admission_response("u-1", AdmissionVerdict::deny("no \"way\"")));
  CHECK(denied == json::parse(R"({"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview",
                                  "response":{"uid":"u-1","allowed":false,
                                              "status":{"code":403,"reason":"Forbidden","message":"no \"way\""}}})"));
  AdmissionVerdict patched;
  patched.patch.push_back(json::object{{"op", "add"}, {"path", "/spec/x"}, {"value", 1}});
  patched.warnings = {"careful"};
  auto answer = json::parse(admission_response("u-2", patched)).at("response");
  CHECK(answer.at("uid") == "u-2");
  CHECK(answer.at("allowed") == true);
  CHECK(answer.at("status").at("code") == 200);
  CHECK(answer.at("patchType") == "JSONPatch");
  auto decoded = crypto::base64_decode(std::string(answer.at("patch").as_string()));
  REQUIRE(decoded);
  CHECK(json::parse(*decoded) == json::parse(R"([{"op":"add","path":"/spec/x","value":1}])"));
  CHECK(answer.at("warnings") == json::array{"careful"});
  // A refusal never carries a patch.
  AdmissionVerdict both = AdmissionVerdict::bad_request("bad");
  both.patch = patched.patch;
  auto refused = json::parse(admission_response("", both)).at("response");
  CHECK_FALSE(refused.as_object().contains("patch"));
  CHECK(refused.at("status").at("code") == 400);
  CHECK(refused.at("status").at("reason") == "BadRequest");
}
