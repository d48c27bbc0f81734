#pragma once
// YAML <-> JSON, the way kubectl reads manifests: multi-document streams, plain scalars typed by
// the YAML 1.2 core schema (null, true/false, integers, floats), quoted scalars always strings.
#include <boost/json/value.hpp>

#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"

namespace stowage::kube {

struct YamlDocument {
  boost::json::value value;
  int line = 1;  // 1-based line where the document's content starts
};

struct YamlError {
  int line = 0;    // 1-based; 0 when unknown
  int column = 0;  // 1-based; 0 when unknown
  std::string message;
};

// Empty documents (a lone "---", comments only) are skipped.
Result<std::vector<YamlDocument>, YamlError> parse_yaml_documents(std::string_view text);

// Block-style YAML of a JSON value, keys in the value's order (kubectl get -o yaml style).
std::string to_yaml(const boost::json::value& value);

}  // namespace stowage::kube
