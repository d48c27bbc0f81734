// YAML <-> JSON: kubectl's scalar typing, multi-document streams, error positions, round trips.
#include "kube/yaml_json.hpp"

#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <cmath>
#include <limits>

using namespace stowage::kube;
namespace json = boost::json;

namespace {

// The value of `v` in the one-document stream "v: <scalar>".
json::value scalar(const std::string& text) {
  auto docs = parse_yaml_documents("v: " + text + "\n");
  REQUIRE(docs.ok());
  REQUIRE(docs.value().size() == 1);
  return docs.value()[0].value.at("v");
}

json::value one(const std::string& text) {
  auto docs = parse_yaml_documents(text);
  REQUIRE(docs.ok());
  REQUIRE(docs.value().size() == 1);
  return docs.value()[0].value;
}

YamlError error_of(const std::string& text) {
  auto docs = parse_yaml_documents(text);
  REQUIRE_FALSE(docs.ok());
  return docs.error();
}

}  // namespace

TEST_CASE("plain scalars are typed as kubectl types them") {
  struct Row {
    const char* text;
    json::value expected;
  };
  const Row rows[] = {
      {"~", nullptr},
      {"null", nullptr},
      {"Null", nullptr},
      {"NULL", nullptr},
      {"", nullptr},
      {"true", true},
      {"True", true},
      {"TRUE", true},
      {"false", false},
      {"FALSE", false},
      {"yes", true},
      {"Yes", true},
      {"YES", true},
      {"y", true},
      {"Y", true},
      {"no", false},
      {"No", false},
      {"n", false},
      {"N", false},
      {"on", true},
      {"On", true},
      {"ON", true},
      {"off", false},
      {"Off", false},
      {"OFF", false},
      {"0", 0},
      {"42", 42},
      {"-42", -42},
      {"+7", 7},
      {"1_000", 1000},
      {"1_000_000", 1000000},
      {"0x1f", 31},
      {"0X1F", 31},
      {"-0x10", -16},
      {"010", 8},
      {"0o17", 15},
      {"-010", -8},
      {"0b101", 5},
      {"-0b11", -3},
      {"1.5", 1.5},
      {"-2.5", -2.5},
      {"1e3", 1000.0},
      {".5", 0.5},
      {"1.", 1.0},
      {"1_000.5", 1000.5},
      {"6.02e+23", 6.02e23},
      {"08", 8.0},
      {"abc", "abc"},
      {"0x", "0x"},
      {"1.2.3", "1.2.3"},
      {"1e400", "1e400"},
      {"2001-12-14", "2001-12-14"},
      {"yes please", "yes please"},
      {"tRUE", "tRUE"},
      {"0xZZ", "0xZZ"},
      {"12:30", "12:30"},
      {"_1", "_1"},
      {".", "."},
      {"+", "+"},
      {"1e", "1e"},
  };
  for (const auto& row : rows) {
    INFO("scalar: " << row.text);
    json::value got = scalar(row.text);
    CHECK(got.kind() == row.expected.kind());
    CHECK(got == row.expected);
  }
}

TEST_CASE("integer limits follow Go's ParseInt then ParseUint then ParseFloat") {
  CHECK(scalar("9223372036854775807") == json::value(std::numeric_limits<std::int64_t>::max()));
  CHECK(scalar("-9223372036854775808") == json::value(std::numeric_limits<std::int64_t>::min()));
  auto big = scalar("18446744073709551615");
  REQUIRE(big.is_uint64());
  CHECK(big.get_uint64() == std::numeric_limits<std::uint64_t>::max());
  auto bigger = scalar("18446744073709551616");
  REQUIRE(bigger.is_double());
  CHECK(bigger.get_double() == Approx(1.8446744073709552e19));
  CHECK(scalar("-9223372036854775809").is_double());
}

TEST_CASE("special floats") {
  CHECK(scalar(".inf").get_double() == std::numeric_limits<double>::infinity());
  CHECK(scalar("+.Inf").get_double() == std::numeric_limits<double>::infinity());
  CHECK(scalar("-.inf").get_double() == -std::numeric_limits<double>::infinity());
  CHECK(std::isnan(scalar(".nan").get_double()));
  CHECK(std::isnan(scalar(".NaN").get_double()));
  CHECK(scalar(".infinity").is_string());
}

