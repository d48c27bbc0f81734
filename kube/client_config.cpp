// Client configuration: in-cluster service account and kubeconfig files (client-go's
// clientcmd loading, merging and validation rules). See client_config.hpp for the guarantees.
//
// The flow for a kubeconfig: parse_kubeconfig (text -> typed entries, relative paths made
// absolute) -> merge_kubeconfigs (first definition of a name wins) -> client_config_from_kubeconfig
// (pick the context, check it, read the files it names). Every error is built from the field's path
// and a fixed sentence; values that could be secret are never formatted into one.
#include "kube/client_config.hpp"

#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cerrno>
#include <filesystem>
#include <memory>
#include <set>
#include <system_error>

#include "common/crypto.hpp"
#include "common/header_values.hpp"
#include "common/url.hpp"
#include "kube/yaml_json.hpp"

extern char** environ;

namespace stowage::kube {
namespace {

namespace json = boost::json;
namespace fs = std::filesystem;
using MaybeError = std::optional<ConfigError>;

constexpr std::size_t kMaxFileSize = 16 * 1024 * 1024;
constexpr const char* kExecExtensionName = "client.authentication.k8s.io/exec";

ConfigError error_at(std::string file, std::string field, std::string message) {
  return ConfigError{std::move(file), 0, 0, std::move(field), std::move(message)};
}

std::string in_quotes(std::string_view s) { return json::serialize(json::string(s)); }

std::string join(const std::vector<std::string>& items, std::string_view separator) {
  std::string out;
  for (const auto& item : items) {
    if (!out.empty()) out += separator;
    out += item;
  }
  return out;
}

std::string trim(std::string_view s) {
  constexpr std::string_view kSpace = " \t\r\n\f\v";
  std::size_t begin = s.find_first_not_of(kSpace);
  if (begin == s.npos) return {};
  return std::string(s.substr(begin, s.find_last_not_of(kSpace) - begin + 1));
}

// ---------------------------------------------------------------------------------------------
// Files.

struct ReadFailure {
  std::string reason;  // strerror-style: "No such file or directory"
  bool not_found = false;
  bool too_large = false;  // over `max_size`: refused before reading when its size says so, else once read past it
  std::uint64_t size = 0;  // with too_large: the size it said it had; 0 when it grew past `max_size` while read
};

// At most `max_size` bytes are ever read: a file that says it is larger is refused before reading,
// one that grows while it is read is refused at the budget.
Result<std::string, ReadFailure> read_file(const std::string& path, std::uint64_t max_size = kMaxFileSize) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    return Err(ReadFailure{std::error_code(err, std::generic_category()).message(), err == ENOENT});
  }
  struct FdCloser {
    int fd;
    ~FdCloser() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode))
    return Err(ReadFailure{std::error_code(EISDIR, std::generic_category()).message()});
  const std::string too_large = "larger than " + size_text(max_size);
  if (S_ISREG(st.st_mode) && static_cast<std::uint64_t>(st.st_size) > max_size)
    return Err(ReadFailure{too_large, false, true, static_cast<std::uint64_t>(st.st_size)});
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Err(ReadFailure{std::error_code(errno, std::generic_category()).message()});
    if (n == 0) return out;
    const std::uint64_t room = max_size + 1 - out.size();  // never reads a byte more than it needs to refuse
    out.append(buf, static_cast<std::size_t>(std::min<std::uint64_t>(static_cast<std::uint64_t>(n), room)));
    if (out.size() > max_size) return Err(ReadFailure{too_large, false, true, 0});
  }
}

bool file_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

// The directory of a kubeconfig file, absolute (filepath.Abs(filepath.Dir(file)) in client-go).
std::string base_directory(const std::string& file) {
  std::error_code ec;
  fs::path absolute = fs::absolute(fs::path(file), ec);
  if (ec) absolute = fs::path(file);
  return absolute.lexically_normal().parent_path().string();
}

// client-go's ResolvePaths: absolute paths and empty ones stay, others join the base directory.
std::string resolve_path(const std::string& ref, const std::string& base_dir) {
  if (ref.empty() || ref.front() == '/') return ref;
  return (fs::path(base_dir) / ref).lexically_normal().string();
}

// ---------------------------------------------------------------------------------------------
// PEM checks (OpenSSL). Nothing prompts for a passphrase; the error queue is left empty.

int refuse_passphrase(char*, int, int, void*) { return -1; }

struct BioDeleter {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Deleter {
  void operator()(X509* x) const { X509_free(x); }
};
struct KeyDeleter {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using BioPtr = std::unique_ptr<BIO, BioDeleter>;
using X509Ptr = std::unique_ptr<X509, X509Deleter>;
using KeyPtr = std::unique_ptr<EVP_PKEY, KeyDeleter>;

BioPtr memory_bio(std::string_view data) {
  return BioPtr(BIO_new_mem_buf(data.data(), static_cast<int>(std::min<std::size_t>(data.size(), INT32_MAX))));
}

// Certificates in a PEM bundle (other PEM blocks are skipped, as Go's AppendCertsFromPEM does).
std::size_t count_certificates(std::string_view pem) {
  BioPtr bio = memory_bio(pem);
  std::size_t n = 0;
  while (bio) {
    X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, refuse_passphrase, nullptr));
    if (!cert) break;
    ++n;
  }
  ERR_clear_error();
  return n;
}

// ---------------------------------------------------------------------------------------------
// URLs.

std::optional<std::uint16_t> parse_port(std::string_view s) {
  if (s.empty() || s.size() > 5) return std::nullopt;
  unsigned value = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  if (value == 0 || value > 65535) return std::nullopt;
  return static_cast<std::uint16_t>(value);
}

// proxy-url: http, https or socks5 with a host (client-go's parseProxyURL), split by common/url.hpp.
// The problem names the scheme at most: the URL may hold a password.
std::optional<std::string> proxy_url_problem(std::string_view text) {
  if (!url::has_scheme(text) && !http::check_request_line_part(text))
    return "is not a URL: write http://HOST:PORT, https://HOST:PORT or socks5://HOST:PORT";
  auto parsed = url::parse(text, "");
  if (!parsed) return parsed.error();
  const std::string& scheme = parsed.value().scheme;
  if (scheme != "http" && scheme != "https" && scheme != "socks5")
    return "has the scheme " + in_quotes(scheme) + ", which is not supported: use http, https or socks5";
  return std::nullopt;
}

