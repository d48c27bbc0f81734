#include "common/proxy_environment.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string_view>
#include <vector>

#include "common/http_client.hpp"
#include "common/url.hpp"

namespace stowage::http {
namespace {

std::string env_any(const char* upper, const char* lower) {
  for (const char* name : {upper, lower}) {
    const char* v = std::getenv(name);
    if (v && *v) return v;
  }
  return {};
}

std::string lower_trimmed(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

// An IPv4 or IPv6 address in 16 bytes (IPv4 as ::ffff:a.b.c.d, as Go's net.IP holds it).
struct Ip {
  std::array<unsigned char, 16> bytes{};
  bool v4 = false;
};

std::optional<Ip> parse_ip(const std::string& text) {
  Ip ip;
  unsigned char v4[4];
  if (::inet_pton(AF_INET, text.c_str(), v4) == 1) {
    ip.v4 = true;
    ip.bytes[10] = ip.bytes[11] = 0xff;
    std::memcpy(ip.bytes.data() + 12, v4, 4);
    return ip;
  }
  if (::inet_pton(AF_INET6, text.c_str(), ip.bytes.data()) == 1) {
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    ip.v4 = std::memcmp(ip.bytes.data(), mapped, 12) == 0;
    return ip;
  }
  return std::nullopt;
}

bool is_loopback(const Ip& ip) {
  if (ip.v4) return ip.bytes[12] == 127;
  static const std::array<unsigned char, 16> one = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  return ip.bytes == one;
}

// Whether `ip` lies in `network`/`bits` (bits counted in the network's own family; IPv4 sits
// behind the 96-bit ::ffff: prefix, which both then share).
bool in_cidr(const Ip& ip, const Ip& network, int bits) {
  if (ip.v4 != network.v4) return false;
  int total = (network.v4 ? 96 : 0) + bits;
  for (int i = 0; i < 16; ++i) {
    int remaining = total - i * 8;
    if (remaining <= 0) break;
    unsigned char mask = static_cast<unsigned char>(0xff << (8 - std::min(remaining, 8)));
    if ((ip.bytes[i] & mask) != (network.bytes[i] & mask)) return false;
  }
  return true;
}

// "host:port" / "[v6]:port" / "host": the host (brackets removed) and the port ("" when none).
std::pair<std::string, std::string> split_entry(const std::string& entry) {
  if (!entry.empty() && entry.front() == '[') {
    auto close = entry.find(']');
    if (close == std::string::npos) return {entry, ""};
    std::string host = entry.substr(1, close - 1);
    if (close + 1 < entry.size() && entry[close + 1] == ':') return {host, entry.substr(close + 2)};
    return {host, ""};
  }
  auto colon = entry.find(':');
  if (colon != std::string::npos && entry.find(':', colon + 1) == std::string::npos)
    return {entry.substr(0, colon), entry.substr(colon + 1)};
  return {entry, ""};  // no port, or a bare IPv6 address
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Whether NO_PROXY exempts host:port.
bool exempt(const std::string& no_proxy, const std::string& host, const std::string& port) {
  std::optional<Ip> ip = parse_ip(host);
  std::string_view list = no_proxy;
  while (!list.empty()) {
    auto comma = list.find(',');
    std::string entry = lower_trimmed(list.substr(0, comma));
    list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
    if (entry.empty()) continue;
    if (entry == "*") return true;
    if (auto slash = entry.find('/'); slash != std::string::npos) {
      auto network = parse_ip(entry.substr(0, slash));
      std::string bits_text = entry.substr(slash + 1);
      if (!network || bits_text.empty() || bits_text.size() > 3 ||
          !std::all_of(bits_text.begin(), bits_text.end(), [](unsigned char c) { return std::isdigit(c); }))
        continue;  // not a CIDR: ignored, as Go ignores what it cannot parse
      int bits = std::stoi(bits_text);
      if (bits > (network->v4 ? 32 : 128)) continue;
      if (ip && in_cidr(*ip, *network, bits)) return true;
      continue;
    }
    auto [entry_host, entry_port] = split_entry(entry);
    if (entry_host.empty()) continue;
    if (auto entry_ip = parse_ip(entry_host)) {
      if (ip && entry_ip->bytes == ip->bytes && (entry_port.empty() || entry_port == port)) return true;
      continue;
    }
    if (ip) continue;  // domains never match IP hosts
    std::string domain = entry_host;
    if (domain.rfind("*.", 0) == 0) domain.erase(0, 1);
    bool match_itself = domain.front() != '.';
    if (match_itself) domain.insert(domain.begin(), '.');
    if ((ends_with(host, domain) || (match_itself && host == domain.substr(1))) &&
        (entry_port.empty() || entry_port == port))
      return true;
  }
  return false;
}

}  // namespace

ProxyEnvironment ProxyEnvironment::from_process() {
  ProxyEnvironment e;
  e.http_proxy = env_any("HTTP_PROXY", "http_proxy");
  e.https_proxy = env_any("HTTPS_PROXY", "https_proxy");
  e.no_proxy = env_any("NO_PROXY", "no_proxy");
  const char* method = std::getenv("REQUEST_METHOD");
  e.cgi = method && *method;
  return e;
}

std::string ProxyEnvironment::as_url(const std::string& value) {
  return url::has_scheme(value) ? value : "http://" + value;
}

std::string ProxyEnvironment::proxy_for(const Url& origin) const {
  std::string proxy;
  if (origin.scheme == "https")
    proxy = https_proxy;
  else if (origin.scheme == "http" && !cgi)
    proxy = http_proxy;
  if (proxy.empty()) return {};
  std::string host = lower_trimmed(origin.host);
  if (host == "localhost") return {};
  if (auto ip = parse_ip(host); ip && is_loopback(*ip)) return {};
  if (exempt(no_proxy, host, origin.port)) return {};
  return as_url(proxy);
}

}  // namespace stowage::http
