#pragma once
// Which cloud identity sources the process offers storages without a secretName, by name only, for
// `stowage run`'s start-up log: "cloud identities found: aws web identity (AWS_ROLE_ARN,
// AWS_WEB_IDENTITY_TOKEN_FILE), gcs application credentials file (GOOGLE_APPLICATION_CREDENTIALS), ...".
//
// Guarantees: detection reads environment variables and asks whether files exist (the AWS chain
// also reads its shared files, as it does at every start); it makes no network call, so the metadata
// servers are listed as candidates, "not probed". A name carries variable names, never a value, a
// path's content or a token. One small function per provider: a provider (or a source of one) is
// added by extending its function, and cloud_identity_sources() lists them in a fixed order.
#include <functional>
#include <string>
#include <vector>

#include "storage/aws_identity.hpp"

namespace stowage::engine {

// The process as the detectors see it; tests build one by hand.
struct ProcessView {
  std::function<std::string(const std::string&)> env;  // "" when unset
  std::function<bool(const std::string&)> exists;      // a file at this path
  storage::aws::Environment aws;                       // what the AWS chain reads

  static ProcessView real();  // getenv, the file system, aws::Environment::from_process()
};

// "aws " + the AWS default chain's sources, in its order (storage/aws_identity.hpp).
std::vector<std::string> aws_identity_sources(const ProcessView& process);
// GOOGLE_APPLICATION_CREDENTIALS, then the metadata server (GCE_METADATA_HOST), as Google's SDKs
// try them; STORAGE_EMULATOR_HOST is named too, since it turns authentication off.
std::vector<std::string> gcs_identity_sources(const ProcessView& process);
// "azure " + the Azure chain's sources, in its order (storage/azure_identity.hpp): a service principal,
// workload identity, then managed identity (IMDS, always, "not probed"); a configured source that
// cannot work (a partial set of variables) is marked so.
std::vector<std::string> azure_identity_sources(const ProcessView& process);

// Every provider's, AWS, GCS, Azure.
std::vector<std::string> cloud_identity_sources(const ProcessView& process);
// "cloud identities found: a, b, c" (or "cloud identities found: none").
std::string cloud_identities_line(const std::vector<std::string>& sources);

}  // namespace stowage::engine
