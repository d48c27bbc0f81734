// The AWS credential chain's pure parts: see aws_identity.hpp.
#include "storage/aws_identity.hpp"

#include <algorithm>
#include <boost/json.hpp>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <pugixml.hpp>
#include <sstream>
#include <system_error>

#include "common/http_client.hpp"
#include "common/url.hpp"

namespace stowage::storage::aws {
namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// ---- XML, as s3_xml.cpp reads it: namespaces ignored, text kept exactly ----
std::string_view local_name(const pugi::xml_node& node) {
  std::string_view name = node.name();
  auto colon = name.find(':');
  return colon == std::string_view::npos ? name : name.substr(colon + 1);
}

pugi::xml_node child(const pugi::xml_node& parent, std::string_view name) {
  for (auto node = parent.first_child(); node; node = node.next_sibling())
    if (node.type() == pugi::node_element && local_name(node) == name) return node;
  return {};
}

bool load(pugi::xml_document& doc, std::string_view xml) {
  constexpr unsigned kFlags = (pugi::parse_default & ~pugi::parse_eol) | pugi::parse_ws_pcdata_single;
  return doc.load_buffer(xml.data(), xml.size(), kFlags, pugi::encoding_utf8);
}

std::optional<std::string> read_whole(const std::string& path, std::vector<std::string>& problems) {
  std::error_code ec;
  if (path.empty() || !std::filesystem::exists(path, ec)) return std::nullopt;
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  if (in) text << in.rdbuf();
  if (!in) {
    problems.push_back("cannot read " + path);
    return std::nullopt;
  }
  return text.str();
}

const char* kVariables[] = {"HOME",
                            "AWS_ACCESS_KEY_ID",
                            "AWS_SECRET_ACCESS_KEY",
                            "AWS_SESSION_TOKEN",
                            "AWS_PROFILE",
                            "AWS_DEFAULT_PROFILE",
                            "AWS_SHARED_CREDENTIALS_FILE",
                            "AWS_CONFIG_FILE",
                            "AWS_REGION",
                            "AWS_DEFAULT_REGION",
                            "AWS_ROLE_ARN",
                            "AWS_WEB_IDENTITY_TOKEN_FILE",
                            "AWS_ROLE_SESSION_NAME",
                            "AWS_ENDPOINT_URL",
                            "AWS_ENDPOINT_URL_STS",
                            "AWS_STS_REGIONAL_ENDPOINTS",
                            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                            "AWS_CONTAINER_AUTHORIZATION_TOKEN",
                            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
                            "AWS_EC2_METADATA_DISABLED",
                            "AWS_EC2_METADATA_SERVICE_ENDPOINT",
                            "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE"};

std::string credentials_path(const Environment& env) {
  if (auto p = env.get("AWS_SHARED_CREDENTIALS_FILE"); !p.empty()) return p;
  auto home = env.get("HOME");
  return home.empty() ? std::string() : home + "/.aws/credentials";
}

std::string config_path(const Environment& env) {
  if (auto p = env.get("AWS_CONFIG_FILE"); !p.empty()) return p;
  auto home = env.get("HOME");
  return home.empty() ? std::string() : home + "/.aws/config";
}

// The profile's settings: the config file's [profile name] (or [default]), overlaid by the
// credentials file's [name], as the SDKs merge them. nullopt when neither file has it.
std::optional<std::map<std::string, std::string>> profile_settings(const Environment& env, const std::string& name) {
  std::optional<std::map<std::string, std::string>> out;
  if (env.config_file) {
    IniFile config = parse_ini(*env.config_file);
    for (const std::string& section : {"profile " + name, name == "default" ? name : std::string()}) {
      if (auto it = config.find(section); !section.empty() && it != config.end()) {
        if (!out) out.emplace();
        for (const auto& [k, v] : it->second) (*out)[k] = v;
        break;
      }
    }
  }
  if (env.credentials_file) {
    IniFile credentials = parse_ini(*env.credentials_file);
    if (auto it = credentials.find(name); it != credentials.end()) {
      if (!out) out.emplace();
      for (const auto& [k, v] : it->second) (*out)[k] = v;
    }
  }
  return out;
}

std::string value_of(const std::map<std::string, std::string>& settings, const std::string& key) {
  auto it = settings.find(key);
  return it == settings.end() ? std::string() : it->second;
}

std::optional<SourceSettings> profile_source(const Environment& env) {
  std::string explicit_name = env.get("AWS_PROFILE");
  if (explicit_name.empty()) explicit_name = env.get("AWS_DEFAULT_PROFILE");
  const std::string name = explicit_name.empty() ? "default" : explicit_name;
  SourceSettings source;
  source.kind = SourceKind::Profile;
  source.name = "shared files profile `" + name + "` (" +
                (explicit_name.empty() ? std::string("AWS_SHARED_CREDENTIALS_FILE, AWS_CONFIG_FILE")
                                       : std::string("AWS_PROFILE")) +
                ")";
  auto settings = profile_settings(env, name);
  if (!settings) {
    if (explicit_name.empty()) return std::nullopt;  // no default profile: the next source
    source.broken = "AWS_PROFILE names profile `" + name + "`, which neither " + credentials_path(env) + " nor " +
                    config_path(env) + " holds";
    return source;
  }
  const std::string key_id = value_of(*settings, "aws_access_key_id");
  const std::string secret = value_of(*settings, "aws_secret_access_key");
  if (!key_id.empty() && !secret.empty()) {
    source.static_keys = {key_id, secret, value_of(*settings, "aws_session_token")};
    return source;
  }
  const std::string role = value_of(*settings, "role_arn");
  const std::string token_file = value_of(*settings, "web_identity_token_file");
  if (!role.empty() && !token_file.empty()) {
    source.web_identity = WebIdentitySettings{role, token_file, value_of(*settings, "role_session_name"),
                                              sts_endpoint(env, value_of(*settings, "region"))};
    return source;
  }
  if (!role.empty()) {
    source.broken = "profile `" + name +
                    "` has role_arn without web_identity_token_file (source_profile and credential_source are "
                    "not supported): give it web_identity_token_file, or static keys";
    return source;
  }
  if (explicit_name.empty()) return std::nullopt;  // a default profile holding only a region, say
  source.broken = "profile `" + name +
                  "` has neither aws_access_key_id + aws_secret_access_key nor role_arn + web_identity_token_file";
  return source;
}

bool is_loopback_or_task_host(const url::Parts& p) {
  const std::string& h = p.host;
  if (h == "localhost" || h == "::1" || h == "169.254.170.2" || h == "169.254.170.23" || h == "fd00:ec2::23")
    return true;
  return h.rfind("127.", 0) == 0 && std::count(h.begin(), h.end(), '.') == 3 &&
         std::all_of(h.begin(), h.end(), [](char c) { return c == '.' || (c >= '0' && c <= '9'); });
}

Result<TimedCredentials, std::string> credentials_from(std::string key_id, std::string secret, std::string token,
                                                       std::string_view expiration, std::string_view where) {
  TimedCredentials out;
  out.keys = {std::move(key_id), std::move(secret), std::move(token)};
  if (out.keys.access_key_id.empty()) return Err(std::string(where) + " has no AccessKeyId");
  if (out.keys.secret_access_key.empty()) return Err(std::string(where) + " has no SecretAccessKey");
  if (!expiration.empty()) {
    out.expiration = parse_rfc3339(expiration);
    if (!out.expiration) return Err(std::string(where) + " has an Expiration that is not an RFC 3339 time");
  }
  return out;
}

}  // namespace

