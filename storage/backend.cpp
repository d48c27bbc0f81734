// What every backend's wipe() says when it cannot show that the storage owns the place.
#include "storage/backend.hpp"

namespace stowage::storage {

BackendError ownership_refusal(const MetadataState& state, const std::string& location) {
  if (!state.exists)
    return {false, "NotOwned",
            location + " does not exist, so nothing shows that this storage owns the data there: nothing was deleted",
            std::nullopt};
  return {false, "InvalidMetadata",
          location + " is not a valid BackendMeta (" + state.invalid_reason +
              "), so nothing shows that this storage owns the data there: nothing was deleted",
          std::nullopt};
}

}  // namespace stowage::storage
