// Azure Shared Key, SAS and connection strings (see azure_auth.hpp for the exact rules).
#include "storage/azure_auth.hpp"

#include <algorithm>
#include <cctype>
#include <ctime>
#include <map>
#include <optional>
#include <utility>
#include <vector>

#include "common/crypto.hpp"
#include "common/header_values.hpp"
#include "common/url.hpp"

namespace stowage::storage::azure {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// Trimmed, with every run of linear whitespace replaced by one space (Shared Key rule 4).
std::string collapse_whitespace(std::string_view s) {
  s = trim(s);
  std::string out;
  bool in_space = false;
  for (char c : s) {
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
      in_space = true;
      continue;
    }
    if (in_space) out.push_back(' ');
    in_space = false;
    out.push_back(c);
  }
  return out;
}

std::optional<std::string> find_header(const http::Request& request, std::string_view name) {
  for (const auto& [k, v] : request.headers)
    if (iequals(k, name)) return v;
  return std::nullopt;
}



std::string two_digits(int v) {
  std::string s = std::to_string(v);
  return s.size() < 2 ? "0" + s : s;
}

}  // namespace

std::string rfc1123_date(std::chrono::system_clock::time_point t) {
  static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  return std::string(kDays[tm.tm_wday]) + ", " + two_digits(tm.tm_mday) + " " + kMonths[tm.tm_mon] + " " +
         std::to_string(tm.tm_year + 1900) + " " + two_digits(tm.tm_hour) + ":" + two_digits(tm.tm_min) + ":" +
         two_digits(tm.tm_sec) + " GMT";
}

std::string canonicalized_resource(std::string_view target, std::string_view account) {
  auto question = target.find('?');
  std::string_view path = target.substr(0, question);
  std::string out = "/" + std::string(account) + (path.empty() ? "/" : std::string(path));
  if (question == std::string_view::npos) return out;

  std::map<std::string, std::vector<std::string>> params;  // sorted by lower-cased name
  std::string_view query = target.substr(question + 1);
  while (!query.empty()) {
    auto amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    if (pair.empty()) continue;
    auto eq = pair.find('=');
    std::string name = lower(http::form_decode(pair.substr(0, eq)));
    std::string value = eq == std::string_view::npos ? std::string() : http::form_decode(pair.substr(eq + 1));
    params[name].push_back(std::move(value));
  }
  for (auto& [name, values] : params) {
    std::sort(values.begin(), values.end());
    out += "\n" + name + ":";
    for (std::size_t i = 0; i < values.size(); ++i) out += (i ? "," : "") + values[i];
  }
  return out;
}

std::string canonicalized_headers(const http::Request& request) {
  std::map<std::string, std::string> headers;  // sorted by lower-cased name; repeats joined with ','
  for (const auto& [k, v] : request.headers) {
    std::string name = lower(trim(k));
    if (name.rfind("x-ms-", 0) != 0) continue;
    auto [it, inserted] = headers.emplace(name, collapse_whitespace(v));
    if (!inserted) it->second += "," + collapse_whitespace(v);
  }
  std::string out;
  for (const auto& [name, value] : headers) out += name + ":" + value + "\n";
  return out;
}

std::string shared_key_string_to_sign(const http::Request& request, std::string_view account) {
  auto header = [&](std::string_view name) { return find_header(request, name).value_or(""); };
  std::string content_length = find_header(request, "Content-Length").value_or(std::to_string(request.body.size()));
  if (content_length == "0") content_length.clear();
  std::string date = find_header(request, "x-ms-date") ? std::string() : header("Date");

  std::string out = request.method + "\n";
  out += header("Content-Encoding") + "\n";
  out += header("Content-Language") + "\n";
  out += content_length + "\n";
  out += header("Content-MD5") + "\n";
  out += header("Content-Type") + "\n";
  out += date + "\n";
  out += header("If-Modified-Since") + "\n";
  out += header("If-Match") + "\n";
  out += header("If-None-Match") + "\n";
  out += header("If-Unmodified-Since") + "\n";
  out += header("Range") + "\n";
  out += canonicalized_headers(request);
  out += canonicalized_resource(request.target, account);
  return out;
}

Result<SharedKey, std::string> SharedKey::make(std::string account, std::string_view base64_key) {
  if (account.empty()) return Err("no storage account name to sign with");
  // The name goes into the Authorization header; Azure's are 3-24 letters and digits.
  if (auto bad = http::check_header_value(account, 256)) return Err("the storage account name " + bad.describe());
  std::string_view key = trim(base64_key);
  if (key.empty()) return Err("the account key is empty");
  if (auto bad = http::check_header_value(key, std::string::npos)) {
    bad.position += static_cast<std::size_t>(key.data() - base64_key.data());
    return Err("the account key " + bad.describe());
  }
  auto decoded = crypto::base64_decode(key);
  if (!decoded || decoded->empty())
    return Err("the account key is not valid Base64 (copy key1 or key2 from the storage account's Access keys)");
  SharedKey k;
  k.account_ = std::move(account);
  k.key_ = std::move(*decoded);
  return k;
}

