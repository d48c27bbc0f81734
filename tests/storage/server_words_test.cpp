// storage/server_words.*: what a credential server said, fit for a status message.
#include <catch2/catch.hpp>

#include <string>

#include "storage/server_words.hpp"

using stowage::storage::redacted;
using stowage::storage::server_words;

TEST_CASE("server words: an echoed secret is taken out, however it relates to the marker") {
  CHECK(redacted("bad assertion eyJabc.def for client", "eyJabc.def") == "bad assertion <redacted> for client");
  CHECK(redacted("eyJx eyJx", "eyJx") == "<redacted> <redacted>");
  // A secret found inside the marker (each of these made the old loops, which searched again from the
  // start after every replacement, run forever).
  CHECK(redacted("the token was wrong", "token") == "the <redacted> was wrong");
  CHECK(redacted("a redacted edac", "edac") == "a r<redacted>ted <redacted>");
  CHECK(redacted("<redacted>", "<redacted>") == "<redacted>");
  // A secret under 4 bytes would match ordinary words: left alone.
  CHECK(redacted("ok then", "ok") == "ok then");
}

TEST_CASE("server words: control characters blanked, long answers cut") {
  CHECK(server_words("line\r\nInjected: yes\ttab", "") == "line  Injected: yes tab");
  std::string longer(400, 'x');
  auto cut = server_words(longer, "");
  CHECK(cut.size() == 303);
  CHECK(cut.substr(300) == "...");
  CHECK(server_words("refused: s3cr3t-value\n", "s3cr3t-value") == "refused: <redacted> ");
}
