#pragma once
// Internal to kube/ (not part of its interface): the JSON field readers that the object parsers
// (model.cpp, repository.cpp) share. Guarantees: never throw; a problem is returned as a ParseError
// whose path is the field's JSON path ("spec.storage.s3.bucket") and whose message says what was
// expected and what was found ("expected a string, got a number (10)"). JSON null counts as absent
// (as Go's encoding/json treats it): the reader then leaves `out` as it was.
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kube/model.hpp"

namespace stowage::kube::fields {

using MaybeError = std::optional<ParseError>;

// "a.b" (or "b" when path is empty), and "a[3]".
std::string join(const std::string& path, std::string_view key);
std::string indexed(const std::string& path, std::size_t i);

// The string JSON-quoted, cut (on a UTF-8 boundary) after 60 characters with "..." appended.
std::string quoted_excerpt(std::string_view s);

// "a string (\"ten\")", "a number (10)", "an object", ... The value is left out when show_value is false.
std::string describe(const boost::json::value& v, bool show_value = true);

// "expected <expected>, got <describe(got)>" at path.
ParseError type_error(const std::string& path, std::string_view expected, const boost::json::value& got,
                      bool show_value = true);

// The member's value, or nullptr when it is absent or null.
const boost::json::value* member(const boost::json::object& o, std::string_view key);

MaybeError read_string(const boost::json::object& o, std::string_view key, const std::string& path, std::string& out);

using StringField = std::pair<std::string_view, std::string*>;

// read_string for each field in turn; the first error is returned.
MaybeError read_strings(const boost::json::object& o, const std::string& path,
                        std::initializer_list<StringField> fields);

// An integer; an integral double ("10.0" from YAML) is accepted, as kubectl does.
MaybeError read_int(const boost::json::object& o, std::string_view key, const std::string& path, std::int64_t& out);

MaybeError read_bool(const boost::json::object& o, std::string_view key, const std::string& path, bool& out);

// The member as an object (nullptr when absent or null), or a type error.
Result<const boost::json::object*, ParseError> read_object(const boost::json::object& o, std::string_view key,
                                                           const std::string& path);

// Appends the member's strings to out.
MaybeError read_string_list(const boost::json::object& o, std::string_view key, const std::string& path,
                            std::vector<std::string>& out);

}  // namespace stowage::kube::fields
