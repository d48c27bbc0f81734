// The start-up log's identity detection, per provider, from a process view built by hand: which
// sources are named, in which order, and that names carry variable names, never values.
#include <catch2/catch.hpp>

#include <map>
#include <set>
#include <string>

#include "engine/cloud_identities.hpp"

using namespace stowage::engine;

namespace {

ProcessView view(std::map<std::string, std::string> variables, std::set<std::string> files = {}) {
  ProcessView p;
  p.env = [variables](const std::string& name) {
    auto it = variables.find(name);
    return it == variables.end() ? std::string() : it->second;
  };
  p.exists = [files](const std::string& path) { return files.count(path) > 0; };
  for (const auto& [name, value] : variables)
    if (name.rfind("AWS_", 0) == 0) p.aws.variables[name] = value;
  return p;
}

}  // namespace

TEST_CASE("cloud identities: nothing configured names the metadata servers only, as candidates") {
  auto p = view({{"AWS_EC2_METADATA_DISABLED", "true"}});
  CHECK(aws_identity_sources(p).empty());
  CHECK(azure_identity_sources(p) == std::vector<std::string>{"azure managed identity (IMDS) (not probed)"});
  CHECK(cloud_identities_line(cloud_identity_sources(p)) ==
        "cloud identities found: gcs metadata server (not probed), azure managed identity (IMDS) (not probed)");
  CHECK(cloud_identities_line({}) == "cloud identities found: none");
  CHECK(aws_identity_sources(view({})) == std::vector<std::string>{"aws instance metadata (IMDSv2) (not probed)"});
}

TEST_CASE("cloud identities: GCS application credentials, then the metadata server, the emulator is named") {
  auto p = view({{"GOOGLE_APPLICATION_CREDENTIALS", "/var/run/adc.json"}, {"GCE_METADATA_HOST", "10.0.0.1:8080"}},
                {"/var/run/adc.json"});
  CHECK(gcs_identity_sources(p) ==
        std::vector<std::string>{"gcs application credentials file (GOOGLE_APPLICATION_CREDENTIALS)",
                                 "gcs metadata server (GCE_METADATA_HOST, not probed)"});
  auto missing = view({{"GOOGLE_APPLICATION_CREDENTIALS", "/nowhere.json"}, {"STORAGE_EMULATOR_HOST", "localhost:9023"}});
  CHECK(gcs_identity_sources(missing) ==
        std::vector<std::string>{"gcs emulator without credentials (STORAGE_EMULATOR_HOST)",
                                 "gcs application credentials file (GOOGLE_APPLICATION_CREDENTIALS, which names no file)",
                                 "gcs metadata server (not probed)"});
}

TEST_CASE("cloud identities: Azure's chain as its storages will use it, a partial set marked not usable") {
  auto all = view({{"AZURE_CLIENT_ID", "c"}, {"AZURE_TENANT_ID", "contoso.onmicrosoft.com"},
                   {"AZURE_FEDERATED_TOKEN_FILE", "/f"}});
  CHECK(azure_identity_sources(all) ==
        std::vector<std::string>{"azure workload identity (AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_FEDERATED_TOKEN_FILE)",
                                 "azure managed identity (IMDS, AZURE_CLIENT_ID) (not probed)"});
  auto partial = view({{"AZURE_FEDERATED_TOKEN_FILE", "/f"}});
  CHECK(azure_identity_sources(partial) ==
        std::vector<std::string>{"azure workload identity (AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_FEDERATED_TOKEN_FILE) "
                                 "(not usable: see a storage's status)",
                                 "azure managed identity (IMDS) (not probed)"});
  auto principal = view({{"AZURE_CLIENT_ID", "c"}, {"AZURE_TENANT_ID", "contoso.onmicrosoft.com"},
                         {"AZURE_CLIENT_SECRET", "s3cr3t-value"}});
  auto found = azure_identity_sources(principal);
  REQUIRE(found.size() == 2);
  CHECK(found.front() == "azure service principal (AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET)");
}

TEST_CASE("cloud identities: AWS sources in the chain's order, every provider in one line, no value in it") {
  auto p = view({{"AWS_ACCESS_KEY_ID", "AKIAEXAMPLEKEY"},
                 {"AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI-secret"},
                 {"AWS_ROLE_ARN", "arn:aws:iam::1:role/r"},
                 {"AWS_WEB_IDENTITY_TOKEN_FILE", "/t"},
                 {"AWS_EC2_METADATA_DISABLED", "true"},
                 {"AZURE_CLIENT_ID", "c"},
                 {"AZURE_TENANT_ID", "contoso.onmicrosoft.com"},
                 {"AZURE_FEDERATED_TOKEN_FILE", "/f"}});
  std::string line = cloud_identities_line(cloud_identity_sources(p));
  CHECK(line ==
        "cloud identities found: aws environment keys (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), aws web identity "
        "(AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE), gcs metadata server (not probed), azure workload identity "
        "(AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_FEDERATED_TOKEN_FILE), azure managed identity (IMDS, AZURE_CLIENT_ID) "
        "(not probed)");
  CHECK(line.find("AKIAEXAMPLEKEY") == std::string::npos);
  CHECK(line.find("wJalrXUtnFEMI") == std::string::npos);
}
