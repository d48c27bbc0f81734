#include "storage/credential_endpoint.hpp"

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <optional>
#include <utility>

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

http::Request form_post(std::string target, std::string body, std::string_view accept, std::string_view content_type) {
  http::Request request;
  request.method = "POST";
  request.target = std::move(target);
  request.headers = {{"Content-Type", std::string(content_type)}, {"Accept", std::string(accept)}};
  request.body = std::move(body);
  return request;
}

boost::asio::awaitable<http::HttpResult> send_within(http::Client& client, http::Url origin, http::Request request,
                                                     std::chrono::seconds timeout) {
  namespace asio = boost::asio;
  using namespace asio::experimental::awaitable_operators;
  // co_spawn (under operator||) wants a default-constructible result: Result has none.
  auto attempt = [&client](http::Url o, http::Request r) -> asio::awaitable<std::optional<http::HttpResult>> {
    const http::TlsSettings plain;
    co_return co_await client.send(std::move(o), plain, std::move(r));
  };
  asio::steady_timer timer(co_await asio::this_coro::executor, timeout);
  auto raced = co_await (attempt(std::move(origin), std::move(request)) || timer.async_wait(asio::use_awaitable));
  if (raced.index() == 0 && std::get<0>(raced)) co_return std::move(*std::get<0>(raced));
  co_return Err(http::HttpError{http::HttpError::Kind::Timeout,
                                "no answer within " + std::to_string(timeout.count()) + " s", false});
}

}  // namespace stowage::storage
