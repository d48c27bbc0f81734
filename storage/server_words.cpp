#include "storage/server_words.hpp"

#include <string_view>

namespace stowage::storage {

std::string redacted(std::string text, const std::string& secret) {
  static constexpr std::string_view kMark = "<redacted>";
  if (secret.size() < 4) return text;
  // Searching on after the marker, not from the start: a secret inside "<redacted>" would loop.
  for (auto at = text.find(secret); at != std::string::npos; at = text.find(secret, at + kMark.size()))
    text.replace(at, secret.size(), kMark);
  return text;
}

std::string server_words(std::string text, const std::string& secret) {
  text = redacted(std::move(text), secret);
  for (char& c : text)
    if (static_cast<unsigned char>(c) < 0x20) c = ' ';
  if (text.size() > 300) text = text.substr(0, 300) + "...";
  return text;
}

}  // namespace stowage::storage
