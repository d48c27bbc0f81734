#pragma once
// metadata.yaml: rendering, parsing and where it goes, exactly as KubeStash does.
#include <optional>
#include <string>
#include <string_view>

#include "storage/backend.hpp"

namespace stowage::storage {

inline constexpr std::string_view kMetadataFile = "metadata.yaml";

// KubeStash computes trim(path.Join(prefix, dir), "/") + "/" + file: prefix "/backup/demo/" gives
// "backup/demo/metadata.yaml"; an empty (or all-slash) prefix gives "metadata.yaml" at the root.
std::string metadata_key(std::string_view prefix);

// The YAML of a BackendMeta object:
//   apiVersion: config.kubestash.com/v1alpha1
//   kind: BackendMeta
//   creationTimestamp: "2025-04-21T12:29:15Z"
//   operatorVersion: v0.1.0
std::string render_metadata(const BackendMeta& meta);

// Parses an existing metadata.yaml. Returns the meta, or sets `reason` to why it is not a valid
// BackendMeta (not YAML, wrong apiVersion/kind, missing creationTimestamp).
std::optional<BackendMeta> parse_metadata(std::string_view yaml, std::string& reason);

}  // namespace stowage::storage
