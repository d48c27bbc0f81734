#pragma once
// Azure Blob request authentication, with no I/O: Shared Key signing, SAS tokens, account SAS
// generation and the standard storage connection string.
//
// Guarantees:
//  - shared_key_string_to_sign() is the string Azure (and Azurite) compute for a request:
//      VERB \n Content-Encoding \n Content-Language \n Content-Length \n Content-MD5 \n Content-Type \n
//      Date \n If-Modified-Since \n If-Match \n If-None-Match \n If-Unmodified-Since \n Range \n
//      CanonicalizedHeaders CanonicalizedResource
//    with Content-Length empty when 0, Date empty when x-ms-date is sent, every x-ms-* header
//    lower-cased, sorted and trimmed, and the resource "/" + account + URI path followed by each
//    query parameter (name lower-cased, value decoded, sorted) as "\nname:v1,v2". For a path-style
//    URL (the emulator's http://127.0.0.1:10000/devstoreaccount1/...) the URI path already holds
//    the account, so the account appears twice: that is what the service expects.
//  - Error strings never hold a key, a SAS token or a signature: they name the part that is wrong.
//
// Assumes: request targets are origin-form and already percent-encoded (http::uri_encode); the
// path is signed exactly as sent.
#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>

#include "common/result.hpp"
#include "common/http_client.hpp"

namespace stowage::storage::azure {

// The REST version sent as x-ms-version: accepted by Azure and by Azurite 3.37 (which rejects
// versions newer than it knows), and >= 2020-12-06 so account SAS tokens sign the encryption scope.
inline constexpr std::string_view kApiVersion = "2021-12-02";

// Azurite's well-known development account (public: printed in Microsoft's documentation).
inline constexpr std::string_view kDevelopmentAccount = "devstoreaccount1";
inline constexpr std::string_view kDevelopmentKey =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

// "Mon, 01 Jan 2024 00:00:00 GMT" (RFC 1123, as x-ms-date wants it), independent of the locale.
std::string rfc1123_date(std::chrono::system_clock::time_point t);

// "/account/path\nname:value..." for a target such as "/c/b?restype=container&comp=list".
std::string canonicalized_resource(std::string_view target, std::string_view account);

// The canonicalized x-ms-* headers, each "name:value\n".
std::string canonicalized_headers(const http::Request& request);

std::string shared_key_string_to_sign(const http::Request& request, std::string_view account);

// An account name and its decoded key. Signs requests with Shared Key.
class SharedKey {
 public:
  SharedKey() = default;
  // Decodes the Base64 account key; the error names the problem without echoing the key.
  static Result<SharedKey, std::string> make(std::string account, std::string_view base64_key);

  const std::string& account() const { return account_; }
  // Base64(HMAC-SHA256(key, text)).
  std::string signature(std::string_view text) const;
  // Adds "Authorization: SharedKey account:signature" for the request as it stands (sign last).
  void sign(http::Request& request) const;

 private:
  std::string account_;
  std::string key_;  // raw bytes
};

// A SAS token as users paste it: surrounding whitespace and one leading '?' removed. Fails when it
// does not look like a SAS (no sig= parameter), holds a control character, a space or '#' (it is
// appended to request targets), or is longer than kMaxSasTokenBytes, without echoing it.
// Azure's own SAS tokens are a few hundred bytes; 8 KiB is the request-line limit of common HTTP
// front ends, so a longer token could not be sent anyway.
inline constexpr std::size_t kMaxSasTokenBytes = 8 * 1024;
struct SasToken {
  std::string query;  // "sv=...&sig=..."
};
Result<SasToken, std::string> normalize_sas_token(std::string_view token);

// Appends the SAS token's query string to the request target ("?" or "&" as needed). No
// Authorization header is added: the token is the credential.
void apply_sas(http::Request& request, std::string_view token);

// An account SAS (Azure's "Create an account SAS", version >= 2020-12-06):
//   string to sign = account \n sp \n ss \n srt \n st \n se \n sip \n spr \n sv \n ses \n
// signed with the account key. Returns the query string (no leading '?').
struct AccountSasParams {
  std::string permissions = "rwdlc";  // sp
  std::string services = "b";         // ss
  std::string resource_types = "sco"; // srt
  std::string start;                  // st, optional, "2024-01-01T00:00:00Z"
  std::string expiry;                 // se, required
  std::string ip_range;               // sip, optional
  std::string protocol;               // spr, optional: "https" or "https,http"
  std::string version = std::string(kApiVersion);  // sv
  std::string encryption_scope;       // ses, optional
};
std::string account_sas_string_to_sign(std::string_view account, const AccountSasParams& params);
std::string account_sas_token(const SharedKey& key, const AccountSasParams& params);

// Azure's storage connection string, e.g.
//   "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=...;EndpointSuffix=core.windows.net"
//   "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;AccountName=devstoreaccount1;AccountKey=..."
//   "BlobEndpoint=https://acct.blob.core.windows.net;SharedAccessSignature=sv=...&sig=..."
//   "UseDevelopmentStorage=true"
// Setting names are case-insensitive; other services' endpoints (Queue/Table/File/Dfs...) are
// ignored. Errors name the Secret key and, for a part that is not a known NAME=VALUE setting or
// holds a control character, its position ("part 3 of AZURE_STORAGE_CONNECTION_STRING is not
// NAME=VALUE"): never a value, and never an unknown name (a key pasted without `AccountKey=`
// would be one).
inline constexpr std::string_view kConnectionStringKey = "AZURE_STORAGE_CONNECTION_STRING";

struct ConnectionString {
  std::string blob_endpoint;  // resolved, without a trailing slash: from BlobEndpoint, or built
                              // from DefaultEndpointsProtocol, AccountName and EndpointSuffix
  std::string account_name;   // may be empty with BlobEndpoint + SharedAccessSignature
  std::string account_key;    // Base64, as given (checked to decode)
  std::string sas_token;      // normalized (no leading '?')
};
Result<ConnectionString, std::string> parse_connection_string(std::string_view text);

}  // namespace stowage::storage::azure