// scheme://host[:port] of a URL, without user information or path (for describe()).
std::string redacted_url(std::string_view text) {
  auto parsed = url::parse(text, "");
  if (!parsed) return "(unparsable URL)";
  const url::Parts& u = parsed.value();
  return u.scheme + "://" + u.bracketed_host() + (u.port != 0 ? ":" + std::to_string(u.port) : std::string());
}

bool is_dns1123_label(std::string_view s) {
  if (s.empty() || s.size() > 63) return false;
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  for (char c : s)
    if (!alnum(c) && c != '-') return false;
  return alnum(s.front()) && alnum(s.back());
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Public value types.

std::string ConfigError::to_string() const {
  std::string out = file;
  if (!file.empty() && line > 0) out += ":" + std::to_string(line) + ":" + std::to_string(column);
  if (!out.empty()) out += ": ";
  return out + message;
}

std::string ServerUrl::authority() const {
  std::string h = host.find(':') != host.npos ? "[" + host + "]" : host;
  return h + ":" + std::to_string(port);
}

std::string ServerUrl::host_header() const {
  if (port_explicit) return authority();
  return host.find(':') != host.npos ? "[" + host + "]" : host;
}

std::string ServerUrl::to_string() const { return scheme + "://" + host_header() + path; }

Result<ServerUrl, std::string> parse_server_url(std::string_view text, bool default_tls) {
  // client-go accepts "host:port" and picks the scheme from the TLS settings.
  auto parsed = url::parse(text, default_tls ? "https" : "http");
  if (!parsed) return Err(parsed.error());
  const url::Parts& u = parsed.value();
  if (u.scheme != "https" && u.scheme != "http")
    return Err("has the scheme " + in_quotes(u.scheme) + ", which is not supported: write https://HOST:PORT");
  if (u.has_userinfo) return Err("must not contain a user name or password: put credentials under users[].user");
  std::string_view path = u.path;  // a query and a fragment are dropped, as client-go drops them
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  if (!u.scheme_given && !path.empty()) return Err("is neither a URL nor a HOST:PORT pair");
  ServerUrl url;
  url.scheme = u.scheme;
  url.host = u.host;
  url.port = u.port_or_default();
  url.port_explicit = u.port != 0;
  url.path = std::string(path);
  return url;
}

std::string client_key_pair_problem(std::string_view certificate_pem, std::string_view key_pem) {
  BioPtr cert_bio = memory_bio(certificate_pem);
  X509Ptr cert(cert_bio ? PEM_read_bio_X509(cert_bio.get(), nullptr, refuse_passphrase, nullptr) : nullptr);
  BioPtr key_bio = memory_bio(key_pem);
  KeyPtr key(key_bio ? PEM_read_bio_PrivateKey(key_bio.get(), nullptr, refuse_passphrase, nullptr) : nullptr);
  std::string problem;
  if (!cert)
    problem = "the client certificate holds no PEM certificate";
  else if (!key)
    problem = "the client key is not a PEM private key (or is encrypted, which is not supported)";
  else if (X509_check_private_key(cert.get(), key.get()) != 1)
    problem = "the client key does not belong to the client certificate";
  ERR_clear_error();
  return problem;
}

Result<std::string, ConfigError> read_token_file(const std::string& path) {
  auto text = read_file(path);
  if (!text) return Err(error_at(path, "tokenFile", "cannot read: " + text.error().reason));
  std::string token = trim(text.value());
  if (token.empty()) return Err(error_at(path, "tokenFile", "the token file is empty"));
  if (auto bad = http::check_bearer_token(token, kMaxBearerTokenBytes)) {
    bad.position += text.value().find_first_not_of(" \t\r\n\f\v");  // a position in the file, as trim() cut it
    return Err(error_at(path, "tokenFile", "the token " + bad.describe()));
  }
  return token;
}

Result<std::string, ConfigError> ClientConfig::read_token_file() const {
  if (token_file.empty()) return Err(error_at("", "tokenFile", "no token file is configured"));
  return kube::read_token_file(token_file);
}

std::string ClientConfig::describe() const {
  std::string auth = "none";
  if (exec)
    auth = "exec plugin " + exec->command;
  else if (!token_file.empty())
    auth = "bearer token file " + token_file;
  else if (!bearer_token.empty())
    auth = "bearer token";
  else if (!username.empty() || !password.empty())
    auth = "basic auth";
  if (!client_certificate_pem.empty()) auth = auth == "none" ? "client certificate" : auth + " + client certificate";

  std::string out = server.to_string() + " (";
  out += context.empty() ? source : "context " + context + " from " + source;
  if (!user.empty()) out += ", user " + user;
  out += ", namespace " + namespace_ + ", auth: " + auth;
  if (!proxy_url.empty()) out += ", proxy " + redacted_url(proxy_url);
  if (insecure_skip_tls_verify) out += ", TLS verification disabled";
  return out + ")";
}

// ---------------------------------------------------------------------------------------------
// In cluster.

Result<ClientConfig, ConfigError> load_in_cluster(const Environment& env, const std::string& service_account_dir) {
  auto get = [&](const char* name) {
    auto it = env.find(name);
    return it == env.end() ? std::string() : it->second;
  };
  std::string host = get("KUBERNETES_SERVICE_HOST");
  const std::string port = get("KUBERNETES_SERVICE_PORT");
  if (host.empty() || port.empty())
    return Err(
        error_at("", "KUBERNETES_SERVICE_HOST",
                 "not running in a cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must both be set"));
  auto port_number = parse_port(port);
  if (!port_number)
    return Err(error_at("", "KUBERNETES_SERVICE_PORT",
                        "KUBERNETES_SERVICE_PORT " + in_quotes(port) + " is not a port number (1 to 65535)"));
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);

  ClientConfig config;
  config.server = ServerUrl{"https", host, *port_number, true, ""};
  config.source = "in-cluster";

  const std::string dir = fs::path(service_account_dir).lexically_normal().string();
  config.token_file = (fs::path(dir) / "token").string();
  auto token = kube::read_token_file(config.token_file);
  if (!token) {
    ConfigError e = token.error();
    e.message += ": is the service account token mounted? (automountServiceAccountToken must not be false)";
    return Err(e);
  }
  config.bearer_token = token.value();

  const std::string ca_file = (fs::path(dir) / "ca.crt").string();
  auto ca = read_file(ca_file);
  if (!ca)
    config.warnings.push_back(ca_file + ": cannot read: " + ca.error().reason +
                              "; the system trust store is used instead");
  else if (count_certificates(ca.value()) == 0)
    config.warnings.push_back(ca_file + " holds no PEM certificate; the system trust store is used instead");
  else {
    config.ca_pem = std::move(ca.value());
    config.ca_file = ca_file;
  }

  if (std::string ns = get("POD_NAMESPACE"); !ns.empty()) {
    config.namespace_ = ns;
  } else if (auto file = read_file((fs::path(dir) / "namespace").string()); file && !trim(file.value()).empty()) {
    config.namespace_ = trim(file.value());
  }
  return config;
}

