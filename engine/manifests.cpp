#include "engine/manifests.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "config/config.hpp"
#include "kube/yaml_json.hpp"

namespace stowage::engine {

namespace fs = std::filesystem;

namespace {

std::string str_field(const boost::json::object& o, const char* name) {
  const auto* v = o.if_contains(name);
  return v && v->is_string() ? std::string(v->get_string()) : std::string();
}

// One file's contents as its documents are read: at most kMaxProblemsPerFile problems are kept
// (a file of a million broken documents must not cost a million messages), and objects stop
// when the file's allowance of the objects budget is spent.
class ContentsBuilder {
 public:
  explicit ContentsBuilder(std::size_t objects_left) : objects_left_(objects_left) {}

  void problem(std::string text) {
    if (out_.problems.size() < kMaxProblemsPerFile)
      out_.problems.push_back(std::move(text));
    else
      ++problems_left_out_;
  }

  // Always reported, after the others: a budget that stopped the file.
  void budget_problem(std::string text) {
    budget_problem_ = std::move(text);
    out_.budget_exceeded = true;
  }

  // Adds the objects of one document; false once the objects budget stops the file (at `at`).
  bool add(const Located& at, const boost::json::value& v, int depth = 0) {
    const auto* obj = v.if_object();
    if (!obj) {
      problem(at.where() + ": a manifest document must be a mapping with apiVersion and kind");
      return true;
    }
    std::string kind = str_field(*obj, "kind");
    std::string api = str_field(*obj, "apiVersion");
    if (kind == "List" && depth == 0) {  // kubectl's v1 List
      const auto* items = obj->if_contains("items");
      if (!items || !items->is_array()) {
        problem(at.where() + ": a List must have `items:` (a sequence of objects)");
        return true;
      }
      for (const auto& item : items->get_array())
        if (!add(at, item, 1)) return false;
      return true;
    }
    if (kind == kube::kBackupStorageKind || kind == "Secret") return add_object(at, v, kind);
    if (kind.empty()) {
      problem(at.where() + ": the document has no kind: add `kind: BackupStorage` or `kind: Secret`");
      return true;
    }
    problem(at.where() + ": kind " + kind + " (" + (api.empty() ? "no apiVersion" : api) +
            ") is not handled here: only BackupStorage (storage.kubestash.com/v1alpha1) and Secret (v1) are read; "
            "keep other kinds out of this folder");
    return true;
  }

  FileContents& contents() { return out_; }

  FileContents finish() {
    if (problems_left_out_ > 0)
      out_.problems.push_back("... and " + std::to_string(problems_left_out_) + " more problems in the same file");
    if (!budget_problem_.empty()) out_.problems.push_back(std::move(budget_problem_));
    out_.unreadable = !out_.problems.empty();  // whatever went wrong, the file does not say for sure what it holds
    return std::move(out_);
  }

 private:
  bool add_object(const Located& at, const boost::json::value& v, const std::string& kind) {
    if (objects_left_ == 0) return false;  // not even parsed
    --objects_left_;
    if (kind == kube::kBackupStorageKind) {
      auto parsed = kube::parse_backup_storage(v);
      if (parsed.ok())
        out_.storages.push_back({std::move(parsed.value()), at});
      else
        problem(at.where() + ": BackupStorage: " + parsed.error().to_string());
      return true;
    }
    auto parsed = kube::parse_secret(v);
    if (parsed.ok())
      out_.secrets.push_back({std::move(parsed.value()), at});
    else
      problem(at.where() + ": Secret: " + parsed.error().to_string());
    return true;
  }

