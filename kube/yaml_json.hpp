#pragma once
// YAML <-> JSON, the way kubectl reads manifests: multi-document streams, plain scalars typed by
// the YAML 1.2 core schema (null, true/false, integers, floats), quoted scalars always strings.
//
// Reading untrusted text is bounded: documents are converted one at a time, straight from the
// parser's events (no intermediate node tree), and two budgets stop a stream early with an error
// that says which budget ran out: the bytes that alias expansion adds (an alias bomb of 100 KB
// would otherwise expand to gigabytes) and the number of documents.
#include <boost/json/value.hpp>

#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"

namespace stowage::kube {

struct YamlDocument {
  boost::json::value value;
  int line = 1;  // 1-based line where the document's content starts
};

// Which budget stopped a read, if any.
enum class YamlBudget { none, alias_expansion, documents };

struct YamlError {
  int line = 0;    // 1-based; 0 when unknown
  int column = 0;  // 1-based; 0 when unknown
  std::string message;
  YamlBudget budget = YamlBudget::none;  // set when a YamlLimits budget ran out (the message says which)
};

// The default alias budget where a caller names none (exec plugin output, tests): 4 MiB.
inline constexpr std::uint64_t kDefaultMaxAliasBytes = 4u << 20;

struct YamlLimits {
  // Bytes that alias expansion may add to the whole text, all documents together. Every time an
  // alias is expanded, the value it stands for is counted: each scalar, sequence and mapping 16
  // bytes plus the text of its scalars and keys (about what the copy costs in memory). An anchored
  // sequence or mapping is counted once more where it is defined, for the copy kept for its aliases.
  std::uint64_t max_alias_bytes = kDefaultMaxAliasBytes;
  // Non-empty documents in the text; the first one beyond is an error.
  std::size_t max_documents = std::numeric_limits<std::size_t>::max();
};

// What a read used of the budgets, also when it failed or was stopped.
struct YamlUsage {
  std::size_t documents = 0;     // non-empty documents converted
  std::uint64_t alias_bytes = 0;  // counted as YamlLimits says
};

// Converts the documents of `text` in order, handing each non-empty one to `on_document` before
// the next is read; empty documents (a lone "---", comments only) are skipped. `on_document`
// returns false to stop reading. Returns the first error, if any (documents before it were handed
// over); `usage` says what was used either way.
using YamlDocumentSink = std::function<bool(YamlDocument&&)>;
std::optional<YamlError> read_yaml_documents(std::string_view text, const YamlLimits& limits,
                                             const YamlDocumentSink& on_document, YamlUsage& usage);

// A size as the settings write it: "4Mi", "512Ki", "1000" (bytes).
std::string size_text(std::uint64_t bytes);

// Every non-empty document of `text`, or the first error.
Result<std::vector<YamlDocument>, YamlError> parse_yaml_documents(std::string_view text,
                                                                  const YamlLimits& limits = {});

// Block-style YAML of a JSON value, keys in the value's order (kubectl get -o yaml style).
std::string to_yaml(const boost::json::value& value);

}  // namespace stowage::kube