// ---------------------------------------------------------------------------------------------
// Parsing one kubeconfig file. Type errors follow Go's encoding/json: null is absent, a value of
// the wrong type is an error; unknown fields are ignored.

namespace {

std::string kind_name(const json::value& v) {
  switch (v.kind()) {
    case json::kind::null:
      return "null";
    case json::kind::bool_:
      return "a boolean";
    case json::kind::int64:
    case json::kind::uint64:
    case json::kind::double_:
      return "a number";
    case json::kind::string:
      return "a string";
    case json::kind::array:
      return "a list";
    case json::kind::object:
      return "a mapping";
  }
  return "an unknown value";
}

std::string indexed(const std::string& path, std::size_t i) { return path + "[" + std::to_string(i) + "]"; }

std::string field_of(const std::string& path, std::string_view key) {
  return path.empty() ? std::string(key) : path + "." + std::string(key);
}

// Reads the fields of one file; every error names `file`.
class FileReader {
 public:
  explicit FileReader(std::string file) : file_(std::move(file)), base_dir_(base_directory(file_)) {}

  const std::string& file() const { return file_; }
  std::string resolve(const std::string& ref) const { return resolve_path(ref, base_dir_); }

  ConfigError error(const std::string& field, std::string message) const {
    return error_at(file_, field, std::move(message));
  }

  ConfigError type_error(const std::string& field, std::string_view expected, const json::value& got) const {
    std::string message = field + ": expected " + std::string(expected) + ", got " + kind_name(got);
    if (expected == "a string" && got.is_bool())  // name: y, namespace: no, ... (YAML 1.1, as kubectl reads it)
      message += ": put the value in quotes, YAML reads y, n, yes, no, on and off as booleans";
    return error(field, std::move(message));
  }

  static const json::value* member(const json::object& o, std::string_view key) {
    auto it = o.find(key);
    return it == o.end() || it->value().is_null() ? nullptr : &it->value();
  }

  MaybeError string(const json::object& o, std::string_view key, const std::string& path, std::string& out) const {
    const json::value* v = member(o, key);
    if (!v) return std::nullopt;
    if (!v->is_string()) return type_error(field_of(path, key), "a string", *v);
    out = std::string(v->get_string());
    return std::nullopt;
  }

  MaybeError boolean(const json::object& o, std::string_view key, const std::string& path, bool& out) const {
    const json::value* v = member(o, key);
    if (!v) return std::nullopt;
    if (!v->is_bool()) return type_error(field_of(path, key), "true or false", *v);
    out = v->get_bool();
    return std::nullopt;
  }

  // A *-data field: Base64 as Go's encoding/json reads []byte (line breaks ignored). The value
  // is never shown.
  MaybeError base64(const json::object& o, std::string_view key, const std::string& path, std::string& out) const {
    std::string text;
    if (auto e = string(o, key, path, text)) return e;
    std::erase_if(text, [](char c) { return c == '\r' || c == '\n'; });
    if (text.empty()) return std::nullopt;
    auto decoded = crypto::base64_decode(text);
    const std::string field = field_of(path, key);
    if (!decoded)
      return error(field, field +
                              " is not valid base64: put the output of `base64 -w0 FILE` there, "
                              "or name the file in " +
                              std::string(key.substr(0, key.size() - 5)) + " instead");
    out = std::move(*decoded);
    return std::nullopt;
  }

  MaybeError string_list(const json::object& o, std::string_view key, const std::string& path,
                         std::vector<std::string>& out) const {
    const json::value* v = member(o, key);
    if (!v) return std::nullopt;
    const std::string field = field_of(path, key);
    if (!v->is_array()) return type_error(field, "a list of strings", *v);
    for (std::size_t i = 0; i < v->get_array().size(); ++i) {
      const json::value& item = v->get_array()[i];
      if (!item.is_string()) return type_error(indexed(field, i), "a string", item);
      out.emplace_back(item.get_string());
    }
    return std::nullopt;
  }

  // The member as an object; an empty object when absent or null.
  Result<const json::object*, ConfigError> object(const json::object& o, std::string_view key,
                                                  const std::string& path) const {
    static const json::object kEmpty;
    const json::value* v = member(o, key);
    if (!v) return &kEmpty;
    if (!v->is_object()) return Err(type_error(field_of(path, key), "a mapping", *v));
    return &v->get_object();
  }

