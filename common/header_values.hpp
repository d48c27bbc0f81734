#pragma once
// Checks for text that becomes part of an HTTP request: header names and values, bearer tokens,
// request targets. One home for the rules so that every source of such text (Secrets, token
// endpoints, exec plugins, kubeconfigs) and the HTTP client's own last check agree on them.
//
// Guarantees:
//  - A value that passes check_header_value() cannot end a header line or start a new one: it
//    holds no CR, LF, NUL or other control character (CTL, 0x00-0x1F and 0x7F; HTAB too, which
//    no credential holds), and it is no longer than the limit the caller gives.
//  - A token that passes check_bearer_token() is RFC 6750 token68:
//      1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
//  - A ValueProblem names a position (a byte offset from 0) and a kind, never the text itself, so
//    describe() is safe for a status, a log or an Event even when the text is a secret.
// Assumes nothing about where the text came from; callers name the source (a Secret key, a file
// and field, a token endpoint) in front of describe().
#include <cstddef>
#include <string>
#include <string_view>

namespace stowage::http {

struct ValueProblem {
  enum class Kind { None, Empty, ControlCharacter, TooLong, NotToken68, NotFieldName, Space };
  Kind kind = Kind::None;
  std::size_t position = 0;  // ControlCharacter, NotToken68, NotFieldName, Space: the offending byte
  std::size_t limit = 0;     // TooLong: the limit that was exceeded
  bool trailing_newline = false;  // ControlCharacter: the value ends with "\n" or "\r\n"

  explicit operator bool() const { return kind != Kind::None; }
  // A predicate for a subject named by the caller, never quoting the text:
  //   "contains a control character (at byte 4)", "is longer than 8192 bytes", "is empty",
  //   "is not an RFC 6750 bearer token (the character at byte 12 is not allowed)".
  // A value that ends with a line break says so ("(at byte 20: a line break at the end)"); callers
  // that know where it came from may add how to fix it (trailing_newline).
  std::string describe() const;
};

// A header value (or a credential that becomes one): no CTL, at most `max_bytes`. An empty value
// passes (callers that need one say so). Bytes >= 0x80 pass (RFC 9110 obs-text).
ValueProblem check_header_value(std::string_view value, std::size_t max_bytes);

// A bearer token: not empty, at most `max_bytes`, no CTL (reported as such, first), token68 syntax.
ValueProblem check_bearer_token(std::string_view token, std::size_t max_bytes);

// A header name: RFC 9110 field-name = token = 1*tchar.
ValueProblem check_field_name(std::string_view name);

// A request target or a host: no CTL and no space (either would end the request line or the Host
// header early).
ValueProblem check_request_line_part(std::string_view text);

}  // namespace stowage::http
