#include "storage/credential_endpoint.hpp"

#include "common/url.hpp"

namespace stowage::storage {

Result<CredentialEndpoint, std::string> credential_endpoint(std::string_view text) {
  auto parsed = url::parse(text, "");
  if (!parsed) return Err(parsed.error());
  const url::Parts& p = parsed.value();
  if (p.scheme != "https" && p.scheme != "http") return Err(std::string("is not an http(s) URL"));
  if (p.has_userinfo) return Err(std::string("has a user name or password before '@'"));
  if (p.has_fragment) return Err(std::string("has a fragment ('#')"));
  CredentialEndpoint out{
      http::Url{p.scheme, p.host, std::to_string(p.port_or_default()), p.path.empty() ? "/" : p.path}, {}};
  out.target = out.origin.path + (p.has_query ? "?" + p.query : std::string());
  return out;
}

}  // namespace stowage::storage