 private:
  std::string file_;
  std::string base_dir_;
};

MaybeError parse_cluster_extensions(const FileReader& r, const json::object& o, const std::string& path,
                                    KubeconfigCluster& out) {
  const json::value* v = FileReader::member(o, "extensions");
  if (!v) return std::nullopt;
  if (!v->is_array()) return r.type_error(path + ".extensions", "a list", *v);
  for (std::size_t i = 0; i < v->get_array().size(); ++i) {
    const std::string item_path = indexed(path + ".extensions", i);
    const json::value& item = v->get_array()[i];
    if (!item.is_object()) return r.type_error(item_path, "a mapping", item);
    std::string name;
    if (auto e = r.string(item.get_object(), "name", item_path, name)) return e;
    if (name != kExecExtensionName) continue;
    const json::value* extension = FileReader::member(item.get_object(), "extension");
    out.exec_extension = extension ? *extension : json::value();
  }
  return std::nullopt;
}

Result<KubeconfigCluster, ConfigError> parse_cluster(const FileReader& r, const json::object& o,
                                                     const std::string& path) {
  KubeconfigCluster c;
  std::string ca_path;
  if (auto e = r.string(o, "server", path, c.server)) return Err(*e);
  if (auto e = r.string(o, "certificate-authority", path, ca_path)) return Err(*e);
  if (auto e = r.base64(o, "certificate-authority-data", path, c.certificate_authority_data)) return Err(*e);
  if (auto e = r.boolean(o, "insecure-skip-tls-verify", path, c.insecure_skip_tls_verify)) return Err(*e);
  if (auto e = r.string(o, "tls-server-name", path, c.tls_server_name)) return Err(*e);
  if (auto e = r.string(o, "proxy-url", path, c.proxy_url)) return Err(*e);
  if (auto e = r.boolean(o, "disable-compression", path, c.disable_compression)) return Err(*e);
  if (auto e = parse_cluster_extensions(r, o, path, c)) return Err(*e);
  c.certificate_authority = r.resolve(ca_path);
  return c;
}

MaybeError parse_exec_env(const FileReader& r, const json::object& o, const std::string& path,
                          std::vector<ExecEnvVar>& out) {
  const json::value* v = FileReader::member(o, "env");
  if (!v) return std::nullopt;
  if (!v->is_array()) return r.type_error(path + ".env", "a list of {name, value}", *v);
  for (std::size_t i = 0; i < v->get_array().size(); ++i) {
    const std::string item_path = indexed(path + ".env", i);
    const json::value& item = v->get_array()[i];
    if (!item.is_object()) return r.type_error(item_path, "a mapping with name and value", item);
    ExecEnvVar var;
    if (auto e = r.string(item.get_object(), "name", item_path, var.name)) return e;
    if (auto e = r.string(item.get_object(), "value", item_path, var.value)) return e;
    out.push_back(std::move(var));
  }
  return std::nullopt;
}

Result<ExecConfig, ConfigError> parse_exec(const FileReader& r, const json::object& o, const std::string& path) {
  ExecConfig x;
  x.interactive_mode.clear();
  if (auto e = r.string(o, "apiVersion", path, x.api_version)) return Err(*e);
  if (auto e = r.string(o, "command", path, x.command)) return Err(*e);
  if (auto e = r.string_list(o, "args", path, x.args)) return Err(*e);
  if (auto e = parse_exec_env(r, o, path, x.env)) return Err(*e);
  if (auto e = r.string(o, "interactiveMode", path, x.interactive_mode)) return Err(*e);
  if (auto e = r.boolean(o, "provideClusterInfo", path, x.provide_cluster_info)) return Err(*e);
  if (auto e = r.string(o, "installHint", path, x.install_hint)) return Err(*e);
  // client-go's v1 defaulting: v1beta1 plugins are IfAvailable unless told; v1 must say.
  if (x.interactive_mode.empty() && x.api_version == kExecApiVersionV1beta1) x.interactive_mode = "IfAvailable";
  // Only a command with a path in it is relative to the kubeconfig; a bare name is looked up in PATH.
  if (x.command.find('/') != std::string::npos) x.command = r.resolve(x.command);
  return x;
}

// The first impersonation field set ("as", "as-uid", "as-groups", "as-user-extra"), or "".
std::string impersonation_field(const json::object& o) {
  for (const char* key : {"as", "as-uid", "as-groups", "as-user-extra"}) {
    const json::value* v = FileReader::member(o, key);
    if (!v) continue;
    bool empty = (v->is_string() && v->get_string().empty()) || (v->is_array() && v->get_array().empty()) ||
                 (v->is_object() && v->get_object().empty());
    if (!empty) return key;
  }
  return {};
}

Result<KubeconfigUser, ConfigError> parse_user(const FileReader& r, const json::object& o, const std::string& path) {
  KubeconfigUser u;
  std::string token_file, cert_path, key_path;
  if (auto e = r.string(o, "token", path, u.token)) return Err(*e);
  if (auto e = r.string(o, "tokenFile", path, token_file)) return Err(*e);
  if (auto e = r.string(o, "client-certificate", path, cert_path)) return Err(*e);
  if (auto e = r.base64(o, "client-certificate-data", path, u.client_certificate_data)) return Err(*e);
  if (auto e = r.string(o, "client-key", path, key_path)) return Err(*e);
  if (auto e = r.base64(o, "client-key-data", path, u.client_key_data)) return Err(*e);
  if (auto e = r.string(o, "username", path, u.username)) return Err(*e);
  if (auto e = r.string(o, "password", path, u.password)) return Err(*e);
  u.token_file = r.resolve(token_file);
  u.client_certificate = r.resolve(cert_path);
  u.client_key = r.resolve(key_path);
  u.impersonation_field = impersonation_field(o);

  if (const json::value* provider = FileReader::member(o, "auth-provider")) {
    if (!provider->is_object()) return Err(r.type_error(path + ".auth-provider", "a mapping", *provider));
    if (auto e = r.string(provider->get_object(), "name", path + ".auth-provider", u.auth_provider)) return Err(*e);
    if (u.auth_provider.empty()) u.auth_provider = "(unnamed)";
  }
  if (const json::value* exec = FileReader::member(o, "exec")) {
    if (!exec->is_object()) return Err(r.type_error(path + ".exec", "a mapping", *exec));
    auto parsed = parse_exec(r, exec->get_object(), path + ".exec");
    if (!parsed) return Err(parsed.error());
    u.exec = std::move(parsed.value());
  }
  return u;
}

Result<KubeconfigContext, ConfigError> parse_context(const FileReader& r, const json::object& o,
                                                     const std::string& path) {
  KubeconfigContext c;
  if (auto e = r.string(o, "cluster", path, c.cluster)) return Err(*e);
  if (auto e = r.string(o, "user", path, c.user)) return Err(*e);
  if (auto e = r.string(o, "namespace", path, c.namespace_)) return Err(*e);
  return c;
}

// clusters / users / contexts: a list of {name, <inner>: {...}}; names unique within the file.
template <class T, class ParseInner>
MaybeError parse_named_list(const FileReader& r, const json::object& root, std::string_view list_key,
                            std::string_view inner_key, std::map<std::string, T>& out, ParseInner parse_inner) {
  const json::value* v = FileReader::member(root, list_key);
  if (!v) return std::nullopt;
  const std::string list(list_key);
  if (!v->is_array()) return r.type_error(list, "a list", *v);
  std::map<std::string, std::size_t> seen;
  for (std::size_t i = 0; i < v->get_array().size(); ++i) {
    const std::string item_path = indexed(list, i);
    const json::value& item = v->get_array()[i];
    if (!item.is_object()) return r.type_error(item_path, "a mapping with name and " + std::string(inner_key), item);
    std::string name;
    if (auto e = r.string(item.get_object(), "name", item_path, name)) return e;
    if (auto [it, inserted] = seen.emplace(name, i); !inserted)
      return r.error(item_path + ".name", item_path + ".name " + in_quotes(name) + " is already used by " +
                                              indexed(list, it->second) + ": names must be unique within a file");
    auto inner = r.object(item.get_object(), inner_key, item_path);
    if (!inner) return inner.error();
    auto parsed = parse_inner(r, *inner.value(), item_path + "." + std::string(inner_key));
    if (!parsed) return parsed.error();
    parsed.value().origin = Origin{r.file(), i};
    out.emplace(name, std::move(parsed.value()));
  }
  return std::nullopt;
}

MaybeError check_version_and_kind(const FileReader& r, const json::object& root) {
  std::string api_version, kind;
  if (auto e = r.string(root, "apiVersion", "", api_version)) return e;
  if (auto e = r.string(root, "kind", "", kind)) return e;
  if (!api_version.empty() && api_version != "v1")
    return r.error("apiVersion", "apiVersion " + in_quotes(api_version) + " is not a kubeconfig version: use v1");
  if (!kind.empty() && kind != "Config")
    return r.error("kind", "kind " + in_quotes(kind) + " is not a kubeconfig: expected kind Config");
  return std::nullopt;
}

}  // namespace

