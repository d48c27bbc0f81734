// metadata.yaml: the object key rule, the exact rendered bytes, and what parsing accepts and rejects.
#include <catch2/catch.hpp>

#include "storage/metadata.hpp"

using namespace stowage::storage;

namespace {

std::optional<BackendMeta> parse(const std::string& yaml, std::string& reason) { return parse_metadata(yaml, reason); }

std::string reason_for(const std::string& yaml) {
  std::string reason;
  auto meta = parse(yaml, reason);
  CHECK_FALSE(meta.has_value());
  return reason;
}

const std::string kValid =
    "apiVersion: config.kubestash.com/v1alpha1\n"
    "kind: BackendMeta\n"
    "creationTimestamp: \"2025-04-21T12:29:15Z\"\n"
    "operatorVersion: v0.1.0\n";

}  // namespace

TEST_CASE("metadata_key trims slashes and cleans the prefix like Go's path.Join") {
  CHECK(metadata_key("") == "metadata.yaml");
  CHECK(metadata_key("/") == "metadata.yaml");
  CHECK(metadata_key("///") == "metadata.yaml");
  CHECK(metadata_key("/backup/demo/") == "backup/demo/metadata.yaml");
  CHECK(metadata_key("backup/demo") == "backup/demo/metadata.yaml");
  CHECK(metadata_key("demo") == "demo/metadata.yaml");
  CHECK(metadata_key("a//b") == "a/b/metadata.yaml");
  CHECK(metadata_key("//a///b//") == "a/b/metadata.yaml");
  CHECK(metadata_key("a/./b/../c") == "a/c/metadata.yaml");
  CHECK(metadata_key("/../a") == "a/metadata.yaml");
  CHECK(metadata_key(".") == "metadata.yaml");
}

TEST_CASE("render_metadata writes exactly what KubeStash writes") {
  CHECK(render_metadata({"2025-04-21T12:29:15Z", "v0.1.0"}) == kValid);
}

TEST_CASE("render_metadata quotes operatorVersion only where YAML would mis-type it") {
  auto version_line = [](const std::string& version) {
    std::string out = render_metadata({"2025-04-21T12:29:15Z", version});
    auto start = out.find("operatorVersion: ");
    return out.substr(start + 17, out.size() - start - 18);  // without the trailing newline
  };
  CHECK(version_line("v0.1.0") == "v0.1.0");
  CHECK(version_line("0.1.0") == "0.1.0");
  CHECK(version_line("v1.2.3-rc.1+build") == "v1.2.3-rc.1+build");
  CHECK(version_line("1.0") == "\"1.0\"");
  CHECK(version_line("10") == "\"10\"");
  CHECK(version_line("1e3") == "\"1e3\"");
  CHECK(version_line("0x1F") == "\"0x1F\"");
  CHECK(version_line("2025-01-01") == "\"2025-01-01\"");
  CHECK(version_line("true") == "\"true\"");
  CHECK(version_line("Yes") == "\"Yes\"");
  CHECK(version_line("null") == "\"null\"");
  CHECK(version_line("") == "\"\"");
  CHECK(version_line("- x") == "\"- x\"");
  CHECK(version_line("a: b") == "\"a: b\"");
  CHECK(version_line("a\"b\\c\n") == "\"a\\\"b\\\\c\\n\"");
}

TEST_CASE("rendered metadata parses back to the same values") {
  for (std::string version : {"v0.1.0", "1.0", "true", "", "a: b", "a\"b\\c\n\t", "#x", "~"}) {
    std::string reason;
    auto meta = parse_metadata(render_metadata({"2025-04-21T12:29:15Z", version}), reason);
    REQUIRE(meta.has_value());
    CHECK(reason.empty());
    CHECK(meta->creation_timestamp == "2025-04-21T12:29:15Z");
    CHECK(meta->operator_version == version);
  }
}

TEST_CASE("parse_metadata accepts what KubeStash may have written") {
  std::string reason = "stale";
  auto meta = parse_metadata(kValid, reason);
  REQUIRE(meta.has_value());
  CHECK(reason.empty());
  CHECK(meta->creation_timestamp == "2025-04-21T12:29:15Z");
  CHECK(meta->operator_version == "v0.1.0");

  SECTION("with repositories and an unquoted, fractional timestamp") {
    auto other = parse_metadata(
        "apiVersion: config.kubestash.com/v1alpha1\nkind: BackendMeta\n"
        "creationTimestamp: 2025-04-21T12:29:15.123Z\nrepositories: []\n",
        reason);
    REQUIRE(other.has_value());
    CHECK(other->operator_version.empty());
  }
}

TEST_CASE("parse_metadata says why a document is not a BackendMeta") {
  CHECK(reason_for("kind: [unclosed\n  - x").rfind("not YAML: line ", 0) == 0);
  CHECK(reason_for("a: b\n  c: d\n").rfind("not YAML: line 2, column", 0) == 0);
  CHECK(reason_for("") == "empty document");
  CHECK(reason_for("- a\n- b\n") == "not a YAML mapping");
  CHECK(reason_for("just text") == "not a YAML mapping");
  CHECK(reason_for("apiVersion: config.kubestash.com/v1alpha1\nkind: Foo\ncreationTimestamp: x\n") ==
        "kind is \"Foo\", expected BackendMeta");
  CHECK(reason_for("apiVersion: v1\nkind: BackendMeta\n") ==
        "apiVersion is \"v1\", expected config.kubestash.com/v1alpha1");
  CHECK(reason_for("kind: BackendMeta\n") == "apiVersion is missing, expected config.kubestash.com/v1alpha1");
  CHECK(reason_for("apiVersion: config.kubestash.com/v1alpha1\nkind: [BackendMeta]\n") ==
        "kind is not a string, expected BackendMeta");
  CHECK(reason_for("apiVersion: config.kubestash.com/v1alpha1\nkind: BackendMeta\noperatorVersion: v1\n") ==
        "creationTimestamp is missing");
  CHECK(reason_for("apiVersion: config.kubestash.com/v1alpha1\nkind: BackendMeta\ncreationTimestamp: yesterday\n") ==
        "creationTimestamp \"yesterday\" is not an RFC 3339 time");
  CHECK(reason_for("apiVersion: config.kubestash.com/v1alpha1\nkind: BackendMeta\n"
                   "creationTimestamp: \"2025-04-21T12:29:15Z\"\noperatorVersion: {a: 1}\n") ==
        "operatorVersion is not a string");
}

TEST_CASE("parse_metadata never throws on hostile input") {
  std::string reason;
  CHECK_FALSE(parse_metadata(std::string("\0\xff\xfe{[", 5), reason).has_value());
  CHECK_FALSE(reason.empty());
  CHECK_FALSE(parse_metadata(std::string(10000, '['), reason).has_value());
  CHECK_FALSE(reason.empty());
  CHECK_FALSE(parse_metadata("a: &x [*x]\n", reason).has_value());
  CHECK_FALSE(reason.empty());
}