TEST_CASE("quoted, block and !!str scalars stay strings") {
  CHECK(scalar("\"true\"") == json::value("true"));
  CHECK(scalar("'on'") == json::value("on"));
  CHECK(scalar("'010'") == json::value("010"));
  CHECK(scalar("\"\"") == json::value(""));
  CHECK(scalar("!!str 10") == json::value("10"));
  CHECK(scalar("!!str ~") == json::value("~"));
  CHECK(scalar("!!int 10") == json::value(10));
  CHECK(scalar("!custom 10") == json::value("10"));
  CHECK(scalar("|\n  line one\n  line two\n") == json::value("line one\nline two\n"));
  CHECK(scalar(">-\n  folded\n  text\n") == json::value("folded text"));
}

TEST_CASE("mapping keys become strings the way sigs.k8s.io/yaml converts them") {
  auto v = one("on: 1\n'off': 2\n010: 3\n1.5: 4\n1e3: 5\n1e6: 6\nplain: 7\n0.0001: 8\n");
  auto& o = v.as_object();
  CHECK(o.at("true") == json::value(1));
  CHECK(o.at("off") == json::value(2));
  CHECK(o.at("8") == json::value(3));
  CHECK(o.at("1.5") == json::value(4));
  CHECK(o.at("1000") == json::value(5));
  CHECK(o.at("1e+06") == json::value(6));
  CHECK(o.at("plain") == json::value(7));
  CHECK(o.at("0.0001") == json::value(8));
  CHECK(o.size() == 8);
}

TEST_CASE("null and collection keys are rejected with a position") {
  auto e = error_of("a: 1\n~: 2\n");
  CHECK(e.line == 2);
  CHECK(e.message.find("unsupported map key") != std::string::npos);
  CHECK(error_of("[a, b]: 1\n").message.find("unsupported map key") != std::string::npos);
}

TEST_CASE("aliases resolve and merge keys apply") {
  auto v =
      one("base: &base {a: 1, b: 2}\n"
          "other: &other {c: 3, b: 9}\n"
          "derived:\n  <<: *base\n  b: 3\n"
          "multi:\n  <<: [*base, *other]\n"
          "copy: *base\n"
          "'<<': literal\n");
  CHECK(v.at("derived") == json::parse(R"({"a":1,"b":3})"));
  CHECK(v.at("multi").at("b") == json::value(2));  // earlier maps in the list win
  CHECK(v.at("multi").at("c") == json::value(3));
  CHECK(v.at("copy") == json::parse(R"({"a":1,"b":2})"));
  CHECK(v.at("<<") == json::value("literal"));
  CHECK(error_of("a:\n  <<: 5\n").message.find("map merge") != std::string::npos);
}

TEST_CASE("self-referencing aliases and alias bombs fail instead of exhausting memory") {
  auto e = error_of("a: &x [1, *x]\n");
  CHECK_THAT(e.message, Catch::Contains("*x refers to the node that contains it"));
  std::string bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
  char prev = 'a';
  for (char c = 'b'; c <= 'i'; ++c, ++prev) {
    bomb += std::string(1, c) + ": &" + c + " [";
    for (int i = 0; i < 10; ++i) bomb += std::string(i ? ", *" : "*") + prev;
    bomb += "]\n";
  }
  auto started = std::chrono::steady_clock::now();
  auto error = error_of(bomb);
  CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(2));
  CHECK(error.budget == YamlBudget::alias_expansion);
  CHECK_THAT(error.message, Catch::Contains("aliases expand to more than 4Mi (the alias budget"));
  CHECK(error.line > 1);
}

// A node budget let a few large copies through: 3.9 million copies of a 1 KB string were 4 GB.
TEST_CASE("alias expansion is counted in bytes, not nodes: a few copies of a large value are refused") {
  std::string big(64 * 1024, 'x');
  std::string text = "big: &big " + big + "\ncopies: [";
  for (int i = 0; i < 100; ++i) text += std::string(i ? ", " : "") + "*big";  // 100 nodes, 6.4 MB
  text += "]\n";
  auto error = error_of(text);
  CHECK(error.budget == YamlBudget::alias_expansion);
  CHECK(error.line == 2);

  // Within the budget it reads, and the usage says what the copies cost.
  YamlLimits roomy;
  roomy.max_alias_bytes = 8u << 20;
  YamlUsage usage;
  int documents = 0;
  auto ok = read_yaml_documents(text, roomy, [&](YamlDocument&&) { return ++documents, true; }, usage);
  CHECK_FALSE(ok.has_value());
  CHECK(documents == 1);
  CHECK(usage.alias_bytes == 100 * (16 + big.size()));
}

