#pragma once
// Credential fingerprints: an HMAC-SHA256 of a Secret's relevant data under a random key kept in
// <state-dir>/fingerprint.key (mode 0600, outside the database), so the database can tell "the
// credentials changed" without holding anything that could be checked against a guessed secret.
#include <filesystem>
#include <map>
#include <string>

#include "common/result.hpp"

namespace stowage::persistence {

class Fingerprinter {
 public:
  // Loads the key, creating it on first use. Blocking (start-up only).
  static Result<Fingerprinter, std::string> load_or_create(const std::filesystem::path& state_dir);

  // Hex fingerprint of the key/value pairs (order-independent, unambiguous framing); "" for none.
  std::string fingerprint(const std::map<std::string, std::string>& data) const;

 private:
  explicit Fingerprinter(std::string key) : key_(std::move(key)) {}
  std::string key_;
};

}  // namespace stowage::persistence