  FileContents out_;
  std::size_t objects_left_;
  std::size_t problems_left_out_ = 0;
  std::string budget_problem_;
};

std::string size_text(std::uint64_t bytes) { return config::format_size(bytes); }

// "(4Mi for all files together, 1Mi of it left for this file after the files before it": the
// second part only when the files before it took some.
std::string shared_budget(const std::string& total, const std::string& left, const char* of, bool limited) {
  return "(" + total + " for all files together" +
         (limited ? ", " + left + " " + of + " left for this file after the files before it" : "");
}

std::string objects_over(const Located& at, const ManifestBudgets& budgets, const Allowance& allowance) {
  return at.where() + ": past manifests.max-objects " +
         shared_budget(std::to_string(budgets.max_objects) + " BackupStorages and Secrets",
                       std::to_string(allowance.objects), "of them", allowance.objects < budgets.max_objects) +
         "): this object and those after it in the file are not loaded; raise --manifests-max-objects, or keep "
         "fewer objects in the folder";
}

std::string yaml_budget_problem(const std::string& file, const kube::YamlError& e, const ManifestBudgets& budgets,
                                const Allowance& allowance) {
  std::string where = file + ":" + std::to_string(e.line) + ":" + std::to_string(e.column);
  if (e.budget == kube::YamlBudget::documents)
    return where + ": more than " + std::to_string(budgets.max_documents_per_file) +
           " documents in one file (manifests.max-documents-per-file): the rest of the file is not read; split "
           "the file, or raise --manifests-max-documents-per-file";
  return where + ": YAML aliases here would expand past yaml.max-alias-expansion " +
         shared_budget(size_text(budgets.max_alias_expansion), size_text(allowance.alias_bytes), "of it",
                       allowance.alias_bytes < budgets.max_alias_expansion) +
         "; an alias bomb?): this document and the rest of the file are not loaded; if the file is trusted, raise "
         "--yaml-max-alias-expansion";
}

std::string file_too_large(const fs::path& file, std::uint64_t size, const ManifestBudgets& budgets, bool grew) {
  return file.string() + ": " + (grew ? "grew past " : std::to_string(size) + " bytes, over ") +
         "manifests.max-file-size (" + size_text(budgets.max_file_size) + ")" + (grew ? " while it was read" : "") +
         ": the file is not read; split it, or raise --manifests-max-file-size";
}

FileContents failed_read(std::string problem, bool budget) {
  FileContents out;
  out.unreadable = true;
  out.budget_exceeded = budget;
  out.problems.push_back(std::move(problem));
  return out;
}

}  // namespace

ManifestBudgets budgets_from(const config::Config& c) {
  ManifestBudgets b;
  b.max_file_size = c.manifests_max_file_size;
  b.max_documents_per_file = static_cast<std::size_t>(c.manifests_max_documents_per_file);
  b.max_objects = static_cast<std::size_t>(c.manifests_max_objects);
  b.max_alias_expansion = c.yaml_max_alias_expansion;
  return b;
}

FileContents parse_manifest_text(const std::string& file, const std::string& text, const ManifestBudgets& budgets,
                                 std::optional<Allowance> allowance) {
  const Allowance left = allowance.value_or(Allowance{budgets.max_objects, budgets.max_alias_expansion});
  ContentsBuilder builder(left.objects);
  kube::YamlLimits limits{left.alias_bytes, budgets.max_documents_per_file};
  kube::YamlUsage usage;
  bool objects_over_budget = false;
  auto on_document = [&](kube::YamlDocument&& doc) {
    Located at{file, doc.line};
    if (builder.add(at, doc.value)) return true;
    objects_over_budget = true;
    builder.budget_problem(objects_over(at, budgets, left));
    return false;
  };
  auto error = kube::read_yaml_documents(text, limits, on_document, usage);
  FileContents& out = builder.contents();
  out.alias_bytes = std::min(usage.alias_bytes, left.alias_bytes);
  if (error && error->budget != kube::YamlBudget::none) {
    builder.budget_problem(yaml_budget_problem(file, *error, budgets, left));
    out.limited_by_other_files = error->budget == kube::YamlBudget::alias_expansion &&
                                 left.alias_bytes < budgets.max_alias_expansion;
  } else if (error) {
    builder.problem(file + ":" + std::to_string(error->line) + ":" + std::to_string(error->column) +
                    ": not valid YAML: " + error->message);
  } else if (usage.documents == 0) {
    builder.problem(file + ":1: the file holds no document (empty, or only comments): add a manifest or remove "
                    "the file");
  }
  if (objects_over_budget) out.limited_by_other_files |= left.objects < budgets.max_objects;
  return builder.finish();
}

namespace {

// What read_capped found: the text, or why not (errno; or `grew` past the cap).
struct CappedRead {
  std::string text;
  int error = 0;
  bool grew = false;
};

// Reads `fd` to its end, `expected` bytes (its size) or more, but never more than `cap` + 1: a
// file that grows while it is read is stopped at the budget.
CappedRead read_capped(int fd, std::size_t expected, std::uint64_t cap) {
  CappedRead out;
  out.text.resize(expected);
  std::size_t got = 0;
  for (;;) {
    if (got == out.text.size()) {
      if (out.text.size() > cap) return CappedRead{{}, 0, true};
      out.text.resize(std::min<std::uint64_t>(cap + 1, std::max<std::size_t>(out.text.size() * 2, 65536)));
    }
    ssize_t n = ::read(fd, out.text.data() + got, out.text.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return CappedRead{{}, errno, false};
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  out.text.resize(got);
  return out;
}

}  // namespace

FileContents read_manifest_file(const fs::path& file, const ManifestBudgets& budgets,
                                std::optional<Allowance> allowance) {
  auto cannot_read = [&](int error) {
    return failed_read(file.string() + ": cannot read: " + std::strerror(error), false);
  };
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);  // O_NONBLOCK: a FIFO must not hang the scan
  if (fd < 0) return cannot_read(errno);
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) return cannot_read(errno);
  if (!S_ISREG(st.st_mode))
    return failed_read(file.string() + ": not a regular file: remove it from the folder", false);
  const auto size = static_cast<std::uint64_t>(st.st_size);
  if (size > budgets.max_file_size) return failed_read(file_too_large(file, size, budgets, false), true);
  CappedRead read = read_capped(fd, static_cast<std::size_t>(size), budgets.max_file_size);
  if (read.grew) return failed_read(file_too_large(file, 0, budgets, true), true);
  if (read.error) return cannot_read(read.error);
  return parse_manifest_text(file.string(), read.text, budgets, allowance);
}

std::vector<FileContents> read_manifest_files(const std::vector<fs::path>& files, const ManifestBudgets& budgets) {
  std::vector<FileContents> out;
  Allowance left{budgets.max_objects, budgets.max_alias_expansion};
  for (const auto& file : files) {
    out.push_back(read_manifest_file(file, budgets, left));
    left.objects -= std::min(left.objects, out.back().object_count());
    left.alias_bytes -= std::min(left.alias_bytes, out.back().alias_bytes);
  }
  return out;
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

namespace {

struct DirId {
  dev_t dev;
  ino_t ino;
  auto operator<=>(const DirId&) const = default;
};

bool is_manifest_name(const fs::path& p) {
  auto ext = p.extension().string();
  return ext == ".yaml" || ext == ".yml" || ext == ".json";
}

// Depth first in name order, with an explicit stack of folders still to list. A folder is entered
// once, by (device, inode), whatever the path (or link) that reaches it.
class FolderWalk {
 public:
  explicit FolderWalk(ManifestListing& out) : out_(out) {}

  void run(const fs::path& top) {
    struct stat st {};
    if (::stat(top.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      out_.error = "manifest folder " + top.string() + " does not exist or is not a directory";
      return;
    }
    seen_.emplace(DirId{st.st_dev, st.st_ino}, top);
    std::vector<fs::path> pending{top};
    out_.dirs.push_back(top);
    while (!pending.empty() && out_.error.empty()) {
      fs::path dir = std::move(pending.back());
      pending.pop_back();
      auto subdirs = list_one(dir);
      for (auto it = subdirs.rbegin(); it != subdirs.rend(); ++it) pending.push_back(std::move(*it));
    }
    std::sort(out_.files.begin(), out_.files.end());
  }

 private:
  // The files of `dir` go to the listing; its folders not entered yet are returned, in name order.
  std::vector<fs::path> list_one(const fs::path& dir) {
    std::error_code ec;
    std::vector<fs::path> names;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      auto name = it->path().filename().string();
      if (!name.empty() && name[0] != '.') names.push_back(it->path());
    }
    if (ec) {
      out_.error = "cannot list " + dir.string() + ": " + ec.message();
      return {};
    }
    std::sort(names.begin(), names.end());
    std::vector<fs::path> subdirs;
    for (auto& path : names) {
      struct stat st {};
      if (::stat(path.c_str(), &st) != 0) continue;  // a dangling link, or gone meanwhile
      if (S_ISDIR(st.st_mode)) {
        if (enter(path, DirId{st.st_dev, st.st_ino})) subdirs.push_back(path);
      } else if (S_ISREG(st.st_mode) && is_manifest_name(path)) {
        out_.files.push_back(path);
      }
    }
    return subdirs;
  }

  bool enter(const fs::path& path, DirId id) {
    auto [first, inserted] = seen_.emplace(id, path);
    if (inserted) {
      out_.dirs.push_back(path);
      return true;
    }
    out_.problems.push_back(path.string() + ": leads to the folder " + first->second.string() +
                            ", which is already read (a symbolic link loop?): skipped");
    return false;
  }

  ManifestListing& out_;
  std::map<DirId, fs::path> seen_;  // every folder entered, by (device, inode), with the path it was entered by
};

}  // namespace

ManifestListing list_manifest_files(const fs::path& dir) {
  ManifestListing out;
  FolderWalk(out).run(dir);
  return out;
}

}  // namespace stowage::engine
