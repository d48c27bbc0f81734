// kube/exec_credential: what an exec credential plugin prints (JSON or YAML ExecCredential), read
// for both API versions. Never throws.
#include "fuzz/fuzz_support.hpp"
#include "kube/exec_credential.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace stowage::kube;
  std::string_view text = stowage::fuzz::text_of(data, size);
  for (const char* version : {kExecApiVersionV1, kExecApiVersionV1beta1}) {
    ExecConfig exec;
    exec.api_version = version;
    exec.command = "/usr/bin/get-token";
    auto credential = parse_exec_credential(text, exec);
    if (credential) (void)exec_credential_fresh(credential.value(), stowage::WallClock::now());
  }
  return 0;
}