TEST_CASE("the alias budget is shared by every document of the text and reported as used") {
  // The sequence counts 16 + 3 scalars x (16 + 1): once for the copy kept at its anchor, once per alias.
  const std::string doc = "a: &a [1, 2, 3]\nb: [*a, *a]\n";
  const std::uint64_t per_doc = 3 * (16 + 3 * 17);
  YamlLimits limits;
  limits.max_alias_bytes = 2 * per_doc;
  YamlUsage usage;
  auto fits = read_yaml_documents(doc + "---\n" + doc, limits, [](YamlDocument&&) { return true; }, usage);
  CHECK_FALSE(fits.has_value());
  CHECK(usage.alias_bytes == 2 * per_doc);

  YamlUsage over;
  std::vector<int> lines;
  auto error = read_yaml_documents(doc + "---\n" + doc + "---\n" + doc, limits,
                                   [&](YamlDocument&& d) { return lines.push_back(d.line), true; }, over);
  REQUIRE(error.has_value());
  CHECK(error->budget == YamlBudget::alias_expansion);
  CHECK(error->line == 7);  // the third document's anchor: keeping its copy is already over
  CHECK(lines == std::vector<int>{1, 4});  // the documents before it were handed over
  CHECK(over.alias_bytes > limits.max_alias_bytes);
}

TEST_CASE("anchors nested in each other are charged for the copies kept for aliases, used or not") {
  std::string inner = "[";
  for (int i = 0; i < 5000; ++i) inner += i ? ", x" : "x";
  inner += "]";
  std::string nested = inner;
  for (int level = 0; level < 200; ++level) nested = "&a" + std::to_string(level) + " [" + nested + "]";
  auto error = error_of("v: " + nested + "\n");
  CHECK(error.budget == YamlBudget::alias_expansion);
  YamlLimits roomy;
  roomy.max_alias_bytes = 1u << 30;
  YamlUsage usage;
  CHECK_FALSE(read_yaml_documents("v: " + nested + "\n", roomy, [](YamlDocument&&) { return true; }, usage));
  CHECK(usage.alias_bytes > 200u * 5000 * 17);
}

TEST_CASE("the document budget counts non-empty documents and stops at the first one beyond it") {
  YamlLimits limits;
  limits.max_documents = 2;
  const std::string two = "a: 1\n---\n# empty\n---\nb: 2\n---\n";
  CHECK(parse_yaml_documents(two, limits).ok());
  auto error = parse_yaml_documents(two + "[c]\n---\nd: 4\n", limits);
  REQUIRE_FALSE(error.ok());
  CHECK(error.error().budget == YamlBudget::documents);
  CHECK(error.error().line == 7);
  CHECK_THAT(error.error().message, Catch::Contains("more than 2 documents"));
  YamlUsage usage;
  read_yaml_documents(two + "c: 3\n", limits, [](YamlDocument&&) { return true; }, usage);
  CHECK(usage.documents == 3);  // the one over the budget is counted when it is refused
}

TEST_CASE("the reader hands over one document at a time and stops when asked") {
  std::vector<json::value> seen;
  YamlUsage usage;
  auto error = read_yaml_documents("a: 1\n---\nb: 2\n---\nc: [\n", {},
                                   [&](YamlDocument&& d) {
                                     seen.push_back(std::move(d.value));
                                     return seen.size() < 2;
                                   },
                                   usage);
  CHECK_FALSE(error.has_value());  // stopped before the broken third document was read
  CHECK(seen.size() == 2);
}

TEST_CASE("nesting is limited through aliases too") {
  std::string chain = "a0: &a0 [x]\n";
  for (int i = 1; i < 300; ++i)
    chain += "a" + std::to_string(i) + ": &a" + std::to_string(i) + " [*a" + std::to_string(i - 1) + "]\n";
  CHECK_THAT(error_of(chain).message, Catch::Contains("nested too deeply"));
  CHECK_THAT(error_of(std::string(300, '[') + std::string(300, ']') + "\n").message,
             Catch::Contains("nested too deeply"));
}

