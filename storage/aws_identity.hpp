#pragma once
// The AWS default credential chain, the pure parts: which identity sources the process environment
// configures (discover_chain), the shared credentials/config files, the STS
// AssumeRoleWithWebIdentity request and reply, and the JSON credentials the container endpoint and
// instance metadata serve. Nothing here does I/O (storage/aws_credentials.hpp fetches and caches).
//
// The chain, in the order the issue and storage-backends.md give the SDKs' (first configured wins):
//   1. environment keys     AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN)
//   2. shared files         profile AWS_PROFILE (else "default") in AWS_SHARED_CREDENTIALS_FILE
//                           (~/.aws/credentials) and AWS_CONFIG_FILE (~/.aws/config): static keys, or
//                           role_arn + web_identity_token_file
//   3. web identity         AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE (+ AWS_ROLE_SESSION_NAME): IRSA
//   4. container            AWS_CONTAINER_CREDENTIALS_RELATIVE_URI (against 169.254.170.2), or
//                           AWS_CONTAINER_CREDENTIALS_FULL_URI with AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE
//                           or AWS_CONTAINER_AUTHORIZATION_TOKEN: ECS, EKS Pod Identity
//   5. instance metadata    IMDSv2, unless AWS_EC2_METADATA_DISABLED=true
// Unlike some SDKs, a configured source that fails is not skipped for the next one: a broken IRSA
// setup must not silently fall back to the node's instance role (another identity, often a broader
// one). Every source found is reported (names only) so `stowage run` can log them at start.
//
// Guarantees: errors name the variable, file, field or step, never a key, a token or a secret; the
// parsers never throw on any input (fuzz/aws_identity_fuzz.cpp).
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"
#include "common/time_format.hpp"
#include "storage/s3_signer.hpp"

namespace stowage::storage::aws {

// Keys, and when they stop working (none for long-lived keys).
struct TimedCredentials {
  s3::Credentials keys;
  std::optional<WallClock::time_point> expiration;
};

// ---- The process environment, as the chain reads it ----

// A snapshot of the variables the chain reads and the two shared files' contents (read once, at
// start: they are small, and the chain is decided then). Tests build one by hand.
struct Environment {
  std::map<std::string, std::string> variables;  // AWS_* and HOME; an absent one reads as ""
  std::optional<std::string> credentials_file;   // contents, when the file exists
  std::optional<std::string> config_file;
  std::string credentials_file_path, config_file_path;  // for messages
  std::vector<std::string> file_problems;               // a file that exists but cannot be read

  std::string get(const std::string& name) const;
  // The process's own: getenv, and the files read here (blocking, once, before the reactor runs).
  static Environment from_process();
};

enum class SourceKind { Environment, Profile, WebIdentity, Container, InstanceMetadata };

struct WebIdentitySettings {
  std::string role_arn;
  std::string token_file;    // re-read for every exchange (the kubelet rotates it)
  std::string session_name;  // "" = stowage-<unix seconds> at each exchange
  std::string sts_endpoint;  // "https://sts.<region>.amazonaws.com", or the override
};

struct ContainerSettings {
  std::string url;                 // full URL of the credentials endpoint
  std::string authorization_file;  // re-read for every request; wins over `authorization`
  std::string authorization;       // AWS_CONTAINER_AUTHORIZATION_TOKEN
};

struct InstanceMetadataSettings {
  std::string endpoint = "http://169.254.169.254";
};

// One configured source.
struct SourceSettings {
  SourceKind kind = SourceKind::Environment;
  std::string name;  // "web identity (AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE)": what logs and messages say
  // A source that is configured but cannot work ("AWS_PROFILE names profile `x`, which neither file
  // has"): it is still the chosen one, and every storage that would use it says this.
  std::string broken;
  s3::Credentials static_keys;                      // Environment, and Profile with keys
  std::optional<WebIdentitySettings> web_identity;  // WebIdentity, and Profile with role_arn
  std::optional<ContainerSettings> container;
  std::optional<InstanceMetadataSettings> instance_metadata;
};

struct Chain {
  std::vector<SourceSettings> found;  // in chain order; the first is the one used
  std::vector<std::string> warnings;  // a shared file that exists but could not be read
  const SourceSettings* active() const { return found.empty() ? nullptr : &found.front(); }
  std::vector<std::string> names() const;
};

Chain discover_chain(const Environment& env);

// ---- Shared files ----

// name -> key -> value, from an INI text as the AWS CLI writes it: `[section]` headers, `key = value`
// lines, '#' and ';' comments; keys lower-cased; indented lines (nested sub-sections) ignored.
using IniFile = std::map<std::string, std::map<std::string, std::string>>;
IniFile parse_ini(std::string_view text);

// ---- STS ----

// The STS endpoint for AssumeRoleWithWebIdentity: AWS_ENDPOINT_URL_STS, then AWS_ENDPOINT_URL, then
// the regional https://sts.<region>.amazonaws.com (global https://sts.amazonaws.com without a region
// or with AWS_STS_REGIONAL_ENDPOINTS=legacy).
std::string sts_endpoint(const Environment& env, const std::string& profile_region = "");

// The form body (Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=..&RoleSessionName=..
// &WebIdentityToken=..).
std::string web_identity_request_body(std::string_view role_arn, std::string_view session_name, std::string_view token);

// <AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials>: all four fields
// required, Expiration RFC 3339. The error names the missing element.
Result<TimedCredentials, std::string> parse_web_identity_reply(std::string_view xml);

// <ErrorResponse><Error><Code/><Message/></Error>; nullopt when the body is not one.
struct StsError {
  std::string code, message;
};
std::optional<StsError> parse_sts_error(std::string_view xml);

// ---- Container credentials and instance metadata ----

// {"AccessKeyId","SecretAccessKey","Token","Expiration"} (instance metadata adds "Code": "Success").
Result<TimedCredentials, std::string> parse_credentials_json(std::string_view json);

// Whether a full container-credentials URI may be used: https anywhere; plain http only to a
// loopback address or the ECS/EKS link-local endpoints (169.254.170.2, 169.254.170.23,
// fd00:ec2::23), as the SDKs allow. Empty when allowed, else why not.
std::string container_uri_problem(std::string_view url);

// The first line of the IMDS role listing; "" when none.
std::string first_role(std::string_view listing);

}  // namespace stowage::storage::aws