Result<Kubeconfig, ConfigError> parse_kubeconfig(std::string_view text, const std::string& path,
                                                 std::uint64_t max_alias_expansion) {
  FileReader r(path);
  Kubeconfig config;
  config.files.push_back(path);
  YamlLimits limits;
  limits.max_alias_bytes = max_alias_expansion;
  auto docs = parse_yaml_documents(text, limits);
  if (!docs) {
    ConfigError e = docs.error().budget == YamlBudget::alias_expansion
                        ? r.error("", "its YAML aliases expand past " + size_text(max_alias_expansion) +
                                          " (yaml.max-alias-expansion; an alias bomb?): if the file is trusted, "
                                          "raise --yaml-max-alias-expansion")
                        : r.error("", "malformed YAML: " + docs.error().message);
    e.line = docs.error().line;
    e.column = docs.error().column;
    return Err(e);
  }
  if (docs.value().empty() || docs.value()[0].value.is_null()) return config;  // empty file: nothing defined
  const json::value& root_value = docs.value()[0].value;
  if (!root_value.is_object())
    return Err(r.error(
        "", "expected a mapping with clusters, users and contexts at the top level, got " + kind_name(root_value)));
  const json::object& root = root_value.get_object();
  // A key "foo:" with a wrong type reads "foo: expected ..." as the field is at the top level.
  if (auto e = check_version_and_kind(r, root)) return Err(*e);
  if (auto e = parse_named_list(r, root, "clusters", "cluster", config.clusters, parse_cluster)) return Err(*e);
  if (auto e = parse_named_list(r, root, "users", "user", config.users, parse_user)) return Err(*e);
  if (auto e = parse_named_list(r, root, "contexts", "context", config.contexts, parse_context)) return Err(*e);
  if (const json::value* current = FileReader::member(root, "current-context")) {
    if (!current->is_string()) return Err(r.type_error("current-context", "a string", *current));
    config.current_context = std::string(current->get_string());
    if (!config.current_context.empty()) config.current_context_file = path;
  }
  return config;
}

Kubeconfig merge_kubeconfigs(const std::vector<Kubeconfig>& files) {
  Kubeconfig merged;
  for (const Kubeconfig& file : files) {
    // map::insert keeps an existing entry: the first file that defines a name wins entirely.
    merged.clusters.insert(file.clusters.begin(), file.clusters.end());
    merged.users.insert(file.users.begin(), file.users.end());
    merged.contexts.insert(file.contexts.begin(), file.contexts.end());
    if (merged.current_context.empty() && !file.current_context.empty()) {
      merged.current_context = file.current_context;
      merged.current_context_file = file.current_context_file;
    }
    merged.files.insert(merged.files.end(), file.files.begin(), file.files.end());
  }
  return merged;
}

namespace {

struct LoadedFiles {
  Kubeconfig config;
  std::vector<std::string> missing;  // files that do not exist (skipped)
};

Result<LoadedFiles, ConfigError> load_files(const std::vector<std::string>& paths, bool must_exist,
                                            const KubeconfigBudgets& budgets) {
  LoadedFiles out;
  std::vector<Kubeconfig> parsed;
  std::set<std::string> seen;
  for (const std::string& path : paths) {
    if (path.empty() || !seen.insert(path).second) continue;
    auto text = read_file(path, budgets.max_file_size);
    if (!text && text.error().not_found && !must_exist) {
      out.missing.push_back(path);
      continue;
    }
    if (!text && text.error().too_large)
      return Err(error_at(path, "",
                          (text.error().size ? std::to_string(text.error().size) + " bytes, over " : "grew past ") +
                              "kube.max-kubeconfig-size (" + size_text(budgets.max_file_size) +
                              "): not read; if it really is the kubeconfig, raise --max-kubeconfig-size"));
    if (!text) return Err(error_at(path, "", "cannot read: " + text.error().reason));
    auto config = parse_kubeconfig(text.value(), path, budgets.max_alias_expansion);
    if (!config) return Err(config.error());
    parsed.push_back(std::move(config.value()));
  }
  out.config = merge_kubeconfigs(parsed);
  return out;
}

}  // namespace

