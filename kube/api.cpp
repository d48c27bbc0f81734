#include "kube/api.hpp"

namespace stowage::kube {

bool ApiError::transient() const {
  switch (kind) {
    case Kind::Transport: return transport_transient;
    case Kind::Stream: return true;
    case Kind::Decode: return false;
    case Kind::Credentials: return credentials_transient;
    case Kind::Status:
      return http_status == 408 || http_status == 429 || http_status == 500 || http_status == 502 ||
             http_status == 503 || http_status == 504;
  }
  return false;
}

}  // namespace stowage::kube
