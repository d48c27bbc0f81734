// Cloud identity detection for the start-up log (see cloud_identities.hpp).
#include "engine/cloud_identities.hpp"

#include "storage/azure_identity.hpp"

#include <cstdlib>
#include <filesystem>

namespace stowage::engine {

ProcessView ProcessView::real() {
  ProcessView view;
  view.env = [](const std::string& name) {
    const char* v = std::getenv(name.c_str());
    return std::string(v ? v : "");
  };
  view.exists = [](const std::string& path) {
    std::error_code ec;
    return std::filesystem::exists(path, ec);
  };
  view.aws = storage::aws::Environment::from_process();
  return view;
}

std::vector<std::string> aws_identity_sources(const ProcessView& process) {
  std::vector<std::string> out;
  for (const auto& name : storage::aws::discover_chain(process.aws).names()) {
    bool probed_later = name.rfind("instance metadata", 0) == 0;
    out.push_back("aws " + name + (probed_later ? " (not probed)" : ""));
  }
  return out;
}

std::vector<std::string> gcs_identity_sources(const ProcessView& process) {
  std::vector<std::string> out;
  if (!process.env("STORAGE_EMULATOR_HOST").empty())
    out.emplace_back("gcs emulator without credentials (STORAGE_EMULATOR_HOST)");
  if (const std::string file = process.env("GOOGLE_APPLICATION_CREDENTIALS"); !file.empty())
    out.emplace_back(process.exists(file)
                         ? "gcs application credentials file (GOOGLE_APPLICATION_CREDENTIALS)"
                         : "gcs application credentials file (GOOGLE_APPLICATION_CREDENTIALS, which names no file)");
  out.emplace_back(process.env("GCE_METADATA_HOST").empty() ? "gcs metadata server (not probed)"
                                                            : "gcs metadata server (GCE_METADATA_HOST, not probed)");
  return out;
}

std::vector<std::string> azure_identity_sources(const ProcessView& process) {
  // The chain the Azure storages will use (storage/azure_identity.hpp), so that the line and the
  // storages never disagree; a configured source that cannot work is marked, without its values.
  storage::azure::IdentityEnvironment env;
  for (const char* name : {"AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_FEDERATED_TOKEN_FILE",
                           "AZURE_AUTHORITY_HOST", "AZURE_POD_IDENTITY_AUTHORITY_HOST"})
    if (auto value = process.env(name); !value.empty()) env.variables[name] = value;
  std::vector<std::string> out;
  for (const auto& source : storage::azure::discover_chain(env).found) {
    std::string name = "azure " + source.name;
    if (!source.broken.empty()) name += " (not usable: see a storage's status)";
    else if (source.kind == storage::azure::SourceKind::ManagedIdentity) name += " (not probed)";
    out.push_back(std::move(name));
  }
  return out;
}

std::vector<std::string> cloud_identity_sources(const ProcessView& process) {
  std::vector<std::string> all;
  for (auto* detect : {&aws_identity_sources, &gcs_identity_sources, &azure_identity_sources}) {
    auto found = detect(process);
    all.insert(all.end(), found.begin(), found.end());
  }
  return all;
}

std::string cloud_identities_line(const std::vector<std::string>& sources) {
  std::string line;
  for (const auto& s : sources) line += (line.empty() ? "" : ", ") + s;
  return "cloud identities found: " + (line.empty() ? std::string("none") : line);
}

}  // namespace stowage::engine
