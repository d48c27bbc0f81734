#pragma once
// FactBook — "storage X was initialized for (uid, generation, backend identity, credential
// fingerprint)", in memory for the reconciler and journaled to the state store, so a restart does
// not touch the backend of an unchanged storage again.
#include <map>
#include <vector>

#include "engine/object_cache.hpp"
#include "persistence/records.hpp"

namespace stowage::persistence {
class StateStore;
}

namespace stowage::engine {

class FactBook {
 public:
  FactBook(persistence::StateStore* store, const std::vector<persistence::InitFact>& loaded);

  bool matches(const ObjectKey& key, const std::string& uid, std::int64_t generation, const std::string& identity,
               const std::string& fingerprint) const;
  void record(persistence::InitFact fact);
  void forget(const ObjectKey& key);
  // The record for the storage, or null.
  const persistence::InitFact* find(const ObjectKey& key) const;
  std::size_t size() const { return facts_.size(); }

 private:
  persistence::StateStore* store_;
  std::map<ObjectKey, persistence::InitFact> facts_;
};

}  // namespace stowage::engine
