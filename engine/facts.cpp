#include "engine/facts.hpp"

#include "persistence/state_store.hpp"

namespace stowage::engine {

FactBook::FactBook(persistence::StateStore* store, const std::vector<persistence::InitFact>& loaded) : store_(store) {
  for (const auto& f : loaded) facts_[{f.namespace_, f.name}] = f;
}

bool FactBook::matches(const ObjectKey& key, const std::string& uid, std::int64_t generation,
                       const std::string& identity, const std::string& fingerprint) const {
  auto it = facts_.find(key);
  if (it == facts_.end()) return false;
  const auto& f = it->second;
  return f.uid == uid && f.generation == generation && f.backend_identity == identity &&
         f.credential_fingerprint == fingerprint;
}

void FactBook::record(persistence::InitFact fact) {
  if (store_) store_->put(fact);
  ObjectKey key{fact.namespace_, fact.name};
  facts_[key] = std::move(fact);
}

const persistence::InitFact* FactBook::find(const ObjectKey& key) const {
  auto it = facts_.find(key);
  return it == facts_.end() ? nullptr : &it->second;
}

void FactBook::forget(const ObjectKey& key) {
  if (facts_.erase(key) && store_) store_->erase_fact(key.namespace_, key.name);
}

}  // namespace stowage::engine