Result<Kubeconfig, ConfigError> load_kubeconfig_files(const std::vector<std::string>& paths, bool must_exist,
                                                      const KubeconfigBudgets& budgets) {
  auto loaded = load_files(paths, must_exist, budgets);
  if (!loaded) return Err(loaded.error());
  if (loaded.value().config.files.empty())
    return Err(error_at("", "", "none of these kubeconfig files exists: " + join(loaded.value().missing, ", ")));
  return std::move(loaded.value().config);
}

// ---------------------------------------------------------------------------------------------
// From a merged kubeconfig to the ClientConfig of one context.

namespace {

std::string entry_path(std::string_view list, const Origin& origin, std::string_view inner) {
  return indexed(std::string(list), origin.index) + "." + std::string(inner);
}

std::string names_of(const auto& map) {
  std::vector<std::string> names;
  for (const auto& [name, entry] : map) names.push_back(in_quotes(name));
  return join(names, ", ");
}

struct Selected {
  std::string name;
  const KubeconfigContext* context = nullptr;
  const KubeconfigCluster* cluster = nullptr;
  const KubeconfigUser* user = nullptr;  // nullptr: anonymous
};

Result<Selected, ConfigError> select_context(const Kubeconfig& config, const std::string& override_name) {
  const std::string all_files = join(config.files, ":");
  Selected s;
  s.name = override_name.empty() ? config.current_context : override_name;
  if (s.name.empty()) {
    std::string hint =
        config.contexts.empty()
            ? "no context is defined either: add one with kubectl config set-context"
            : "pass --context NAME or run kubectl config use-context NAME (defined: " + names_of(config.contexts) + ")";
    return Err(error_at(all_files, "current-context", "current-context is not set: " + hint));
  }
  auto ctx = config.contexts.find(s.name);
  if (ctx == config.contexts.end()) {
    std::string defined = config.contexts.empty() ? "none is defined" : "defined: " + names_of(config.contexts);
    if (!override_name.empty())
      return Err(
          error_at(all_files, "--context",
                   "context " + in_quotes(s.name) + " (from --context) is not defined in contexts (" + defined + ")"));
    return Err(error_at(config.current_context_file, "current-context",
                        "current-context names context " + in_quotes(s.name) + ", which is not defined in contexts (" +
                            defined + "): run kubectl config use-context NAME"));
  }
  s.context = &ctx->second;
  const KubeconfigContext& c = ctx->second;
  const std::string& file = c.origin.file;
  const std::string what = "context " + in_quotes(s.name);
  if (c.cluster.empty()) {
    std::string field = entry_path("contexts", c.origin, "context.cluster");
    return Err(error_at(file, field, what + " names no cluster: set " + field + " to one of the clusters"));
  }
  auto cluster = config.clusters.find(c.cluster);
  if (cluster == config.clusters.end())
    return Err(error_at(file, entry_path("contexts", c.origin, "context.cluster"),
                        what + " names cluster " + in_quotes(c.cluster) + ", which is not defined in clusters"));
  s.cluster = &cluster->second;
  if (!c.user.empty()) {
    auto user = config.users.find(c.user);
    if (user == config.users.end())
      return Err(error_at(file, entry_path("contexts", c.origin, "context.user"),
                          what + " names user " + in_quotes(c.user) + ", which is not defined in users"));
    s.user = &user->second;
  }
  if (!c.namespace_.empty() && !is_dns1123_label(c.namespace_)) {
    std::string field = entry_path("contexts", c.origin, "context.namespace");
    return Err(
        error_at(file, field,
                 field + " " + in_quotes(c.namespace_) +
                     " is not a valid namespace name: use lower-case letters, digits and '-', at most 63 characters"));
  }
  return s;
}

// Reads a file a kubeconfig names; the error names the field and the path.
Result<std::string, ConfigError> read_named_file(const std::string& kubeconfig, const std::string& field,
                                                 const std::string& path) {
  auto text = read_file(path);
  if (!text) return Err(error_at(kubeconfig, field, field + " " + path + ": cannot read: " + text.error().reason));
  return std::move(text.value());
}

MaybeError apply_cluster(const KubeconfigCluster& c, bool has_client_certificate, ClientConfig& out) {
  const std::string& file = c.origin.file;
  auto field = [&](std::string_view name) { return entry_path("clusters", c.origin, "cluster.") + std::string(name); };
  if (c.server.empty())
    return error_at(file, field("server"),
                    field("server") + " is missing: set it to the API server's URL, e.g. https://127.0.0.1:6443");

  if (!c.certificate_authority_data.empty()) {
    out.ca_pem = c.certificate_authority_data;
    if (!c.certificate_authority.empty())
      out.warnings.push_back(file + ": " + field("certificate-authority-data") + " and " +
                             field("certificate-authority") + " are both set; the -data field is used");
    if (count_certificates(out.ca_pem) == 0)
      return error_at(file, field("certificate-authority-data"),
                      field("certificate-authority-data") +
                          " holds no PEM certificate: it must be the base64 of a "
                          "PEM file (-----BEGIN CERTIFICATE-----)");
  } else if (!c.certificate_authority.empty()) {
    auto pem = read_named_file(file, field("certificate-authority"), c.certificate_authority);
    if (!pem) return pem.error();
    out.ca_pem = std::move(pem.value());
    out.ca_file = c.certificate_authority;
    if (count_certificates(out.ca_pem) == 0)
      return error_at(file, field("certificate-authority"),
                      field("certificate-authority") + " " + c.certificate_authority +
                          " holds no PEM certificate (-----BEGIN CERTIFICATE-----)");
  }
  out.insecure_skip_tls_verify = c.insecure_skip_tls_verify;
  if (out.insecure_skip_tls_verify && !out.ca_pem.empty())
    return error_at(file, field("insecure-skip-tls-verify"),
                    field("insecure-skip-tls-verify") +
                        " is true and a certificate authority is set: remove one of them (client-go refuses both)");

  bool default_tls = !out.ca_pem.empty() || has_client_certificate || out.insecure_skip_tls_verify;
  auto server = parse_server_url(c.server, default_tls);
  if (!server) return error_at(file, field("server"), field("server") + " " + server.error());
  out.server = std::move(server.value());

  if (!c.proxy_url.empty()) {
    if (auto problem = proxy_url_problem(c.proxy_url))
      return error_at(file, field("proxy-url"), field("proxy-url") + " " + *problem);
    out.proxy_url = c.proxy_url;
  }
  out.tls_server_name = c.tls_server_name;
  out.disable_compression = c.disable_compression;
  return std::nullopt;
}

// client-certificate(-data) and client-key(-data): both or neither; data wins over files.
MaybeError apply_client_certificate(const KubeconfigUser& u, ClientConfig& out) {
  const std::string& file = u.origin.file;
  auto field = [&](std::string_view name) { return entry_path("users", u.origin, "user.") + std::string(name); };
  const bool has_cert = !u.client_certificate_data.empty() || !u.client_certificate.empty();
  const bool has_key = !u.client_key_data.empty() || !u.client_key.empty();
  if (!has_cert && !has_key) return std::nullopt;
  const std::string user_field = entry_path("users", u.origin, "user");
  if (!has_key)
    return error_at(file, field("client-key"),
                    user_field + " has a client certificate but no client-key or client-key-data: set both or neither");
  if (!has_cert)
    return error_at(file, field("client-certificate"),
                    user_field +
                        " has a client key but no client-certificate or client-certificate-data: set both "
                        "or neither");
  auto load = [&](const std::string& data, const std::string& path, std::string_view name,
                  std::string& pem) -> MaybeError {
    if (!data.empty()) {
      pem = data;
      if (!path.empty())
        out.warnings.push_back(file + ": " + field(std::string(name) + "-data") + " and " + field(name) +
                               " are both set; the -data field is used");
      return std::nullopt;
    }
    auto text = read_named_file(file, field(name), path);
    if (!text) return text.error();
    pem = std::move(text.value());
    return std::nullopt;
  };
  if (auto e = load(u.client_certificate_data, u.client_certificate, "client-certificate", out.client_certificate_pem))
    return e;
  if (auto e = load(u.client_key_data, u.client_key, "client-key", out.client_key_pem)) return e;
  if (std::string problem = client_key_pair_problem(out.client_certificate_pem, out.client_key_pem); !problem.empty())
    return error_at(file, user_field, user_field + ": " + problem);
  return std::nullopt;
}

MaybeError check_exec(const KubeconfigUser& u, const ExecConfig& x) {
  const std::string& file = u.origin.file;
  const std::string path = entry_path("users", u.origin, "user.exec");
  if (x.command.empty())
    return error_at(file, path + ".command", path + ".command is missing: name the credential plugin to run");
  if (x.api_version.empty())
    return error_at(file, path + ".apiVersion", path + ".apiVersion is missing: use " + std::string(kExecApiVersionV1));
  if (x.api_version != kExecApiVersionV1 && x.api_version != kExecApiVersionV1beta1)
    return error_at(file, path + ".apiVersion",
                    path + ".apiVersion " + in_quotes(x.api_version) + " is not supported: use " +
                        std::string(kExecApiVersionV1) + " or " + kExecApiVersionV1beta1);
  if (x.interactive_mode.empty())
    return error_at(file, path + ".interactiveMode",
                    path + ".interactiveMode is missing (required with " + std::string(kExecApiVersionV1) +
                        "): use Never for a controller");
  if (x.interactive_mode != "Never" && x.interactive_mode != "IfAvailable" && x.interactive_mode != "Always")
    return error_at(
        file, path + ".interactiveMode",
        path + ".interactiveMode " + in_quotes(x.interactive_mode) + " is not one of Never, IfAvailable, Always");
  for (std::size_t i = 0; i < x.env.size(); ++i)
    if (x.env[i].name.empty()) {
      std::string field = indexed(path + ".env", i) + ".name";
      return error_at(file, field, field + " is missing: every env entry needs a name");
    }
  return std::nullopt;
}

// The user's credentials that become the Authorization header (the token file is checked when
// read): the error names the field and a position, never the value.
MaybeError check_header_credentials(const KubeconfigUser& u) {
  const std::string path = entry_path("users", u.origin, "user");
  if (!u.token.empty())
    if (auto bad = http::check_bearer_token(u.token, kMaxBearerTokenBytes))
      return error_at(u.origin.file, path + ".token", path + ".token " + bad.describe());
  for (const auto& [field, value] : {std::pair<const char*, const std::string*>{"username", &u.username},
                                     {"password", &u.password}})
    if (auto bad = http::check_header_value(*value, kMaxBasicAuthBytes))
      return error_at(u.origin.file, path + "." + field, path + "." + field + " " + bad.describe());
  return std::nullopt;
}

MaybeError apply_user(const KubeconfigUser& u, const KubeconfigCluster& cluster, ClientConfig& out) {
  const std::string& file = u.origin.file;
  const std::string path = entry_path("users", u.origin, "user");
  if (!u.auth_provider.empty())
    return error_at(file, path + ".auth-provider",
                    path + ".auth-provider " + in_quotes(u.auth_provider) +
                        " is not supported: use an exec credential plugin (users[].user.exec) instead, e.g. "
                        "gke-gcloud-auth-plugin or kubelogin");
  if (!u.impersonation_field.empty())
    return error_at(file, path + "." + u.impersonation_field,
                    path + "." + u.impersonation_field +
                        ": impersonation is not supported: remove it and give this user the rights directly");
  const bool has_token = !u.token.empty() || !u.token_file.empty();
  const bool has_basic = !u.username.empty() || !u.password.empty();
  const bool has_cert = !u.client_certificate.empty() || !u.client_certificate_data.empty() || !u.client_key.empty() ||
                        !u.client_key_data.empty();
  if (has_token && has_basic)
    return error_at(file, path,
                    path + " has both a token and a username/password: keep only one authentication method");
  if (u.exec && (has_token || has_basic || has_cert))
    return error_at(file, path + ".exec",
                    path +
                        " has an exec plugin and also a token, a username/password or a client certificate: "
                        "keep only one authentication method");

  if (auto e = check_header_credentials(u)) return e;
  if (auto e = apply_client_certificate(u, out)) return e;
  out.username = u.username;
  out.password = u.password;
  if (!u.token.empty()) {
    out.bearer_token = u.token;
    out.token_file = u.token_file;  // still re-read later, as client-go does
  } else if (!u.token_file.empty()) {
    auto token = kube::read_token_file(u.token_file);
    if (!token)
      return error_at(file, path + ".tokenFile", path + ".tokenFile " + u.token_file + ": " + token.error().message);
    out.bearer_token = std::move(token.value());
    out.token_file = u.token_file;
  }
  if (u.exec) {
    if (auto e = check_exec(u, *u.exec)) return e;
    out.exec = *u.exec;
    out.exec->cluster_config = cluster.exec_extension;
  }
  return std::nullopt;
}

// client-go sends credentials only over TLS; over plain HTTP they are dropped.
void drop_credentials_over_http(ClientConfig& out) {
  const bool any = !out.bearer_token.empty() || !out.token_file.empty() || !out.username.empty() ||
                   !out.password.empty() || !out.client_certificate_pem.empty() || out.exec.has_value();
  if (out.server.is_https() || !any) return;
  out.bearer_token.clear();
  out.token_file.clear();
  out.username.clear();
  out.password.clear();
  out.client_certificate_pem.clear();
  out.client_key_pem.clear();
  out.exec.reset();
  out.warnings.push_back("server " + out.server.to_string() + " is plain HTTP: the credentials of user " +
                         in_quotes(out.user) + " are not sent (use https:// to send them)");
}

}  // namespace

