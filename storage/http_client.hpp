#pragma once
// The HTTP client lives in common/ (shared with the Kubernetes client); storage code names it http::.
#include "common/http_client.hpp"

namespace stowage::storage {
namespace http = stowage::http;
}
