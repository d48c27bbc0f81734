#include "common/url.hpp"

#include <boost/url/ipv6_address.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>

#include <algorithm>
#include <optional>

#include "common/header_values.hpp"

namespace stowage::url {

namespace {

bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool all_digits(std::string_view s) { return std::all_of(s.begin(), s.end(), is_digit); }
bool host_name_char(char c) { return is_alpha(c) || is_digit(c) || c == '-' || c == '.' || c == '_'; }

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

std::optional<std::uint16_t> port_number(std::string_view port) {
  if (port.empty() || !all_digits(port)) return std::nullopt;
  std::uint32_t value = 0;
  for (char c : port) {
    value = value * 10 + static_cast<std::uint32_t>(c - '0');
    if (value > 65535) return std::nullopt;
  }
  if (value == 0) return std::nullopt;
  return static_cast<std::uint16_t>(value);
}

// Names the port only when it is digits: "user:password" written without "@host" reads as a host
// and a port, and that port is a password.
std::string port_problem(std::string_view port) {
  if (port.empty()) return "has ':' but no port after it: write HOST:PORT, or leave out the ':'";
  if (!all_digits(port)) return "has a port that is not a number from 1 to 65535";
  std::string shown = port.size() > 12 ? std::string(port.substr(0, 12)) + "..." : std::string(port);
  return "has the port \"" + shown + "\", which is not a number from 1 to 65535";
}

const std::string kHostProblem = "has a host name with characters other than letters, digits, '-', '.' and '_'";

// Why Boost.URL refused the text after "scheme://", in words: diagnosis only (the text is refused
// whatever this finds), so it may look at the text loosely.
std::string diagnose(std::string_view scheme, std::string_view rest) {
  std::string_view authority = rest.substr(0, rest.find_first_of("/?#"));
  const auto at = authority.rfind('@');
  if (at != std::string_view::npos) authority.remove_prefix(at + 1);
  if (!authority.empty() && authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) return "has an IPv6 address without the closing ']'";
    if (!boost::urls::parse_ipv6_address(authority.substr(1, close - 1)))
      return "has a bracketed host that is not an IPv6 address";
    std::string_view after = authority.substr(close + 1);
    if (!after.empty() && after.front() != ':') return "has text after the IPv6 address";
    if (!after.empty() && !port_number(after.substr(1))) return port_problem(after.substr(1));
  } else {
    const auto colon = authority.find(':');
    if (colon != std::string_view::npos && authority.find(':', colon + 1) != std::string_view::npos)
      return "has an IPv6 address without brackets: write " + std::string(scheme) + "://[ADDRESS]:PORT";
    if (colon != std::string_view::npos && !port_number(authority.substr(colon + 1)))
      return port_problem(authority.substr(colon + 1));
    std::string_view host = authority.substr(0, colon);
    if (!std::all_of(host.begin(), host.end(), host_name_char)) return kHostProblem;
  }
  if (at != std::string_view::npos) return "has a user name or password with characters a URL does not allow";
  return "has a path, query or fragment with characters a URL does not allow (percent-encode them)";
}

}  // namespace

std::uint16_t default_port(std::string_view scheme) {
  if (scheme == "https") return 443;
  if (scheme == "http") return 80;
  if (scheme == "socks5") return 1080;
  return 0;
}

std::uint16_t Parts::port_or_default() const { return port != 0 ? port : default_port(scheme); }

std::string Parts::bracketed_host() const { return ipv6 ? "[" + host + "]" : host; }

bool has_scheme(std::string_view text) {
  const auto sep = text.find("://");
  if (sep == std::string_view::npos || sep == 0 || !is_alpha(text.front())) return false;
  return std::all_of(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(sep),
                     [](char c) { return is_alpha(c) || is_digit(c) || c == '+' || c == '-' || c == '.'; });
}

Result<Parts, std::string> parse(std::string_view text, std::string_view default_scheme) {
  if (text.empty()) return Err("is empty");
  // Before anything else, and then never quoted: a line break here would end a request line.
  if (auto p = http::check_request_line_part(text)) return Err(p.describe());
  Parts parts;
  parts.scheme_given = has_scheme(text);
  if (!parts.scheme_given && default_scheme.empty()) return Err("has no scheme: write SCHEME://HOST[:PORT]");
  std::string full = parts.scheme_given ? std::string(text) : std::string(default_scheme) + "://" + std::string(text);
  {
    // Go's net/url (client-go, kubectl, the cloud SDKs) ends the user info at the authority's last
    // '@', so a password may hold a raw '@' ("http://user:p@ss@proxy:3128"); RFC 3986 does not allow
    // it there. Encoded here, all but the last, so that the same texts work as with kubectl.
    const std::size_t start = full.find("://") + 3;
    std::size_t end = full.find_first_of("/?#", start);
    if (end == std::string::npos) end = full.size();
    const std::size_t last = end > start ? full.rfind('@', end - 1) : std::string::npos;
    if (last != std::string::npos && last >= start)
      for (std::size_t i = last; i-- > start;)
        if (full[i] == '@') full.replace(i, 1, "%40");
  }
  const std::string_view after_scheme = std::string_view(full).substr(full.find("://") + 3);

  auto parsed = boost::urls::parse_uri(full);
  // Boost.URL 1.81 takes a path that does not start with '/' after an authority, which RFC 3986
  // (path-abempty) does not allow: "https://h:80x" would be host h, port 80 and path "x", and
  // "https://fd00::1:9000" host fd00 with an empty port. Refused here as the RFC refuses them.
  const bool rootless = parsed && !parsed.value().encoded_path().empty() && !parsed.value().encoded_path().starts_with('/');
  if (!parsed || rootless) return Err(diagnose(lower(full.substr(0, full.find("://"))), after_scheme));
  const boost::urls::url_view& u = parsed.value();
  parts.scheme = lower(u.scheme());

  switch (u.host_type()) {
    case boost::urls::host_type::ipv4:
      parts.host = std::string(u.encoded_host());
      break;
    case boost::urls::host_type::ipv6:
      parts.host = std::string(u.encoded_host_address());
      parts.ipv6 = true;
      break;
    case boost::urls::host_type::ipvfuture:
      return Err("has an IP address of a future format ([v...]), which is not supported");
    case boost::urls::host_type::name:
    case boost::urls::host_type::none: {
      std::string_view host = u.encoded_host();
      if (!std::all_of(host.begin(), host.end(), host_name_char)) return Err(kHostProblem);
      parts.host = std::string(host);
      break;
    }
  }
  if (parts.host.empty()) return Err("has no host");

  if (u.has_port()) {
    auto port = port_number(u.port());
    if (!port) return Err(port_problem(u.port()));
    parts.port = *port;
  }
  if (u.has_userinfo()) {
    parts.has_userinfo = true;
    parts.user = u.user();
    parts.password = u.password();
  }
  parts.path = std::string(u.encoded_path());
  parts.has_query = u.has_query();
  parts.query = std::string(u.encoded_query());
  parts.has_fragment = u.has_fragment();
  return parts;
}

}  // namespace stowage::url