std::string Environment::get(const std::string& name) const {
  auto it = variables.find(name);
  return it == variables.end() ? std::string() : it->second;
}

Environment Environment::from_process() {
  Environment env;
  for (const char* name : kVariables)
    if (const char* v = std::getenv(name)) env.variables[name] = v;
  env.credentials_file_path = credentials_path(env);
  env.config_file_path = config_path(env);
  env.credentials_file = read_whole(env.credentials_file_path, env.file_problems);
  env.config_file = read_whole(env.config_file_path, env.file_problems);
  return env;
}

std::vector<std::string> Chain::names() const {
  std::vector<std::string> out;
  for (const auto& s : found) out.push_back(s.name);
  return out;
}

std::string sts_endpoint(const Environment& env, const std::string& profile_region) {
  if (auto e = env.get("AWS_ENDPOINT_URL_STS"); !e.empty()) return e;
  if (auto e = env.get("AWS_ENDPOINT_URL"); !e.empty()) return e;
  std::string region = env.get("AWS_REGION");
  if (region.empty()) region = env.get("AWS_DEFAULT_REGION");
  if (region.empty()) region = profile_region;
  if (region.empty() || lower(env.get("AWS_STS_REGIONAL_ENDPOINTS")) == "legacy") return "https://sts.amazonaws.com";
  return "https://sts." + region + ".amazonaws.com" + (region.rfind("cn-", 0) == 0 ? ".cn" : "");
}

