// kube/admission_review and engine/admission_defaults: the admission webhook's request body comes
// from whoever reaches its port. Input: the body. Properties: parsing never fails but with a value;
// the answer is JSON echoing the uid; the defaults, applied, ask for nothing more (the API server may
// call a mutating webhook twice and must see the same object).
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "engine/admission_defaults.hpp"
#include "fuzz/fuzz_support.hpp"
#include "kube/admission_review.hpp"

namespace {

// The add/replace operations backup_storage_defaults makes: object members only, no escapes.
void apply(boost::json::value& object, const boost::json::array& patch) {
  for (const auto& op : patch) {
    std::string path(op.at("path").as_string());
    boost::json::value* at = &object;
    for (std::size_t start = 1;;) {
      std::size_t slash = path.find('/', start);
      std::string key = path.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
      stowage::fuzz::require(at->is_object(), "a patch path through something other than an object");
      if (slash == std::string::npos) {
        at->as_object()[key] = op.at("value");
        break;
      }
      at = &at->as_object()[key];
      start = slash + 1;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace stowage;
  auto request = kube::parse_admission_review(fuzz::text_of(data, size));
  if (!request.ok()) {
    fuzz::require(!request.error().to_string().empty(), "a refusal without a reason");
    return 0;
  }
  kube::AdmissionVerdict verdict;
  verdict.patch = engine::backup_storage_defaults(request.value().object);
  auto answer = boost::json::parse(kube::admission_response(request.value().uid, verdict));
  fuzz::require(answer.at("response").at("uid").as_string() == request.value().uid, "the uid not echoed");
  if (!verdict.patch.empty()) {
    boost::json::value object = request.value().object;
    apply(object, verdict.patch);
    fuzz::require(engine::backup_storage_defaults(object).empty(), "defaults applied still ask for more");
  }
  return 0;
}
