// The checks on text that becomes part of an HTTP request (common/header_values.hpp): control
// characters by position, lengths, RFC 6750 token68, RFC 9110 field names; no message quotes the text.
#include <catch2/catch.hpp>

#include <string>

#include "common/header_values.hpp"

using namespace stowage;
using Kind = http::ValueProblem::Kind;

TEST_CASE("header values: CR, LF, NUL and every other control character are found by position") {
  CHECK_FALSE(http::check_header_value("AKIAIOSFODNN7EXAMPLE", 1024));
  CHECK_FALSE(http::check_header_value("", 1024));
  CHECK_FALSE(http::check_header_value("caf\xc3\xa9 and spaces", 1024));  // obs-text and SP are allowed

  auto crlf = http::check_header_value("AKIA\r\nX-Injected: yes", 1024);
  CHECK(crlf.kind == Kind::ControlCharacter);
  CHECK(crlf.position == 4);
  CHECK(crlf.describe() == "contains a control character (at byte 4)");
  CHECK(crlf.describe().find("AKIA") == std::string::npos);
  CHECK(http::check_header_value(std::string("ab\0cd", 5), 1024).position == 2);
  CHECK(http::check_header_value("a\nb", 1024).position == 1);
  CHECK(http::check_header_value("tab\there", 1024).kind == Kind::ControlCharacter);
  CHECK(http::check_header_value("del\x7f", 1024).position == 3);
  CHECK(http::check_header_value("\x1f", 1024).kind == Kind::ControlCharacter);

  auto newline = http::check_header_value("AKIAIOSFODNN7EXAMPLE\n", 1024);
  CHECK(newline.trailing_newline);
  CHECK(newline.describe() == "contains a control character (at byte 20: a line break at the end)");
  CHECK(http::check_header_value("value\r\n", 1024).trailing_newline);
  CHECK_FALSE(http::check_header_value("a\nb", 1024).trailing_newline);
}

TEST_CASE("header values: the length limit is the caller's") {
  CHECK_FALSE(http::check_header_value(std::string(8, 'x'), 8));
  auto long_one = http::check_header_value(std::string(9, 'x'), 8);
  CHECK(long_one.kind == Kind::TooLong);
  CHECK(long_one.describe() == "is longer than 8 bytes");
}

TEST_CASE("bearer tokens: RFC 6750 token68, control characters named first") {
  for (const char* good : {"ya29.a0AfH6SMB-x_y~z+/", "abc==", "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln",
                           "k8s-aws-v1.aHR0cHM6Ly9zdHM", "t"}) {
    INFO(good);
    CHECK_FALSE(http::check_bearer_token(good, 8192));
  }
  CHECK(http::check_bearer_token("", 8192).kind == Kind::Empty);
  auto crlf = http::check_bearer_token("ya29.tok\r\nX-Injected: yes", 8192);
  CHECK(crlf.kind == Kind::ControlCharacter);
  CHECK(crlf.position == 8);
  auto space = http::check_bearer_token("ya29 tok", 8192);
  CHECK(space.kind == Kind::NotToken68);
  CHECK(space.position == 4);
  CHECK(space.describe() ==
        "is not an RFC 6750 bearer token: the character at byte 4 is not allowed (only letters, digits, - . _ ~ + / "
        "and a trailing =)");
  CHECK(http::check_bearer_token("a=b", 8192).position == 2);  // '=' only at the end
  CHECK(http::check_bearer_token("=abc", 8192).position == 0);
  CHECK(http::check_bearer_token("a,b", 8192).kind == Kind::NotToken68);
  CHECK(http::check_bearer_token("a\"b", 8192).kind == Kind::NotToken68);
  CHECK(http::check_bearer_token("caf\xc3\xa9", 8192).kind == Kind::NotToken68);
  CHECK(http::check_bearer_token(std::string(8193, 'a'), 8192).kind == Kind::TooLong);
}

TEST_CASE("header names are RFC 9110 tokens, request targets and hosts have no control character or space") {
  CHECK_FALSE(http::check_field_name("x-amz-security-token"));
  CHECK_FALSE(http::check_field_name("Authorization"));
  CHECK(http::check_field_name("").kind == Kind::Empty);
  CHECK(http::check_field_name("X-A: b").position == 3);
  CHECK(http::check_field_name("X\r\nInjected").kind == Kind::NotFieldName);
  CHECK(http::check_field_name("X\r\nInjected").describe() ==
        "is not an RFC 9110 token: the character at byte 1 is not allowed");

  CHECK_FALSE(http::check_request_line_part("/bucket/key?list-type=2&prefix=a%20b"));
  CHECK(http::check_request_line_part("/a b").kind == Kind::Space);
  CHECK(http::check_request_line_part("/a b").describe() == "contains a space (at byte 2)");
  CHECK(http::check_request_line_part("/a\r\nX: y").position == 2);
  CHECK(http::check_request_line_part("bucket\n.s3.amazonaws.com").kind == Kind::ControlCharacter);
}
