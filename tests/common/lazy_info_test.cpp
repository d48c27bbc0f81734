// LAZY_INFO (tests/support/lazy_info.hpp) shows its expression as it is when an assertion fails. The
// failing case is hidden ([.]: CTest does not run it); the visible case runs this executable on it.
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <array>
#include <cstdio>
#include <string>

#include "support/lazy_info.hpp"

TEST_CASE("a failing check with a lazy info", "[.lazy-info-demo]") {
  std::string log = "started";
  LAZY_INFO("log: " << log);
  INFO("eager: " << log);
  log = "crashed at step 3";
  CHECK(log == "finished");
  {
    LAZY_INFO("inner scope");
  }
  CHECK(log.empty());
}

TEST_CASE("LAZY_INFO is evaluated at the failure, once per failed assertion, only while in scope") {
  const std::string cmd = "/proc/" + std::to_string(::getpid()) + "/exe '[.lazy-info-demo]' 2>&1";
  FILE* pipe = ::popen(cmd.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::string out;
  std::array<char, 4096> buf{};
  while (auto n = std::fread(buf.data(), 1, buf.size(), pipe)) out.append(buf.data(), n);
  const int status = ::pclose(pipe);
  INFO(out);
  CHECK(WEXITSTATUS(status) == 2);  // two failed assertions
  CHECK_THAT(out, Catch::Contains("log: crashed at step 3"));
  CHECK_THAT(out, Catch::Contains("eager: started"));
  CHECK_THAT(out, !Catch::Contains("log: started"));
  CHECK_THAT(out, !Catch::Contains("inner scope"));
  std::size_t shown = 0;
  for (auto at = out.find("log: crashed"); at != std::string::npos; at = out.find("log: crashed", at + 1)) ++shown;
  CHECK(shown == 2);
}
