"""Decode the protobuf request bodies kubectl's typed client sends for a few built-in kinds.

kubectl's generator commands (`kubectl create secret|configmap|namespace ...`) POST
`application/vnd.kubernetes.protobuf`: the bytes "k8s\\0", then a runtime.Unknown message
{typeMeta{apiVersion, kind}, raw} whose raw bytes are the object's own message. Only Secret,
ConfigMap and Namespace are described below (field numbers from k8s.io/api/core/v1/generated.proto
and k8s.io/apimachinery/pkg/apis/meta/v1/generated.proto); anything else is Unsupported (the server
answers 415). Responses are always JSON, which client-go accepts.
"""
import base64
import datetime

MAGIC = b"k8s\x00"


class Unsupported(ValueError):
    pass


def _varint(data, pos):
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(data):
    """(field number, wire type, value) for each field; length-delimited values as bytes."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            length, pos = _varint(data, pos)
            value, pos = data[pos:pos + length], pos + length
        elif wire == 1:
            value, pos = data[pos:pos + 8], pos + 8
        elif wire == 5:
            value, pos = data[pos:pos + 4], pos + 4
        else:
            raise Unsupported(f"protobuf wire type {wire}")
        yield number, wire, value


def _string(value):
    return value.decode()


def _bytes_b64(value):
    return base64.b64encode(value).decode()


def _bool(value):
    return bool(value)


def _time(value):
    fields = {n: v for n, _, v in _fields(value)}
    stamp = datetime.datetime.fromtimestamp(fields.get(1, 0), datetime.timezone.utc)
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")


def _map(value_decoder):
    def decode(value):
        fields = {n: v for n, _, v in _fields(value)}
        return _string(fields.get(1, b"")), value_decoder(fields.get(2, b""))
    return decode


# A message is {field number: (json name, decoder, kind)} with kind "one", "list" or "map".
OWNER_REFERENCE = {1: ("kind", _string, "one"), 3: ("name", _string, "one"), 4: ("uid", _string, "one"),
                   5: ("apiVersion", _string, "one"), 6: ("controller", _bool, "one"),
                   7: ("blockOwnerDeletion", _bool, "one")}
OBJECT_META = {1: ("name", _string, "one"), 2: ("generateName", _string, "one"), 3: ("namespace", _string, "one"),
               5: ("uid", _string, "one"), 6: ("resourceVersion", _string, "one"), 7: ("generation", int, "one"),
               8: ("creationTimestamp", _time, "one"), 9: ("deletionTimestamp", _time, "one"),
               10: ("deletionGracePeriodSeconds", int, "one"), 11: ("labels", _map(_string), "map"),
               12: ("annotations", _map(_string), "map"),
               13: ("ownerReferences", lambda v: decode_message(v, OWNER_REFERENCE), "list"),
               14: ("finalizers", _string, "list")}


def _meta(value):
    return decode_message(value, OBJECT_META)


SCHEMAS = {
    ("v1", "Secret"): {1: ("metadata", _meta, "one"), 2: ("data", _map(_bytes_b64), "map"),
                       3: ("type", _string, "one"), 4: ("stringData", _map(_string), "map"),
                       5: ("immutable", _bool, "one")},
    ("v1", "ConfigMap"): {1: ("metadata", _meta, "one"), 2: ("data", _map(_string), "map"),
                          3: ("binaryData", _map(_bytes_b64), "map"), 4: ("immutable", _bool, "one")},
    ("v1", "Namespace"): {1: ("metadata", _meta, "one"),
                          2: ("spec", lambda v: decode_message(v, {1: ("finalizers", _string, "list")}), "one"),
                          3: ("status", lambda v: decode_message(v, {1: ("phase", _string, "one")}), "one")},
}


def decode_message(data, schema):
    result = {}
    for number, _, value in _fields(data):
        if number not in schema:
            continue  # fields this test server does not model
        name, decoder, kind = schema[number]
        if kind == "map":
            key, item = decoder(value)
            result.setdefault(name, {})[key] = item
        elif kind == "list":
            result.setdefault(name, []).append(decoder(value))
        else:
            item = decoder(value)
            if item not in ("", 0, False, None, {}):  # gogo-protobuf writes empty fields; JSON omits them
                result[name] = item
    return result


def decode(body):
    """The JSON form of a protobuf-encoded object, or Unsupported."""
    if not body.startswith(MAGIC):
        raise Unsupported("protobuf body without the k8s envelope")
    envelope = {n: v for n, _, v in _fields(body[len(MAGIC):])}
    type_meta = {n: _string(v) for n, _, v in _fields(envelope.get(1, b""))}
    api_version, kind = type_meta.get(1, ""), type_meta.get(2, "")
    schema = SCHEMAS.get((api_version, kind))
    if schema is None:
        raise Unsupported(f"protobuf bodies of {api_version}/{kind}")
    return dict({"apiVersion": api_version, "kind": kind}, **decode_message(envelope.get(2, b""), schema))
