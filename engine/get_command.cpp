// `stowage get backupstorages`: the offline mode's status, shown as kubectl shows it.
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <cstdio>

#include "common/time_format.hpp"
#include "engine/commands.hpp"
#include "kube/model.hpp"
#include "kube/yaml_json.hpp"
#include "persistence/sqlite_state_store.hpp"

namespace stowage::engine {

namespace {

boost::json::value object_of(const persistence::ObjectRecord& r) {
  boost::json::error_code ec;
  auto v = boost::json::parse(r.object_json, ec);
  if (ec || !v.is_object()) v = boost::json::object{};
  auto status = boost::json::parse(r.status_json.empty() ? "{}" : r.status_json, ec);
  if (!ec) v.as_object()["status"] = std::move(status);
  return v;
}

std::string lookup(const boost::json::value& v, std::initializer_list<const char*> path) {
  const boost::json::value* cur = &v;
  for (const char* p : path) {
    const auto* o = cur->if_object();
    if (!o || !(cur = o->if_contains(p))) return "";
  }
  if (cur->is_string()) return std::string(cur->get_string());
  if (cur->is_bool()) return cur->get_bool() ? "true" : "false";
  if (cur->is_null()) return "";
  return boost::json::serialize(*cur);
}

void print_table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> width;
  for (const auto& r : rows)
    for (std::size_t i = 0; i < r.size(); ++i) {
      if (width.size() <= i) width.push_back(0);
      width[i] = std::max(width[i], r[i].size());
    }
  for (const auto& r : rows) {
    std::string line;
    for (std::size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) line += std::string(width[i] - r[i].size() + 3, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    std::printf("%s\n", line.c_str());
  }
}

std::string age(const std::string& created) {
  auto t = parse_rfc3339(created);
  if (!t) return "<unknown>";
  return human_duration(std::chrono::duration_cast<std::chrono::seconds>(WallClock::now() - *t));
}

}  // namespace

int get_command(const config::Config& config, const GetOptions& o) {
  static const std::vector<std::string> names{"backupstorages", "backupstorage", "bs",
                                              "backupstorages.storage.kubestash.com"};
  if (std::find(names.begin(), names.end(), o.resource) == names.end()) {
    std::fprintf(stderr, "error: the server doesn't have a resource type \"%s\" (stowage serves backupstorages, "
                 "short name bs)\n", o.resource.c_str());
    return 1;
  }
  auto records = persistence::read_objects(config.state_dir);
  if (!records.ok()) {
    std::fprintf(stderr, "error: %s\n", records.error().c_str());
    return 1;
  }
  std::vector<boost::json::value> items;
  for (const auto& r : records.value()) {
    if (!o.all_namespaces && r.namespace_ != o.namespace_) continue;
    if (!o.name.empty() && r.name != o.name) continue;
    items.push_back(object_of(r));
  }
  if (items.empty()) {
    if (!o.name.empty()) {
      std::fprintf(stderr, "Error from server (NotFound): backupstorages.storage.kubestash.com \"%s\" not found\n",
                   o.name.c_str());
      return 1;
    }
    if (o.all_namespaces)
      std::fprintf(stderr, "No resources found\n");
    else
      std::fprintf(stderr, "No resources found in %s namespace.\n", o.namespace_.c_str());
    return 0;
  }
  if (o.output == "yaml" || o.output == "json") {
    boost::json::value out;
    if (items.size() == 1 && !o.name.empty()) {
      out = items.front();
    } else {
      boost::json::array arr(items.begin(), items.end());
      out = boost::json::object{{"apiVersion", "v1"}, {"kind", "List"}, {"items", std::move(arr)}};
    }
    std::printf("%s", o.output == "yaml" ? kube::to_yaml(out).c_str() : (boost::json::serialize(out) + "\n").c_str());
    return 0;
  }
  if (o.output == "name") {
    for (const auto& v : items)
      std::printf("backupstorage.storage.kubestash.com/%s\n", lookup(v, {"metadata", "name"}).c_str());
    return 0;
  }
  if (!o.output.empty() && o.output != "wide") {
    std::fprintf(stderr, "error: unable to match a printer suitable for the output format \"%s\", allowed formats "
                 "are: json,name,wide,yaml\n", o.output.c_str());
    return 1;
  }
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> header{"NAME", "PROVIDER", "DEFAULT", "DELETION-POLICY", "TOTAL-SIZE", "PHASE", "AGE"};
  if (o.all_namespaces) header.insert(header.begin(), "NAMESPACE");
  rows.push_back(header);
  for (const auto& v : items) {
    std::vector<std::string> row{lookup(v, {"metadata", "name"}),      lookup(v, {"spec", "storage", "provider"}),
                                 lookup(v, {"spec", "default"}),       lookup(v, {"spec", "deletionPolicy"}),
                                 lookup(v, {"status", "totalSize"}),   lookup(v, {"status", "phase"}),
                                 age(lookup(v, {"metadata", "creationTimestamp"}))};
    if (o.all_namespaces) row.insert(row.begin(), lookup(v, {"metadata", "namespace"}));
    rows.push_back(std::move(row));
  }
  print_table(rows);
  return 0;
}

}  // namespace stowage::engine
