// Header value, bearer token and field-name checks (see header_values.hpp).
#include "common/header_values.hpp"

namespace stowage::http {
namespace {

bool is_ctl(unsigned char c) { return c < 0x20 || c == 0x7f; }

bool is_alnum(unsigned char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// RFC 9110 5.6.2 tchar.
bool is_tchar(unsigned char c) {
  return is_alnum(c) || std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
}

// RFC 6750 2.1 b64token characters before the trailing '='s.
bool is_token68_char(unsigned char c) {
  return is_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/';
}

ValueProblem at(ValueProblem::Kind kind, std::size_t position) {
  ValueProblem p;
  p.kind = kind;
  p.position = position;
  return p;
}

// The first control character, if any; notes whether the value ends in a line break (the usual
// cause: `echo value | base64` instead of `echo -n`).
ValueProblem first_control(std::string_view value) {
  for (std::size_t i = 0; i < value.size(); ++i) {
    if (!is_ctl(static_cast<unsigned char>(value[i]))) continue;
    ValueProblem p = at(ValueProblem::Kind::ControlCharacter, i);
    std::string_view rest = value.substr(i);
    p.trailing_newline = rest == "\n" || rest == "\r\n";
    return p;
  }
  return {};
}

ValueProblem too_long(std::size_t limit) {
  ValueProblem p;
  p.kind = ValueProblem::Kind::TooLong;
  p.limit = limit;
  return p;
}

}  // namespace

std::string ValueProblem::describe() const {
  const std::string where = "(at byte " + std::to_string(position) + ")";
  switch (kind) {
    case Kind::None:
      return {};
    case Kind::Empty:
      return "is empty";
    case Kind::ControlCharacter:
      if (trailing_newline)
        return "contains a control character (at byte " + std::to_string(position) + ": a line break at the end)";
      return "contains a control character " + where;
    case Kind::TooLong:
      return "is longer than " + std::to_string(limit) + " bytes";
    case Kind::NotToken68:
      return "is not an RFC 6750 bearer token: the character at byte " + std::to_string(position) +
             " is not allowed (only letters, digits, - . _ ~ + / and a trailing =)";
    case Kind::NotFieldName:
      return "is not an RFC 9110 token: the character at byte " + std::to_string(position) + " is not allowed";
    case Kind::Space:
      return "contains a space " + where;
  }
  return {};
}

ValueProblem check_header_value(std::string_view value, std::size_t max_bytes) {
  if (auto p = first_control(value)) return p;
  if (value.size() > max_bytes) return too_long(max_bytes);
  return {};
}

ValueProblem check_bearer_token(std::string_view token, std::size_t max_bytes) {
  if (token.empty()) return at(ValueProblem::Kind::Empty, 0);
  if (auto p = check_header_value(token, max_bytes)) return p;
  std::size_t i = 0;
  while (i < token.size() && is_token68_char(static_cast<unsigned char>(token[i]))) ++i;
  if (i == 0) return at(ValueProblem::Kind::NotToken68, 0);  // at least one character before any '='
  while (i < token.size() && token[i] == '=') ++i;
  if (i < token.size()) return at(ValueProblem::Kind::NotToken68, i);
  return {};
}

ValueProblem check_field_name(std::string_view name) {
  if (name.empty()) return at(ValueProblem::Kind::Empty, 0);
  for (std::size_t i = 0; i < name.size(); ++i)
    if (!is_tchar(static_cast<unsigned char>(name[i]))) return at(ValueProblem::Kind::NotFieldName, i);
  return {};
}

ValueProblem check_request_line_part(std::string_view text) {
  if (auto p = first_control(text)) return p;
  if (auto space = text.find(' '); space != std::string_view::npos) return at(ValueProblem::Kind::Space, space);
  return {};
}

}  // namespace stowage::http
