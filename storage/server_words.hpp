#pragma once
// What a credential server said, made fit for a status message: the value just sent to it (a token,
// an assertion, a secret) taken out should the server echo it, control characters blanked, and cut
// short. Shared by the AWS, Azure and GCS credential exchanges.
#include <string>

namespace stowage::storage {

// `text` with every occurrence of `secret` replaced by "<redacted>" (a secret under 4 bytes is left:
// it would match ordinary words). Terminates whatever the secret is, even one found in the marker.
std::string redacted(std::string text, const std::string& secret);

// redacted(), then control characters as spaces and at most 300 bytes ("..." when cut).
std::string server_words(std::string text, const std::string& secret);

}  // namespace stowage::storage
