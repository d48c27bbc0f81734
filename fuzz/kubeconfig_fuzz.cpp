// kube/client_config: a kubeconfig (KUBECONFIG, --kubeconfig) parsed, merged and turned into the
// client configuration of each of its contexts. Only kubeconfigs that name no file are turned into a
// configuration, so that the target never reads the machine's files. Never throws.
#include "fuzz/fuzz_support.hpp"
#include "kube/client_config.hpp"

namespace {

bool names_files(const stowage::kube::Kubeconfig& config) {
  for (const auto& [name, cluster] : config.clusters)
    if (!cluster.certificate_authority.empty()) return true;
  for (const auto& [name, user] : config.users)
    if (!user.token_file.empty() || !user.client_certificate.empty() || !user.client_key.empty()) return true;
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace stowage;
  auto parsed = kube::parse_kubeconfig(fuzz::text_of(data, size), "/fuzz/kubeconfig");
  if (!parsed) return 0;
  kube::Kubeconfig merged = kube::merge_kubeconfigs({parsed.value(), parsed.value()});
  for (const auto& [name, cluster] : merged.clusters) {
    (void)kube::parse_server_url(cluster.server, true);
    (void)kube::parse_server_url(cluster.server, false);
  }
  if (names_files(merged)) return 0;
  (void)kube::client_config_from_kubeconfig(merged);
  for (const auto& [name, context] : merged.contexts) {
    auto config = kube::client_config_from_kubeconfig(merged, name);
    if (config) (void)config.value().describe();
  }
  return 0;
}
