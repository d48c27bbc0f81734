// kube/yaml_json: every manifest file and kubeconfig goes through parse_yaml_documents. It must never
// crash or throw, and what to_yaml writes of a parsed document must read back (stowage get -o yaml).
#include "fuzz/fuzz_support.hpp"
#include "kube/yaml_json.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace stowage;
  auto parsed = kube::parse_yaml_documents(fuzz::text_of(data, size));
  if (!parsed) return 0;
  for (const auto& document : parsed.value()) {
    std::string yaml = kube::to_yaml(document.value);
    auto again = kube::parse_yaml_documents(yaml);
    if (!again.ok()) {
      std::fprintf(stderr, "to_yaml wrote:\n%s\nwhich fails at line %d column %d: %s\n", yaml.c_str(),
                   again.error().line, again.error().column, again.error().message.c_str());
    }
    fuzz::require(again.ok(), "to_yaml of a parsed document does not parse");
  }
  return 0;
}