Result<ClientConfig, ConfigError> client_config_from_kubeconfig(const Kubeconfig& config,
                                                                const std::string& context_name) {
  auto selected = select_context(config, context_name);
  if (!selected) return Err(selected.error());
  const Selected& s = selected.value();

  ClientConfig out;
  out.source = join(config.files, ":");
  out.context = s.name;
  out.namespace_ = s.context->namespace_.empty() ? "default" : s.context->namespace_;
  if (s.user) {
    out.user = s.context->user;
    if (auto e = apply_user(*s.user, *s.cluster, out)) return Err(*e);
  }
  if (auto e = apply_cluster(*s.cluster, !out.client_certificate_pem.empty(), out)) return Err(*e);
  drop_credentials_over_http(out);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Auto-detection.

namespace {

std::string env_get(const Environment& env, const char* name) {
  auto it = env.find(name);
  return it == env.end() ? std::string() : it->second;
}

std::vector<std::string> split_list(const std::string& value) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (;;) {
    std::size_t colon = value.find(':', start);
    std::string item = value.substr(start, colon == value.npos ? value.npos : colon - start);
    if (!item.empty() && std::find(out.begin(), out.end(), item) == out.end()) out.push_back(item);
    if (colon == value.npos) return out;
    start = colon + 1;
  }
}

std::string home_kubeconfig(const Environment& env) {
  std::string home = env_get(env, "HOME");
  return home.empty() ? std::string() : (fs::path(home) / ".kube" / "config").string();
}

constexpr const char* kNoKubeconfig = "no kubeconfig: set --kubeconfig or KUBECONFIG, or run in a cluster";

Result<ClientConfig, ConfigError> load_and_select(const std::vector<std::string>& paths, bool must_exist,
                                                  const LoadOptions& options) {
  auto loaded = load_files(paths, must_exist, options.budgets);
  if (!loaded) return Err(loaded.error());
  if (loaded.value().config.files.empty())
    return Err(error_at("", "KUBECONFIG",
                        "KUBECONFIG names " + join(loaded.value().missing, ":") +
                            ", but none of these files exists: fix KUBECONFIG or unset it"));
  return client_config_from_kubeconfig(loaded.value().config, options.context);
}

}  // namespace

