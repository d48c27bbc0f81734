#pragma once
// KubeStash's defaults for a BackupStorage, applied by the mutating admission webhook as a JSONPatch
// (RFC 6902) over the object the API server sent:
//  - no spec.usagePolicy (absent or null) becomes {allowedNamespaces: {from: Same}};
//  - trailing slashes are trimmed from spec.storage.s3.bucket, .s3.endpoint, .s3.prefix,
//    .gcs.bucket, .gcs.prefix and .azure.prefix.
// KubeStash trims one slash (Go's strings.TrimSuffix); stowage trims them all: "a//" names the same
// directory as "a", and the overlap checks compare cleaned paths anyway.
// Pure: no I/O, no cache. The patch is empty when the object already has the defaults, so applying
// it and asking again gives nothing (the API server may call a mutating webhook twice).
// A value of the wrong type is left alone: the schema and the validating webhook refuse it.
#include <boost/json/array.hpp>
#include <boost/json/value.hpp>

namespace stowage::engine {

boost::json::array backup_storage_defaults(const boost::json::value& object);

}  // namespace stowage::engine
