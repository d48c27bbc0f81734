// Azure's credential chain, the pure parts: see azure_identity.hpp.
#include "storage/azure_identity.hpp"

#include <algorithm>
#include <boost/json.hpp>
#include <cctype>
#include <charconv>
#include <cstdlib>

#include "common/header_values.hpp"
#include "common/http_client.hpp"
#include "common/url.hpp"

namespace stowage::storage::azure {
namespace {
namespace json = boost::json;

const char* kVariables[] = {"AZURE_TENANT_ID",          "AZURE_CLIENT_ID",      "AZURE_CLIENT_SECRET",
                            "AZURE_FEDERATED_TOKEN_FILE", "AZURE_AUTHORITY_HOST", "AZURE_POD_IDENTITY_AUTHORITY_HOST"};

std::string cut(std::string text, std::size_t limit = 300) {
  for (char& c : text)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  if (text.size() > limit) text = text.substr(0, limit) + "...";
  return text;
}

// A tenant is a GUID, a domain ("contoso.onmicrosoft.com") or "organizations"/"common": letters,
// digits, '-' and '.'. It becomes a path segment of the token URL: nothing else may pass.
bool valid_tenant(std::string_view t) {
  if (t.empty() || t.size() > 256 || t.front() == '.' || t.find("..") != std::string_view::npos) return false;
  return std::all_of(t.begin(), t.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.';
  });
}

bool is_loopback(const url::Parts& p) {
  const std::string& h = p.host;
  if (h == "localhost" || h == "::1") return true;
  return h.rfind("127.", 0) == 0 && std::count(h.begin(), h.end(), '.') == 3 &&
         std::all_of(h.begin(), h.end(), [](char c) { return c == '.' || (c >= '0' && c <= '9'); });
}

// A JSON number or a string of digits (IMDS sends "3599"); nullopt otherwise.
std::optional<std::int64_t> integer(const json::value* v) {
  if (v == nullptr) return std::nullopt;
  if (v->is_int64()) return v->as_int64();
  if (v->is_uint64() && v->as_uint64() <= static_cast<std::uint64_t>(INT64_MAX))
    return static_cast<std::int64_t>(v->as_uint64());
  if (v->is_double()) {
    double d = v->as_double();
    if (d >= 0 && d < 1e15) return static_cast<std::int64_t>(d);
    return std::nullopt;
  }
  if (!v->is_string()) return std::nullopt;
  std::string_view s = v->as_string();
  std::int64_t out = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty()) return std::nullopt;
  return out;
}

std::optional<json::object> parse_object(std::string_view body) {
  if (body.size() > kMaxTokenReplyBytes) return std::nullopt;
  boost::system::error_code ec;
  json::value doc = json::parse(body, ec);
  if (ec || !doc.is_object()) return std::nullopt;
  return std::move(doc.as_object());
}

}  // namespace

std::string IdentityEnvironment::get(const std::string& name) const {
  auto it = variables.find(name);
  return it == variables.end() ? std::string() : it->second;
}

IdentityEnvironment IdentityEnvironment::from_process() {
  IdentityEnvironment env;
  for (const char* name : kVariables)
    if (const char* v = std::getenv(name)) env.variables[name] = v;
  return env;
}

std::vector<std::string> Chain::names() const {
  std::vector<std::string> out;
  for (const auto& s : found) out.push_back(s.name);
  return out;
}

Chain discover_chain(const IdentityEnvironment& env) {
  Chain chain;
  const std::string tenant = env.get("AZURE_TENANT_ID"), client = env.get("AZURE_CLIENT_ID");
  ClientCredentialSettings base;
  if (auto host = env.get("AZURE_AUTHORITY_HOST"); !host.empty()) base.authority_host = host;
  base.tenant_id = tenant;
  base.client_id = client;
  auto add_client = [&](SourceKind kind, std::string name, ClientCredentialSettings settings,
                        const char* secret_variable) {
    SourceSettings s;
    s.kind = kind;
    s.name = std::move(name);
    if (tenant.empty() || client.empty())
      s.broken = std::string(secret_variable) + " is set but " + (tenant.empty() ? "AZURE_TENANT_ID" : "AZURE_CLIENT_ID") +
                 " is not: set both (the AKS workload identity webhook sets them with the service account's "
                 "azure.workload.identity/client-id annotation)";
    else
      s.broken = client_credentials_problem(settings);
    s.client = std::move(settings);
    chain.found.push_back(std::move(s));
  };
  // 1. A service principal's secret in the environment (EnvironmentCredential).
  if (!env.get("AZURE_CLIENT_SECRET").empty()) {
    ClientCredentialSettings c = base;
    c.client_secret = env.get("AZURE_CLIENT_SECRET");
    add_client(SourceKind::ServicePrincipal, "service principal (AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET)",
               std::move(c), "AZURE_CLIENT_SECRET");
  }
  // 2. Workload identity.
  if (!env.get("AZURE_FEDERATED_TOKEN_FILE").empty()) {
    ClientCredentialSettings c = base;
    c.assertion_file = env.get("AZURE_FEDERATED_TOKEN_FILE");
    add_client(SourceKind::WorkloadIdentity,
               "workload identity (AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_FEDERATED_TOKEN_FILE)", std::move(c),
               "AZURE_FEDERATED_TOKEN_FILE");
  }
  // 3. Managed identity, always the last resort.
  SourceSettings m;
  m.kind = SourceKind::ManagedIdentity;
  ManagedIdentitySettings settings;
  settings.client_id = client;
  m.name = "managed identity (IMDS";
  if (auto host = env.get("AZURE_POD_IDENTITY_AUTHORITY_HOST"); !host.empty()) {
    while (host.size() > 1 && host.back() == '/') host.pop_back();
    settings.host = host;
    m.name += ", AZURE_POD_IDENTITY_AUTHORITY_HOST";
    if (auto bad = endpoint_problem(host, true); !bad.empty()) m.broken = "AZURE_POD_IDENTITY_AUTHORITY_HOST " + bad;
  }
  if (!client.empty()) m.name += ", AZURE_CLIENT_ID";
  m.name += ")";
  m.managed = std::move(settings);
  chain.found.push_back(std::move(m));
  return chain;
}