std::vector<std::string> kubeconfig_paths(const LoadOptions& options, const Environment& env) {
  if (!options.kubeconfig.empty()) return {options.kubeconfig};
  if (auto listed = split_list(env_get(env, "KUBECONFIG")); !listed.empty()) return listed;
  if (std::string home = home_kubeconfig(env); !home.empty()) return {home};
  return {};
}

Result<ClientConfig, ConfigError> load_client_config(const LoadOptions& options, const Environment& env) {
  if (!options.kubeconfig.empty()) return load_and_select({options.kubeconfig}, true, options);
  if (auto listed = split_list(env_get(env, "KUBECONFIG")); !listed.empty())
    return load_and_select(listed, false, options);

  const std::string home = home_kubeconfig(env);
  const bool home_exists = !home.empty() && file_exists(home);
  const bool in_cluster =
      !env_get(env, "KUBERNETES_SERVICE_HOST").empty() && !env_get(env, "KUBERNETES_SERVICE_PORT").empty();
  if (in_cluster) {
    auto config = load_in_cluster(env, options.service_account_dir);
    if (config) {
      if (!options.context.empty())
        config.value().warnings.push_back("--context " + in_quotes(options.context) +
                                          " is ignored: running in a cluster with its service account");
      return config;
    }
    if (!home_exists) return config;
    auto fallback = load_and_select({home}, true, options);
    if (fallback)
      fallback.value().warnings.push_back("in-cluster configuration skipped (" + config.error().to_string() +
                                          "); using " + home);
    return fallback;
  }
  if (!home_exists) return Err(error_at("", "", kNoKubeconfig));
  return load_and_select({home}, true, options);
}

Environment process_environment() {
  Environment env;
  for (char** entry = environ; entry && *entry; ++entry) {
    std::string_view kv(*entry);
    std::size_t eq = kv.find('=');
    if (eq == kv.npos) continue;
    env.emplace(std::string(kv.substr(0, eq)), std::string(kv.substr(eq + 1)));
  }
  return env;
}

}  // namespace stowage::kube
