#include "engine/backends.hpp"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <variant>

#include <boost/asio/thread_pool.hpp>

#include "storage/aws_credentials.hpp"
#include "storage/azure_backend.hpp"
#include "storage/azure_credentials.hpp"
#include "storage/gcs_auth.hpp"
#include "storage/gcs_backend.hpp"
#include "storage/gcs_token.hpp"
#include "common/http_client.hpp"
#include "common/url.hpp"
#include "storage/local_backend.hpp"
#include "storage/s3_backend.hpp"

namespace stowage::engine {

namespace {
namespace fs = std::filesystem;

bool has_dotdot(const fs::path& p) {
  for (const auto& part : p)
    if (part == "..") return true;
  return false;
}

std::string where(const kube::Secret& secret) { return secret.metadata.namespace_ + "/" + secret.metadata.name; }

std::string value(const kube::Secret* secret, const char* key);

// The S3 keys become header values (see storage/s3_signer.hpp): a control character (an injected
// header, or a line break from `echo`) or an impossible length is reported here with the Secret's
// name, the key and the position, never the value. (The backend refuses them too, for credentials
// from anywhere else.)
std::string check_s3_values(const kube::Secret& secret) {
  storage::s3::Credentials c{value(&secret, "AWS_ACCESS_KEY_ID"), value(&secret, "AWS_SECRET_ACCESS_KEY"),
                             value(&secret, "AWS_SESSION_TOKEN")};
  auto bad = storage::s3::credentials_problem(c);
  if (!bad) return {};
  std::string fix = bad->problem.trailing_newline
                        ? ": write the value without it (`echo -n`, or `kubectl create secret generic --from-literal`)"
                        : ": fix the value";
  return "storage secret " + where(secret) + ": " + bad->to_string() + fix;
}

std::string check_secret(const kube::BackupStorage& s, const kube::Secret* secret) {
  if (!secret) return {};
  for (const auto& k : secret->invalid_keys)
    return "storage secret " + where(*secret) + ": the value of key " + k +
           " is not valid Base64; encode it with `base64 -w0` or put the plain value under stringData";
  if (s.spec.storage.provider == "azure") {
    for (const char* k : {"AZURE_ACCOUNT_KEY", "AZURE_SAS_TOKEN", "AZURE_STORAGE_CONNECTION_STRING"})
      if (secret->data.count(k)) return {};
    if (secret->data.count("AZURE_CLIENT_SECRET")) {  // a service principal
      for (const char* k : {"AZURE_TENANT_ID", "AZURE_CLIENT_ID"})
        if (value(secret, k).empty())
          return "storage secret " + where(*secret) + " has AZURE_CLIENT_SECRET but no " + k +
                 " key: a service principal needs AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET";
      return {};
    }
    return "storage secret " + where(*secret) +
           " missing AZURE_ACCOUNT_KEY key (or AZURE_SAS_TOKEN, or AZURE_STORAGE_CONNECTION_STRING, or a service "
           "principal's AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET)";
  }
  for (const auto& k : BackendFactory::required_keys(s.spec.storage.provider))
    if (!secret->data.count(k)) return "storage secret " + where(*secret) + " missing " + k + " key";
  if (s.spec.storage.provider == "s3") return check_s3_values(*secret);
  return {};
}

std::string value(const kube::Secret* secret, const char* key) {
  if (!secret) return {};
  auto it = secret->data.find(key);
  return it == secret->data.end() ? std::string() : it->second;
}

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

std::string trim_trailing_slashes(std::string s) {
  while (!s.empty() && s.back() == '/') s.pop_back();
  return s;
}

// The GOOGLE_APPLICATION_CREDENTIALS file, read whole once at start (before the reactor runs),
// bounded like every credentials file.
CloudSettings::GcsApplicationCredentials read_gcs_application_credentials(std::string path) {
  CloudSettings::GcsApplicationCredentials out;
  out.path = std::move(path);
  if (out.path.empty()) return out;
  std::ifstream in(out.path, std::ios::binary);
  if (!in) {
    out.problem = "GOOGLE_APPLICATION_CREDENTIALS names " + out.path + ", which cannot be opened";
    return out;
  }
  out.text.assign(storage::gcs::kMaxCredentialsFileBytes + 1, '\0');
  in.read(out.text.data(), static_cast<std::streamsize>(out.text.size()));
  out.text.resize(static_cast<std::size_t>(in.gcount()));
  return out;  // a file over the limit is refused by the parser, with the file named
}

// The controller's own GCS identity from GOOGLE_APPLICATION_CREDENTIALS: a token source, or why not.
struct GcsIdentity {
  std::shared_ptr<storage::gcs::TokenSource> source;
  std::string problem;
};
GcsIdentity gcs_identity(const CloudSettings::GcsApplicationCredentials& file, boost::asio::thread_pool& pool) {
  if (file.path.empty()) return {};
  if (!file.problem.empty()) return {nullptr, file.problem};
  const std::string name = "GOOGLE_APPLICATION_CREDENTIALS file " + file.path;
  auto parsed = storage::gcs::parse_application_credentials(file.text, name);
  if (!parsed) return {nullptr, parsed.error().message};
  if (auto* key = std::get_if<storage::gcs::ServiceAccountKey>(&parsed.value()))
    return {storage::gcs::TokenSource::for_service_account(*key, name + " (service_account)"), {}};
  auto& account = std::get<storage::gcs::ExternalAccount>(parsed.value());
  return {storage::gcs::TokenSource::for_external_account(account, name + " (external_account)",
                                                          pool.get_executor()),
          {}};
}

// A storage that names a Secret which is gone (a WipeOut reaches the factory without one) is never
// given the controller's own credentials instead.
std::string named_secret_missing(const kube::BackupStorage& s, const std::string& secret_name) {
  return "storage secret " + s.metadata.namespace_ + "/" + secret_name + " (spec.storage." + s.spec.storage.provider +
         ".secretName) not found: create it; a storage that names a Secret never uses the controller's own "
         "credentials";
}
}  // namespace

AmbientCredentialsPolicy AmbientCredentialsPolicy::only(std::vector<std::string> names) {
  AmbientCredentialsPolicy policy;
  for (auto& name : names) {
    if (name == "*")
      policy.every_namespace = true;
    else
      policy.namespaces.push_back(std::move(name));
  }
  return policy;
}

bool AmbientCredentialsPolicy::allows(const std::string& namespace_) const {
  return every_namespace || std::find(namespaces.begin(), namespaces.end(), namespace_) != namespaces.end();
}

std::string ambient_credentials_refusal(const AmbientCredentialsPolicy& policy, const kube::BackupStorage& storage) {
  const std::string& ns = storage.metadata.namespace_;
  if (policy.allows(ns)) return {};
  return "spec.storage." + storage.spec.storage.provider + ".secretName is empty and namespace " + ns +
         " may not use the controller's own credentials: set secretName, or add " + ns +
         " to --ambient-credentials-namespaces";
}

CloudSettings CloudSettings::from_environment(std::string gcs_endpoint, std::size_t max_connections) {
  CloudSettings c;
  c.gcs_endpoint = std::move(gcs_endpoint);
  c.storage_emulator_host = env("STORAGE_EMULATOR_HOST");
  c.gce_metadata_host = env("GCE_METADATA_HOST");
  c.gcs_application_credentials = read_gcs_application_credentials(env("GOOGLE_APPLICATION_CREDENTIALS"));
  c.max_connections = max_connections;
  c.aws_chain = storage::aws::discover_chain(storage::aws::Environment::from_process());
  c.azure_chain = storage::azure::discover_chain(storage::azure::IdentityEnvironment::from_process());
  c.azure_authority_host = env("AZURE_AUTHORITY_HOST");
  return c;
}

BackendFactory::BackendFactory(boost::asio::thread_pool& io_pool, LocalSettings local, http::Client& http,
                               CloudSettings cloud)
    : pool_(io_pool),
      local_(std::move(local)),
      http_(http),
      cloud_(std::move(cloud)),
      aws_identity_(storage::aws::make_provider(cloud_.aws_chain, http_, pool_.get_executor())),
      azure_identity_(storage::azure::make_provider(cloud_.azure_chain, http_, pool_.get_executor())),
      azure_principals_(std::make_shared<storage::azure::ServicePrincipalRegistry>()) {
  auto gcs = gcs_identity(cloud_.gcs_application_credentials, pool_);
  gcs_identity_ = std::move(gcs.source);
  gcs_identity_problem_ = std::move(gcs.problem);
  std::error_code ec;
  fs::path root = fs::absolute(local_.root, ec);
  local_.root = (ec ? local_.root : root).lexically_normal();
  if (local_.root.has_relative_path() && !local_.root.has_filename()) local_.root = local_.root.parent_path();
}

std::size_t BackendFactory::connections(std::int64_t from_spec) const {
  return from_spec > 0 ? static_cast<std::size_t>(from_spec) : cloud_.max_connections;
}

BackendFactory::Made BackendFactory::make_s3(const kube::BackupStorage& s, const kube::Secret* secret) const {
  const auto& spec = *s.spec.storage.s3;
  if (trim_trailing_slashes(spec.bucket).empty()) return Err("spec.storage.s3.bucket is required");
  storage::S3Options o;
  o.endpoint = trim_trailing_slashes(spec.endpoint);
  o.bucket = trim_trailing_slashes(spec.bucket);
  o.prefix = trim_trailing_slashes(spec.prefix);
  o.region = spec.region;
  o.max_connections = connections(spec.max_connections);
  o.tls.insecure = spec.insecure_tls;
  if (secret) {
    o.access_key_id = value(secret, "AWS_ACCESS_KEY_ID");
    o.secret_access_key = value(secret, "AWS_SECRET_ACCESS_KEY");
    o.session_token = value(secret, "AWS_SESSION_TOKEN");
    o.tls.ca_pem = value(secret, "CA_CERT_DATA");
  } else if (!spec.secret_name.empty()) {
    return Err(named_secret_missing(s, spec.secret_name));
  } else if (auto refused = ambient_credentials_refusal(cloud_.ambient, s); !refused.empty()) {
    return Err(refused);
  } else if (aws_identity_) {
    o.credential_provider = aws_identity_;  // credential-less: the controller's own identity
  } else {
    return Err(std::string(
        "spec.storage.s3.secretName is empty and the controller has no AWS identity of its own: set secretName, "
        "or give the controller one (environment keys, a shared credentials profile, IRSA web identity, container "
        "credentials; instance metadata is off: AWS_EC2_METADATA_DISABLED)"));
  }
  return Made(std::make_unique<storage::S3Backend>(http_, std::move(o)));
}

BackendFactory::Made BackendFactory::make_gcs(const kube::BackupStorage& s, const kube::Secret* secret) const {
  const auto& spec = *s.spec.storage.gcs;
  if (trim_trailing_slashes(spec.bucket).empty()) return Err("spec.storage.gcs.bucket is required");
  storage::GcsOptions o;
  o.bucket = trim_trailing_slashes(spec.bucket);
  o.prefix = trim_trailing_slashes(spec.prefix);
  o.max_connections = connections(spec.max_connections);
  o.service_account_json = value(secret, "GOOGLE_SERVICE_ACCOUNT_JSON_KEY");
  o.tls.ca_pem = value(secret, "CA_CERT_DATA");
  o.metadata_host = cloud_.gce_metadata_host;
  if (!cloud_.gcs_endpoint.empty()) {
    o.endpoint = cloud_.gcs_endpoint;
  } else if (!cloud_.storage_emulator_host.empty()) {
    const auto& h = cloud_.storage_emulator_host;
    o.endpoint = url::has_scheme(h) ? h : "http://" + h;
    o.emulator = true;
  }
  // Without a key the backend uses the controller's own identity: GOOGLE_APPLICATION_CREDENTIALS
  // when set (a broken file is reported, never skipped for the metadata server: that is another
  // identity), else the metadata server. An emulator takes no credentials at all, so it lends
  // nobody anything.
  if (!o.emulator && o.service_account_json.empty()) {
    if (secret)
      return Err("storage secret " + where(*secret) +
                 ": GOOGLE_SERVICE_ACCOUNT_JSON_KEY is empty: put the service account's JSON key there");
    if (!spec.secret_name.empty()) return Err(named_secret_missing(s, spec.secret_name));
    if (auto refused = ambient_credentials_refusal(cloud_.ambient, s); !refused.empty()) return Err(refused);
    if (!gcs_identity_problem_.empty()) return Err(gcs_identity_problem_);
    o.own_identity = gcs_identity_;
  }
  return Made(std::make_unique<storage::GcsBackend>(http_, std::move(o)));
}

BackendFactory::Made BackendFactory::make_azure(const kube::BackupStorage& s, const kube::Secret* secret) const {
  const auto& spec = *s.spec.storage.azure;
  storage::AzureOptions o;
  o.storage_account = spec.storage_account;
  o.container = trim_trailing_slashes(spec.container);
  o.prefix = trim_trailing_slashes(spec.prefix);
  o.max_connections = connections(spec.max_connections);
  o.endpoint = cloud_.azure_endpoint;
  o.account_key = value(secret, "AZURE_ACCOUNT_KEY");
  o.sas_token = value(secret, "AZURE_SAS_TOKEN");
  o.connection_string = value(secret, "AZURE_STORAGE_CONNECTION_STRING");
  o.tls.ca_pem = value(secret, "CA_CERT_DATA");
  if (o.container.empty()) return Err("spec.storage.azure.container is required");
  if (o.storage_account.empty() && o.connection_string.empty())
    return Err("spec.storage.azure.storageAccount is required");
  if (secret) {
    if (o.account_key.empty() && o.sas_token.empty() && o.connection_string.empty() &&
        !value(secret, "AZURE_CLIENT_SECRET").empty()) {
      // A service principal in the Secret (check_secret saw all three keys): its own cached token.
      storage::azure::ClientCredentialSettings sp;
      if (!cloud_.azure_authority_host.empty()) sp.authority_host = cloud_.azure_authority_host;
      sp.tenant_id = value(secret, "AZURE_TENANT_ID");
      sp.client_id = value(secret, "AZURE_CLIENT_ID");
      sp.client_secret = value(secret, "AZURE_CLIENT_SECRET");
      if (auto bad = storage::azure::client_credentials_problem(sp); !bad.empty())
        return Err("storage secret " + where(*secret) + ": " + bad);
      o.token_provider = azure_principals_->provider(sp, "service principal " + sp.client_id + " (storage secret " +
                                                             where(*secret) + ")",
                                                     http_, pool_.get_executor());
    }
  } else if (!spec.secret_name.empty()) {
    return Err(named_secret_missing(s, spec.secret_name));
  } else if (auto refused = ambient_credentials_refusal(cloud_.ambient, s); !refused.empty()) {
    return Err(refused);
  } else {
    o.token_provider = azure_identity_;  // credential-less: the controller's own identity
  }
  return Made(std::make_unique<storage::AzureBackend>(http_, std::move(o)));
}

std::vector<std::string> BackendFactory::required_keys(const std::string& provider) {
  if (provider == "s3") return {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"};
  if (provider == "gcs") return {"GOOGLE_SERVICE_ACCOUNT_JSON_KEY"};
  if (provider == "azure") return {"AZURE_ACCOUNT_KEY"};
  return {};
}

Result<fs::path, std::string> local_directory(const fs::path& root, const kube::LocalSpec& local) {
  if (local.volume_type.empty())
    return Err("spec.storage.local has no volume source: add one of hostPath, persistentVolumeClaim, nfs, ...");
  fs::path mount(local.mount_path);
  if (local.mount_path.empty() || !mount.is_absolute() || has_dotdot(mount))
    return Err("spec.storage.local.mountPath must be an absolute path without '..', got \"" + local.mount_path + "\"");
  fs::path sub(local.sub_path);
  if (sub.is_absolute() || has_dotdot(sub))
    return Err("spec.storage.local.subPath must be a relative path without '..', got \"" + local.sub_path + "\"");
  fs::path inside;
  if (local.volume_type == "hostPath") {
    fs::path host(local.host_path);
    if (local.host_path.empty() || !host.is_absolute() || has_dotdot(host))
      return Err("spec.storage.local.hostPath.path must be an absolute path without '..', got \"" + local.host_path +
                 "\"");
    inside = host.relative_path() / sub;
  } else {
    inside = mount.relative_path();  // the volume is mounted there, subPath already applied
  }
  fs::path dir = (root / inside).lexically_normal();
  if (dir.has_relative_path() && !dir.has_filename()) dir = dir.parent_path();  // no trailing slash
  return dir;
}

Result<std::unique_ptr<storage::Backend>, std::string> BackendFactory::make(const kube::BackupStorage& s,
                                                                            const kube::Secret* secret) const {
  const auto& st = s.spec.storage;
  if (st.provider.empty()) return Err("spec.storage.provider is not set: set it to one of local, s3, gcs, azure");
  if (st.provider == "local") {
    if (!st.local) return Err("spec.storage.local is missing for provider local");
    auto dir = local_directory(local_.root, *st.local);
    if (!dir.ok()) return Err(dir.error());
    storage::LocalBackendOptions opts;
    opts.directory = dir.value();
    opts.create_directory = st.local->volume_type == "hostPath";
    opts.root = local_.root;
    opts.protected_paths = local_.protected_paths;
    opts.stop = local_.stop;
    return std::unique_ptr<storage::Backend>(std::make_unique<storage::LocalBackend>(pool_, std::move(opts)));
  }
  if (st.provider == "s3" || st.provider == "gcs" || st.provider == "azure") {
    bool has_section = (st.provider == "s3" && st.s3) || (st.provider == "gcs" && st.gcs) ||
                       (st.provider == "azure" && st.azure);
    if (!has_section) return Err("spec.storage." + st.provider + " is missing for provider " + st.provider);
    if (auto err = check_secret(s, secret); !err.empty()) return Err(err);
    if (st.provider == "s3") return make_s3(s, secret);
    if (st.provider == "gcs") return make_gcs(s, secret);
    return make_azure(s, secret);
  }
  return Err("spec.storage.provider \"" + st.provider + "\" is not supported: use one of local, s3, gcs, azure");
}

}  // namespace stowage::engine