std::string SharedKey::signature(std::string_view text) const {
  return crypto::base64_encode(crypto::hmac_sha256(key_, text));
}

void SharedKey::sign(http::Request& request) const {
  std::string sig = signature(shared_key_string_to_sign(request, account_));
  request.headers.emplace_back("Authorization", "SharedKey " + account_ + ":" + sig);
}

Result<SasToken, std::string> normalize_sas_token(std::string_view pasted) {
  std::string_view token = trim(pasted);
  if (!token.empty() && token.front() == '?') token.remove_prefix(1);
  if (token.empty()) return Err("the SAS token is empty");
  if (auto bad = http::check_header_value(token, kMaxSasTokenBytes)) {
    bad.position += static_cast<std::size_t>(token.data() - pasted.data());  // a position in what was pasted
    return Err("the SAS token " + bad.describe());
  }
  bool has_sig = false;
  std::string_view rest = token;
  while (!rest.empty()) {
    auto amp = rest.find('&');
    std::string_view pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
    if (iequals(pair.substr(0, 4), "sig=") && pair.size() > 4) has_sig = true;
  }
  if (!has_sig) return Err("the SAS token has no sig= parameter (paste the whole query string, e.g. sv=...&sig=...)");
  if (token.find_first_of(" \t\r\n#") != std::string_view::npos)
    return Err("the SAS token contains spaces or '#' (paste only the query string)");
  return SasToken{std::string(token)};
}

void apply_sas(http::Request& request, std::string_view token) {
  if (!token.empty() && token.front() == '?') token.remove_prefix(1);
  if (token.empty()) return;
  request.target += request.target.find('?') == std::string::npos ? '?' : '&';
  request.target += token;
}

std::string account_sas_string_to_sign(std::string_view account, const AccountSasParams& p) {
  std::string out(account);
  for (const std::string* field : {&p.permissions, &p.services, &p.resource_types, &p.start, &p.expiry, &p.ip_range,
                                   &p.protocol, &p.version, &p.encryption_scope})
    out += "\n" + *field;
  return out + "\n";
}

std::string account_sas_token(const SharedKey& key, const AccountSasParams& p) {
  std::string sig = key.signature(account_sas_string_to_sign(key.account(), p));
  std::string out = "sv=" + http::uri_encode(p.version, false) + "&ss=" + http::uri_encode(p.services, false) +
                    "&srt=" + http::uri_encode(p.resource_types, false) +
                    "&sp=" + http::uri_encode(p.permissions, false);
  if (!p.start.empty()) out += "&st=" + http::uri_encode(p.start, false);
  out += "&se=" + http::uri_encode(p.expiry, false);
  if (!p.ip_range.empty()) out += "&sip=" + http::uri_encode(p.ip_range, false);
  if (!p.protocol.empty()) out += "&spr=" + http::uri_encode(p.protocol, false);
  if (!p.encryption_scope.empty()) out += "&ses=" + http::uri_encode(p.encryption_scope, false);
  return out + "&sig=" + http::uri_encode(sig, false);
}

namespace {

// The settings parse_connection_string() knows, as Azure's documentation spells them.
constexpr std::string_view kKnownSettings[] = {"DefaultEndpointsProtocol", "AccountName",
                                               "AccountKey",               "EndpointSuffix",
                                               "BlobEndpoint",             "SharedAccessSignature",
                                               "UseDevelopmentStorage",    "DevelopmentStorageProxyUri"};

// The known setting `name` (compared case-insensitively) as documented; "" when not known.
std::string_view known_setting(std::string_view name) {
  for (std::string_view known : kKnownSettings)
    if (iequals(known, name)) return known;
  return {};
}

// Other services' endpoints (QueueEndpoint, TableSecondaryEndpoint, ...): accepted and ignored.
bool other_service_endpoint(const std::string& lowered_name) {
  return lowered_name.size() > 8 && lowered_name.ends_with("endpoint");
}

// Splits the string into settings (lower-cased name -> value). A part is named by its position,
// never quoted: a part that is not a known setting is most often a key pasted without its name.
Result<std::map<std::string, std::string>, std::string> split_settings(std::string_view text) {
  const std::string of = " of " + std::string(kConnectionStringKey);
  std::map<std::string, std::string> settings;
  std::size_t index = 0;
  std::string_view rest = text;
  while (!rest.empty()) {
    auto semi = rest.find(';');
    std::string_view part = trim(rest.substr(0, semi));
    rest = semi == std::string_view::npos ? std::string_view{} : rest.substr(semi + 1);
    ++index;
    if (part.empty()) continue;
    const std::string which = "part " + std::to_string(index) + of;
    if (auto bad = http::check_header_value(part, std::string::npos)) {
      bad.position += static_cast<std::size_t>(part.data() - text.data());  // a position in the whole string
      return Err(which + " " + bad.describe());
    }
    auto eq = part.find('=');
    if (eq == std::string_view::npos || trim(part.substr(0, eq)).empty()) return Err(which + " is not NAME=VALUE");
    std::string name = lower(trim(part.substr(0, eq)));
    std::string_view known = known_setting(name);
    if (known.empty() && other_service_endpoint(name)) continue;
    if (known.empty())
      return Err(which +
                 " is not a setting Azure storage knows (an account key pasted without `AccountKey=`?): write "
                 "NAME=VALUE with NAME one of DefaultEndpointsProtocol, AccountName, AccountKey, EndpointSuffix, "
                 "BlobEndpoint, SharedAccessSignature, UseDevelopmentStorage, DevelopmentStorageProxyUri");
    if (!settings.emplace(name, std::string(trim(part.substr(eq + 1)))).second)
      return Err(which + " sets " + std::string(known) + " a second time: give it once");
  }
  return settings;
}

}  // namespace