TEST_CASE("multi-document streams skip empty documents and report 1-based lines") {
  const std::string text =
      "# leading comment\n"            // 1
      "---\n"                          // 2
      "# an empty document\n"          // 3
      "---\n"                          // 4
      "apiVersion: v1   # trailing\n"  // 5
      "kind: Secret\n"                 // 6
      "---\n"                          // 7
      "---\n"                          // 8
      "\n"                             // 9
      "# comment\n"                    // 10
      "- a\n"                          // 11
      "- b\n"                          // 12
      "---\n"                          // 13
      "~\n";                           // 14
  auto docs = parse_yaml_documents(text);
  REQUIRE(docs.ok());
  REQUIRE(docs.value().size() == 2);
  CHECK(docs.value()[0].line == 5);
  CHECK(docs.value()[0].value == json::parse(R"({"apiVersion":"v1","kind":"Secret"})"));
  CHECK(docs.value()[1].line == 11);
  CHECK(docs.value()[1].value == json::parse(R"(["a","b"])"));
}

TEST_CASE("a stream without documents gives none") {
  for (const char* text : {"", "\n", "# only a comment\n", "---\n", "---\n...\n---\n# x\n"}) {
    auto docs = parse_yaml_documents(text);
    REQUIRE(docs.ok());
    CHECK(docs.value().empty());
  }
}

TEST_CASE("syntax errors carry 1-based positions") {
  auto unclosed = error_of("a: 1\nb: [1, 2\nc: 3\n");
  CHECK(unclosed.line == 3);
  CHECK(unclosed.column == 2);
  CHECK(unclosed.message.find("end of sequence") != std::string::npos);

  auto indent = error_of("a: 1\n  b: 2\n");
  CHECK(indent.line == 2);
  CHECK(indent.column == 4);

  auto alias = error_of("a: *nope\n");
  CHECK(alias.line == 1);
  CHECK(alias.column == 4);

  auto later_doc = error_of("a: 1\n---\nb: 1\nc: [x\n");
  CHECK(later_doc.line == 5);
}

TEST_CASE("to_yaml writes block style with quoting where needed") {
  CHECK(to_yaml(json::parse("{}")) == "{}\n");
  CHECK(to_yaml(json::parse("[]")) == "[]\n");
  CHECK(to_yaml(json::parse(R"({"a":{},"b":[]})")) == "a: {}\nb: []\n");
  CHECK(to_yaml(json::parse(R"({"z":1,"a":2})")) == "z: 1\na: 2\n");  // object order kept
  CHECK(to_yaml(json::parse(R"({"v":"yes"})")) == "v: \"yes\"\n");
  CHECK(to_yaml(json::parse(R"({"v":"010"})")) == "v: \"010\"\n");
  CHECK(to_yaml(json::parse(R"({"v":""})")) == "v: \"\"\n");
  CHECK(to_yaml(json::parse(R"({"v":"plain text"})")) == "v: plain text\n");
  CHECK(to_yaml(json::parse(R"({"v":null,"t":true,"i":-3})")) == "v: ~\nt: true\ni: -3\n");
  CHECK(to_yaml(json::parse(R"({"n":"N"})")) == "\"n\": \"N\"\n");  // a YAML 1.1 boolean, key or value
  CHECK(to_yaml(json::parse(R"({"v":"line1\nline2\n"})")) == "v: |\n  line1\n  line2\n");
  CHECK(to_yaml(json::parse(R"({"on":1})")) == "\"on\": 1\n");
  CHECK(to_yaml(json::value(1.0)) == "1.0\n");
}

