#include "engine/manifests.hpp"

#include <algorithm>
#include <fstream>
#include <sstream>

#include "kube/yaml_json.hpp"

namespace stowage::engine {

namespace fs = std::filesystem;

namespace {

std::string str_field(const boost::json::object& o, const char* name) {
  const auto* v = o.if_contains(name);
  return v && v->is_string() ? std::string(v->get_string()) : std::string();
}

void add_object(FileContents& out, const Located& at, const boost::json::value& v, int depth = 0) {
  const auto* obj = v.if_object();
  if (!obj) {
    out.problems.push_back(at.where() + ": a manifest document must be a mapping with apiVersion and kind");
    return;
  }
  std::string kind = str_field(*obj, "kind");
  std::string api = str_field(*obj, "apiVersion");
  if (kind == "List" && depth == 0) {  // kubectl's v1 List
    const auto* items = obj->if_contains("items");
    if (!items || !items->is_array()) {
      out.problems.push_back(at.where() + ": a List must have `items:` (a sequence of objects)");
      return;
    }
    for (const auto& item : items->get_array()) add_object(out, at, item, 1);
    return;
  }
  if (kind == kube::kBackupStorageKind) {
    auto parsed = kube::parse_backup_storage(v);
    if (parsed.ok())
      out.storages.push_back({std::move(parsed.value()), at});
    else
      out.problems.push_back(at.where() + ": BackupStorage: " + parsed.error().to_string());
    return;
  }
  if (kind == "Secret") {
    auto parsed = kube::parse_secret(v);
    if (parsed.ok())
      out.secrets.push_back({std::move(parsed.value()), at});
    else
      out.problems.push_back(at.where() + ": Secret: " + parsed.error().to_string());
    return;
  }
  if (kind.empty()) {
    out.problems.push_back(at.where() + ": the document has no kind: add `kind: BackupStorage` or `kind: Secret`");
    return;
  }
  out.problems.push_back(at.where() + ": kind " + kind + " (" + (api.empty() ? "no apiVersion" : api) +
                         ") is not handled here: only BackupStorage (storage.kubestash.com/v1alpha1) and Secret (v1) "
                         "are read; keep other kinds out of this folder");
}

}  // namespace

FileContents parse_manifest_text(const std::string& file, const std::string& text) {
  FileContents out;
  auto docs = kube::parse_yaml_documents(text);
  if (!docs.ok()) {
    const auto& e = docs.error();
    out.unreadable = true;
    out.problems.push_back(file + ":" + std::to_string(e.line) + ":" + std::to_string(e.column) +
                           ": not valid YAML: " + e.message);
    return out;
  }
  if (docs.value().empty())
    out.problems.push_back(file + ":1: the file holds no document (empty, or only comments): add a manifest or "
                           "remove the file");
  for (const auto& doc : docs.value()) add_object(out, Located{file, doc.line}, doc.value);
  // Whatever went wrong, the file does not say for sure which objects it holds.
  out.unreadable = !out.problems.empty();
  return out;
}

FileContents read_manifest_file(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    FileContents out;
    out.unreadable = true;
    out.problems.push_back(file.string() + ": cannot read: " + std::strerror(errno));
    return out;
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  return parse_manifest_text(file.string(), ss.str());
}

void add_to_snapshot(Snapshot& snapshot, const FileContents& contents) {
  for (const auto& p : contents.problems) snapshot.problems.push_back(p);
  for (const auto& s : contents.storages) {
    ObjectKey key{s.object.metadata.namespace_, s.object.metadata.name};
    auto [it, inserted] = snapshot.storages.try_emplace(key, s);
    if (!inserted)
      snapshot.problems.push_back(s.at.where() + ": BackupStorage " + key.str() + " is already defined at " +
                                  it->second.at.where() + "; this copy is ignored: rename or remove one of them");
  }
  for (const auto& s : contents.secrets) {
    ObjectKey key{s.object.metadata.namespace_, s.object.metadata.name};
    auto [it, inserted] = snapshot.secrets.try_emplace(key, s);
    if (!inserted)
      snapshot.problems.push_back(s.at.where() + ": Secret " + key.str() + " is already defined at " +
                                  it->second.at.where() + "; this copy is ignored: rename or remove one of them");
  }
}

std::vector<fs::path> list_manifest_files(const fs::path& dir, std::string& error, std::vector<fs::path>* dirs) {
  std::vector<fs::path> files;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    error = "manifest folder " + dir.string() + " does not exist or is not a directory";
    return files;
  }
  if (dirs) dirs->push_back(dir);
  fs::recursive_directory_iterator it(dir, fs::directory_options::follow_directory_symlink, ec), end;
  for (; !ec && it != end; it.increment(ec)) {
    auto name = it->path().filename().string();
    if (!name.empty() && name[0] == '.') {
      if (it->is_directory(ec)) it.disable_recursion_pending();
      continue;
    }
    if (it->is_directory(ec)) {
      if (dirs) dirs->push_back(it->path());
      continue;
    }
    auto ext = it->path().extension().string();
    if ((ext == ".yaml" || ext == ".yml" || ext == ".json") && it->is_regular_file(ec)) files.push_back(it->path());
  }
  if (ec) error = "cannot list " + dir.string() + ": " + ec.message();
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace stowage::engine
