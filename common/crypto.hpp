#pragma once
// Hashing, HMAC, Base64 and randomness on OpenSSL 3. Nothing here logs its inputs.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace stowage::crypto {

std::string sha256(std::string_view data);                       // raw 32 bytes
std::string hmac_sha256(std::string_view key, std::string_view data);  // raw 32 bytes
std::string hex(std::string_view bytes);                         // lower-case hex

std::string base64_encode(std::string_view bytes);
// Strict standard Base64 (RFC 4648, padding required as the API server emits it); nullopt when malformed.
std::optional<std::string> base64_decode(std::string_view text);

std::string random_bytes(std::size_t n);   // CSPRNG
std::string uuid_v4();                     // "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx"

}  // namespace stowage::crypto
