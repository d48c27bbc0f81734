#pragma once
// Logging setup: spdlog, text or JSON lines, to stderr or a file. Messages name the storage
// ("namespace/name"); callers never pass credential material (see README "Security").
#include <string>

namespace stowage::logging {

enum class Format { Text, Json };

// level: trace|debug|info|warn|error. file: empty for stderr. Every line is flushed, so a
// kill -9 never loses what was logged before it. A file that does not exist is created 0600
// (whatever the umask; through a dangling symlink, 0600 less the umask); an existing one is used as
// it is (a symlink such as /dev/stdout is followed), with a warning naming its mode when it is a
// regular file that group or others may read.
void setup(Format format, const std::string& level, const std::string& file = "");

// JSON string escaping used by the JSON formatter (exposed for tests).
std::string json_escape(std::string_view s);

}  // namespace stowage::logging