std::string client_credentials_problem(const ClientCredentialSettings& s) {
  if (!valid_tenant(s.tenant_id))
    return "AZURE_TENANT_ID is not a tenant id (a GUID or a domain such as contoso.onmicrosoft.com)";
  if (s.client_id.empty()) return "AZURE_CLIENT_ID is empty";
  if (auto bad = http::check_header_value(s.client_id, 256)) return "AZURE_CLIENT_ID " + bad.describe();
  if (auto bad = endpoint_problem(s.authority_host, false); !bad.empty()) return "AZURE_AUTHORITY_HOST " + bad;
  return {};
}

std::string token_url(const ClientCredentialSettings& s) {
  std::string host = s.authority_host;
  while (!host.empty() && host.back() == '/') host.pop_back();
  return host + "/" + s.tenant_id + "/oauth2/v2.0/token";
}

std::string client_credentials_body(const ClientCredentialSettings& s, std::string_view assertion) {
  std::string body = "grant_type=client_credentials&client_id=" + http::uri_encode(s.client_id, false) +
                     "&scope=" + http::uri_encode(kStorageScope, false);
  if (!assertion.empty())
    body += "&client_assertion_type=" + http::uri_encode(kAssertionType, false) +
            "&client_assertion=" + http::uri_encode(assertion, false);
  else
    body += "&client_secret=" + http::uri_encode(s.client_secret, false);
  return body;
}

std::string imds_target(const ManagedIdentitySettings& s) {
  std::string target = "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=" +
                       http::uri_encode(kStorageResource, false);
  if (!s.client_id.empty()) target += "&client_id=" + http::uri_encode(s.client_id, false);
  return target;
}

std::string endpoint_problem(std::string_view text, bool link_local_ok) {
  auto parsed = url::parse(text, "");
  if (!parsed) return parsed.error();
  const url::Parts& p = parsed.value();
  if (p.scheme != "http" && p.scheme != "https") return "is not an http(s) URL";
  if (p.has_userinfo) return "has a user name or password before '@'";
  if (p.has_query || p.has_fragment) return "has a query or a fragment";
  if (p.scheme == "http" && !is_loopback(p) && !(link_local_ok && p.host == "169.254.169.254"))
    return "is plain http to a host that is not loopback: use https";
  return {};
}

Result<AccessToken, std::string> parse_token_reply(std::string_view body, WallClock::time_point now) {
  if (body.size() > kMaxTokenReplyBytes)
    return Err("the token reply is larger than " + std::to_string(kMaxTokenReplyBytes / 1024) + " KiB");
  auto o = parse_object(body);
  if (!o) return Err(std::string("the token reply is not a JSON object"));
  const json::value* token = o->if_contains("access_token");
  if (token == nullptr || !token->is_string() || token->as_string().empty())
    return Err(std::string("the token reply has no access_token"));
  if (const json::value* type = o->if_contains("token_type");
      type != nullptr && (!type->is_string() || (type->as_string() != "Bearer" && type->as_string() != "bearer")))
    return Err(std::string("the token reply's token_type is not Bearer"));
  AccessToken out;
  out.token = std::string(token->as_string());
  if (auto bad = http::check_bearer_token(out.token, kMaxAccessTokenBytes))
    return Err("the token reply's access_token " + bad.describe());
  // expires_in (seconds from now) first; IMDS also sends expires_on (Unix seconds).
  constexpr std::int64_t kYear = 366LL * 24 * 3600;
  if (auto in = integer(o->if_contains("expires_in"))) {
    if (*in <= 0 || *in > kYear) return Err(std::string("the token reply's expires_in is not a number of seconds from 1 to a year"));
    out.expires_at = now + std::chrono::seconds(*in);
  } else if (auto on = integer(o->if_contains("expires_on"))) {
    // Bounded like expires_in: a token never lives a year, and WallClock (nanoseconds) cannot hold
    // times past 2262, so a larger number would overflow the conversion.
    const std::int64_t now_s = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
    if (*on <= 0 || *on > now_s + kYear)
      return Err(std::string("the token reply's expires_on is not a Unix time within a year from now"));
    out.expires_at = WallClock::time_point(std::chrono::seconds(*on));
  } else {
    return Err(std::string("the token reply has neither expires_in nor expires_on"));
  }
  return out;
}

std::optional<OAuthError> parse_oauth_error(std::string_view body) {
  auto o = parse_object(body);
  if (!o) return std::nullopt;
  const json::value* error = o->if_contains("error");
  if (error == nullptr || !error->is_string()) return std::nullopt;
  OAuthError out{cut(std::string(error->as_string()), 80), {}};
  if (const json::value* d = o->if_contains("error_description"); d != nullptr && d->is_string())
    out.description = cut(std::string(d->as_string()));
  return out;
}

}  // namespace stowage::storage::azure
