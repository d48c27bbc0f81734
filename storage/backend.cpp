// The default wipe(): ownership first (a valid metadata.yaml where this storage writes it), then
// delete_all(). It cannot leave nested locations alone, so a plan that asks it to keep any is
// refused outright: a backend that can keep them implements wipe() itself.
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

boost::asio::awaitable<WipeReport> Backend::wipe(WipePlan plan) {
  WipeReport report;
  auto state = co_await read_metadata();
  if (!state.ok()) {
    report.error = std::move(state.error());
    co_return report;
  }
  if (!state.value().meta) {
    report.refused = ownership_refusal(state.value(), metadata_location());
    co_return report;
  }
  if (!plan.keep.empty()) {
    report.refused = BackendError{false, "ProtectedLocation",
                                  identity() + " holds other storages' locations (" + plan.keep.front() +
                                      (plan.keep.size() > 1 ? ", ..." : "") + "): nothing was deleted",
                                  std::nullopt};
    co_return report;
  }
  auto removed = co_await delete_all();
  if (!removed.ok())
    report.error = std::move(removed.error());
  else
    report.removed = removed.value();
  co_return report;
}

boost::asio::awaitable<BackendResult<std::size_t>> Backend::delete_all() {
  co_return BackendError{false, "NotSupported", identity() + " cannot delete everything at once", std::nullopt};
}

}  // namespace stowage::storage
