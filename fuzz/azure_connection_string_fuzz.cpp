// storage/azure_auth: AZURE_STORAGE_CONNECTION_STRING, AZURE_SAS_TOKEN and AZURE_ACCOUNT_KEY from a
// tenant's Secret. Never throws, and no error message quotes the input's secret parts: an error
// never holds the account key or the SAS token the parser found.
#include "fuzz/fuzz_support.hpp"
#include "storage/azure_auth.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace stowage::storage;
  std::string_view text = stowage::fuzz::text_of(data, size);
  auto parsed = azure::parse_connection_string(text);
  if (parsed && !parsed.value().account_key.empty())
    (void)azure::SharedKey::make(parsed.value().account_name, parsed.value().account_key);
  if (parsed && !parsed.value().sas_token.empty()) (void)azure::normalize_sas_token(parsed.value().sas_token);
  (void)azure::normalize_sas_token(text);
  auto key = azure::SharedKey::make("account", text);
  if (key) (void)key.value().signature("GET\n\n");
  return 0;
}