Chain discover_chain(const Environment& env) {
  Chain chain;
  chain.warnings = env.file_problems;
  // 1. Environment keys.
  if (!env.get("AWS_ACCESS_KEY_ID").empty() && !env.get("AWS_SECRET_ACCESS_KEY").empty()) {
    SourceSettings s;
    s.kind = SourceKind::Environment;
    s.name = "environment keys (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)";
    s.static_keys = {env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY"), env.get("AWS_SESSION_TOKEN")};
    chain.found.push_back(std::move(s));
  }
  // 2. Shared files.
  if (auto profile = profile_source(env)) chain.found.push_back(std::move(*profile));
  // 3. Web identity from the environment (IRSA).
  if (!env.get("AWS_ROLE_ARN").empty() && !env.get("AWS_WEB_IDENTITY_TOKEN_FILE").empty()) {
    SourceSettings s;
    s.kind = SourceKind::WebIdentity;
    s.name = "web identity (AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE)";
    s.web_identity = WebIdentitySettings{env.get("AWS_ROLE_ARN"), env.get("AWS_WEB_IDENTITY_TOKEN_FILE"),
                                         env.get("AWS_ROLE_SESSION_NAME"), sts_endpoint(env)};
    chain.found.push_back(std::move(s));
  }
  // 4. Container credentials: the relative URI first, as the SDKs read them.
  const std::string relative = env.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
  const std::string full = env.get("AWS_CONTAINER_CREDENTIALS_FULL_URI");
  if (!relative.empty() || !full.empty()) {
    SourceSettings s;
    s.kind = SourceKind::Container;
    ContainerSettings c;
    if (!relative.empty()) {
      s.name = "container credentials (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI)";
      c.url = "http://169.254.170.2" + (relative.front() == '/' ? relative : "/" + relative);
    } else {
      s.name = "container credentials (AWS_CONTAINER_CREDENTIALS_FULL_URI)";
      c.url = full;
      if (auto bad = container_uri_problem(full); !bad.empty()) s.broken = "AWS_CONTAINER_CREDENTIALS_FULL_URI " + bad;
    }
    c.authorization_file = env.get("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
    c.authorization = env.get("AWS_CONTAINER_AUTHORIZATION_TOKEN");
    s.container = std::move(c);
    chain.found.push_back(std::move(s));
  }
  // 5. Instance metadata.
  if (lower(std::string(trim(env.get("AWS_EC2_METADATA_DISABLED")))) != "true") {
    SourceSettings s;
    s.kind = SourceKind::InstanceMetadata;
    s.name = "instance metadata (IMDSv2)";
    InstanceMetadataSettings m;
    if (auto e = env.get("AWS_EC2_METADATA_SERVICE_ENDPOINT"); !e.empty()) {
      m.endpoint = e;
      while (m.endpoint.size() > 1 && m.endpoint.back() == '/') m.endpoint.pop_back();
      s.name = "instance metadata (IMDSv2, AWS_EC2_METADATA_SERVICE_ENDPOINT)";
    } else if (lower(env.get("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE")) == "ipv6") {
      m.endpoint = "http://[fd00:ec2::254]";
    }
    s.instance_metadata = std::move(m);
    chain.found.push_back(std::move(s));
  }
  return chain;
}

IniFile parse_ini(std::string_view text) {
  IniFile out;
  std::string section;
  bool in_section = false;
  while (!text.empty()) {
    auto eol = text.find('\n');
    std::string_view raw = text.substr(0, eol);
    text = eol == std::string_view::npos ? std::string_view() : text.substr(eol + 1);
    if (!raw.empty() && (raw.front() == ' ' || raw.front() == '\t')) continue;  // nested (s3 = ...) values
    std::string_view line = trim(raw);
    if (line.empty() || line.front() == '#' || line.front() == ';') continue;
    if (line.front() == '[') {
      auto close = line.find(']');
      in_section = close != std::string_view::npos;
      if (!in_section) continue;
      // "[profile  x]" -> "profile x": the SDKs collapse the blanks between the two words.
      std::string_view inner = trim(line.substr(1, close - 1));
      std::string name;
      for (char c : inner) {
        if (std::isspace(static_cast<unsigned char>(c))) {
          if (!name.empty() && name.back() != ' ') name += ' ';
        } else {
          name += c;
        }
      }
      section = name;
      out[section];
      continue;
    }
    auto eq = line.find('=');
    if (!in_section || eq == std::string_view::npos) continue;
    std::string key = lower(std::string(trim(line.substr(0, eq))));
    std::string_view value = trim(line.substr(eq + 1));
    if (!key.empty()) out[section][key] = std::string(value);
  }
  return out;
}

std::string web_identity_request_body(std::string_view role_arn, std::string_view session_name,
                                      std::string_view token) {
  return "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=" + http::uri_encode(role_arn, false) +
         "&RoleSessionName=" + http::uri_encode(session_name, false) +
         "&WebIdentityToken=" + http::uri_encode(token, false);
}

Result<TimedCredentials, std::string> parse_web_identity_reply(std::string_view xml) {
  pugi::xml_document doc;
  if (!load(doc, xml)) return Err("the STS reply is not XML");
  pugi::xml_node root = doc.document_element();
  if (!root || local_name(root) != "AssumeRoleWithWebIdentityResponse")
    return Err("the STS reply is not an AssumeRoleWithWebIdentityResponse");
  pugi::xml_node result = child(root, "AssumeRoleWithWebIdentityResult");
  if (!result) return Err("the STS reply has no AssumeRoleWithWebIdentityResult");
  pugi::xml_node c = child(result, "Credentials");
  if (!c) return Err("the STS reply has no Credentials");
  std::string token = child(c, "SessionToken").child_value();
  if (token.empty()) return Err("the STS reply's Credentials have no SessionToken");
  std::string expiration = child(c, "Expiration").child_value();
  if (expiration.empty()) return Err("the STS reply's Credentials have no Expiration");
  return credentials_from(child(c, "AccessKeyId").child_value(), child(c, "SecretAccessKey").child_value(),
                          std::move(token), expiration, "the STS reply's Credentials");
}

std::optional<StsError> parse_sts_error(std::string_view xml) {
  pugi::xml_document doc;
  if (!load(doc, xml)) return std::nullopt;
  pugi::xml_node root = doc.document_element();
  if (!root || local_name(root) != "ErrorResponse") return std::nullopt;
  pugi::xml_node error = child(root, "Error");
  if (!error) return std::nullopt;
  return StsError{child(error, "Code").child_value(), child(error, "Message").child_value()};
}

Result<TimedCredentials, std::string> parse_credentials_json(std::string_view json) {
  boost::system::error_code ec;
  boost::json::value doc = boost::json::parse(json, ec);
  if (ec || !doc.is_object()) return Err("the credentials reply is not a JSON object");
  const auto& o = doc.as_object();
  auto text = [&o](const char* key) -> std::optional<std::string> {
    const auto* v = o.if_contains(key);
    if (!v) return std::string();
    if (!v->is_string()) return std::nullopt;
    return std::string(v->as_string());
  };
  std::optional<std::string> code = text("Code"), key_id = text("AccessKeyId"), secret = text("SecretAccessKey"),
                             token = text("Token"), expiration = text("Expiration");
  if (!code || !key_id || !secret || !token || !expiration)
    return Err("the credentials reply has a field that is not a string");
  if (!code->empty() && *code != "Success")
    return Err("the credentials reply says Code " + (code->size() <= 64 ? *code : code->substr(0, 64) + "..."));
  return credentials_from(std::move(*key_id), std::move(*secret), std::move(*token), *expiration,
                          "the credentials reply");
}

std::string container_uri_problem(std::string_view text) {
  auto parsed = url::parse(text, "");
  if (!parsed) return parsed.error();
  const url::Parts& p = parsed.value();
  if (p.scheme != "http" && p.scheme != "https") return "is not an http(s) URL";
  if (p.has_userinfo) return "has a user name or password before '@'";
  if (p.scheme == "http" && !is_loopback_or_task_host(p))
    return "is plain http to a host that is neither loopback nor the ECS/EKS credentials address: use https";
  return {};
}

std::string first_role(std::string_view listing) {
  auto line = trim(listing.substr(0, listing.find('\n')));
  return std::string(line);
}

}  // namespace stowage::storage::aws