TEST_CASE("to_yaml round-trips tricky values") {
  json::value v = json::parse(R"({
    "strings": ["", " lead", "trail ", "yes", "No", "on", "OFF", "y", "~", "null", "Null", "true", "010", "0x1f",
                "0o7", "0b1", "1_000", "1e3", ".5", ".inf", "-.inf", ".nan", "+1", "-1", "1.", "- a", "-", "?", ":",
                "a: b", "a #b", "#c", "key:", "&anchor", "*alias", "!tag", "|pipe", ">fold", "'single'",
                "\"double\"", "%pct", "@at", "`tick", "{b}", "[a]", "a,b", "<<", "...", "---", "tab\there",
                "back\\slash", "uni\u00e9\u4e2d", "ctrl\u0001", "x\ny", "x\ny\n", "x\n\n", "\nlead\n", " indented\nx\n",
                "a\n  b\n", "crlf\r\n", "trailing space \nx\n", "\n", "2001-12-14", "12:30", "08"],
    "numbers": [0, -1, 9223372036854775807, -9223372036854775808, 18446744073709551615, 1.5, 1.0, -0.5,
                1e300, 5e-324, 1e21, 123456789.125],
    "bools": [true, false],
    "null": null,
    "empty": {"o": {}, "a": []},
    "nested": [[1, [2, []]], {"k": [{"x": {}}]}, [{"a": 1, "b": [true]}]],
    "keys": {"": 1, "yes": 2, "010": 3, "1.0": 4, "a: b": 5, "<<": 6, " sp": 7, "multi\nline": 8, "~": 9, "on": 10}
  })");
  auto docs = parse_yaml_documents(to_yaml(v));
  INFO(to_yaml(v));
  REQUIRE(docs.ok());
  REQUIRE(docs.value().size() == 1);
  CHECK(docs.value()[0].value == v);
  // Kinds survive too (json::value treats 1 and 1.0 as different already; check one double explicitly).
  CHECK(docs.value()[0].value.at("numbers").at(6).is_double());
}

TEST_CASE("to_yaml writes a key over 1024 characters as an explicit key (fuzz)") {
  // Found by fuzz/yaml_json_fuzz.cpp: a 1,100-byte key (plain, or quoted with escapes) was written as
  // "key: value", which no YAML reader accepts ("illegal map value"), so get -o yaml did not read back.
  std::string ctrl(300, '\x01');
  json::object o;
  o[std::string(1100, 'k')] = 1;
  o["q" + ctrl] = "v";
  o[std::string(250, 'a') + ": b"] = json::array{1};
  o["short"] = 2;
  json::value v = o;
  std::string text = to_yaml(v);
  INFO(text);
  auto docs = parse_yaml_documents(text);
  REQUIRE(docs.ok());
  REQUIRE(docs.value().size() == 1);
  CHECK(docs.value()[0].value == v);
  CHECK_THAT(text, Catch::Contains("\nshort: 2\n"));  // short keys stay implicit
}

TEST_CASE("to_yaml round-trips scalars at the top level") {
  for (const char* text : {R"("...")", R"("---")", R"("text")", R"("x\ny\n")", R"(42)", R"(false)", R"("")"}) {
    json::value v = json::parse(text);
    auto docs = parse_yaml_documents(to_yaml(v));
    INFO(text << " -> " << to_yaml(v));
    REQUIRE(docs.ok());
    if (v.is_string() && v.get_string().empty()) {
      REQUIRE(docs.value().size() == 1);
    }
    REQUIRE(docs.value().size() == 1);
    CHECK(docs.value()[0].value == v);
  }
}

TEST_CASE("to_yaml quotes timestamps as kubectl does") {
  boost::json::value v = boost::json::object{{"creationTimestamp", "2026-11-26T14:46:25Z"}, {"day", "2026-1-2"},
                                             {"version", "v0.1.0"}};
  auto text = stowage::kube::to_yaml(v);
  CHECK_THAT(text, Catch::Contains("creationTimestamp: \"2026-11-26T14:46:25Z\""));
  CHECK_THAT(text, Catch::Contains("day: \"2026-1-2\""));
  CHECK_THAT(text, Catch::Contains("version: v0.1.0"));
}

TEST_CASE("a text yaml-cpp would parse forever is an error (fuzz: yaml_json)") {
  // Found by fuzz/yaml_json_fuzz.cpp (fuzz/corpus/yaml_json/hang-endless-nodes): yaml-cpp 0.7 yields
  // nodes for this text without end, so the read never finished and its memory grew without bound.
  auto parsed = parse_yaml_documents("\"a\"\"[b\",-]");
  REQUIRE_FALSE(parsed.ok());
  CHECK(parsed.error().message.find("the YAML parser is stuck") != std::string::npos);
  // A text of empty values only, the most nodes per byte YAML allows, is still read.
  std::string dashes;
  for (int i = 0; i < 1000; ++i) dashes += "-\n";
  auto nulls = parse_yaml_documents(dashes);
  REQUIRE(nulls.ok());
  CHECK(nulls.value().at(0).value.as_array().size() == 1000);
}