Result<ConnectionString, std::string> parse_connection_string(std::string_view text) {
  const std::string key(kConnectionStringKey);
  if (trim(text).empty()) return Err(key + " is empty");
  auto split = split_settings(text);
  if (!split) return Err(split.error());
  const std::map<std::string, std::string>& settings = split.value();
  auto get = [&](const std::string& name) -> std::string {
    auto it = settings.find(name);
    return it == settings.end() ? std::string() : it->second;
  };

  ConnectionString cs;
  if (settings.count("usedevelopmentstorage")) {
    if (!iequals(get("usedevelopmentstorage"), "true"))
      return Err(key + " setting UseDevelopmentStorage must be `true`");
    for (const auto& [name, value] : settings)
      if (name != "usedevelopmentstorage" && name != "developmentstorageproxyuri")
        return Err(key + " setting UseDevelopmentStorage=true cannot be combined with other settings (found " +
                   std::string(known_setting(name)) + ")");
    std::string base = get("developmentstorageproxyuri");
    if (base.empty()) base = "http://127.0.0.1";
    while (!base.empty() && base.back() == '/') base.pop_back();
    cs.blob_endpoint = base + ":10000/" + std::string(kDevelopmentAccount);
    cs.account_name = std::string(kDevelopmentAccount);
    cs.account_key = std::string(kDevelopmentKey);
    return cs;
  }

  cs.account_name = get("accountname");
  cs.account_key = get("accountkey");
  if (settings.count("sharedaccesssignature")) {
    auto sas = normalize_sas_token(get("sharedaccesssignature"));
    if (!sas) return Err(key + " setting SharedAccessSignature: " + sas.error());
    cs.sas_token = std::move(sas.value().query);
  }
  if (settings.count("accountkey")) {
    if (cs.account_key.empty()) return Err(key + " setting AccountKey is empty");
    auto decoded = crypto::base64_decode(cs.account_key);
    if (!decoded || decoded->empty()) return Err(key + " setting AccountKey is not valid Base64");
    if (cs.account_name.empty()) return Err(key + " has AccountKey but no AccountName");
  }
  if (!cs.account_key.empty() && !cs.sas_token.empty())
    return Err(key + " has both AccountKey and SharedAccessSignature: give only one");
  if (settings.count("accountname") && cs.account_name.empty()) return Err(key + " setting AccountName is empty");

  std::string protocol = lower(get("defaultendpointsprotocol"));
  if (settings.count("defaultendpointsprotocol") && protocol != "http" && protocol != "https")
    return Err(key + " setting DefaultEndpointsProtocol must be `https` or `http`");
  if (protocol.empty()) protocol = "https";

  if (settings.count("blobendpoint")) {
    std::string endpoint = get("blobendpoint");
    // Split as every endpoint is (common/url.hpp); no message quotes it.
    auto parsed = url::parse(endpoint, "");
    const bool web = parsed && (parsed.value().scheme == "http" || parsed.value().scheme == "https");
    if (!url::has_scheme(endpoint) || (parsed && !web))
      return Err(key + " setting BlobEndpoint must start with http:// or https://");
    if (!parsed) return Err(key + " setting BlobEndpoint " + parsed.error());
    if (parsed.value().has_query || parsed.value().has_fragment)
      return Err(key +
                 " setting BlobEndpoint must not carry a query string (put a SAS token in SharedAccessSignature)");
    if (parsed.value().has_userinfo)
      return Err(key + " setting BlobEndpoint must not carry a user name or password (put the key in AccountKey)");
    while (!endpoint.empty() && endpoint.back() == '/') endpoint.pop_back();
    cs.blob_endpoint = std::move(endpoint);
    return cs;
  }
  if (cs.account_name.empty()) return Err(key + " needs BlobEndpoint or AccountName (or UseDevelopmentStorage=true)");
  std::string suffix = get("endpointsuffix");
  if (suffix.empty()) suffix = "core.windows.net";
  while (!suffix.empty() && suffix.front() == '.') suffix.erase(0, 1);
  cs.blob_endpoint = protocol + "://" + cs.account_name + ".blob." + suffix;
  return cs;
}

}  // namespace stowage::storage::azure
