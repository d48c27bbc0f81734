#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>

#include "support/lazy_info.hpp"

namespace {

// Evaluates the LAZY_INFOs in scope when an assertion fails and adds their text to its messages.
// Listeners see an assertion before the reporter prints it; the stats object is the reporter's
// (a non-const temporary), so the messages can be appended to it.
struct LazyInfoListener : Catch::TestEventListenerBase {
  using TestEventListenerBase::TestEventListenerBase;
  bool assertionEnded(const Catch::AssertionStats& stats) override {
    if (stats.assertionResult.isOk()) return true;
    auto& messages = const_cast<std::vector<Catch::MessageInfo>&>(stats.infoMessages);
    for (const auto* info : test::LazyInfo::live()) messages.push_back(info->message());
    return true;
  }
};

}  // namespace

CATCH_REGISTER_LISTENER(LazyInfoListener)
