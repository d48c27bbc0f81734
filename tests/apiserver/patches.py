"""The patch formats the API server accepts, applied to plain JSON values.

- JSON merge patch (RFC 7386): objects merge key by key, `null` deletes, anything else (lists
  included) replaces whole.
- JSON patch (RFC 6902): add, remove, replace, move, copy, test. A failed `test` or a missing
  path is a PatchFailed (the server answers 422); a malformed patch document is a PatchMalformed (400).
- Strategic merge patch is only approximated, for built-in kinds: its `$patch`/`$retainKeys`/
  `$setElementOrder`/`$deleteFromPrimitiveList` directives are dropped and the rest is merged as a
  merge patch (lists replace whole instead of merging by key). Custom resources refuse it (415).

The inputs are never modified: every function returns a new value.
"""
import copy


class PatchMalformed(ValueError):
    pass


class PatchFailed(ValueError):
    pass


def merge_patch(target, patch):
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strip_strategic_directives(patch):
    if isinstance(patch, dict):
        return {k: strip_strategic_directives(v) for k, v in patch.items()
                if not (k.startswith("$patch") or k.startswith("$retainKeys") or k.startswith("$setElementOrder")
                        or k.startswith("$deleteFromPrimitiveList"))}
    if isinstance(patch, list):
        return [strip_strategic_directives(v) for v in patch if not (isinstance(v, dict) and "$patch" in v)]
    return patch


def json_equal(a, b):
    """JSON equality: true is not 1, 1 equals 1.0, objects ignore key order."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def _pointer(path):
    if not isinstance(path, str) or (path and not path.startswith("/")):
        raise PatchMalformed(f"invalid JSON pointer {path!r}")
    if path == "":
        return []
    return [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]


def _index(container, token, path, allow_end):
    if token == "-" and allow_end:
        return len(container)
    if not token.isdigit() or (len(token) > 1 and token.startswith("0")):
        raise PatchFailed(f"invalid array index {token!r} in {path}")
    index = int(token)
    if index > len(container) or (index == len(container) and not allow_end):
        raise PatchFailed(f"array index {index} out of bounds in {path}")
    return index


def _parent(doc, tokens, path):
    node = doc
    for token in tokens[:-1]:
        if isinstance(node, dict):
            if token not in node:
                raise PatchFailed(f"doc is missing path: {path}")
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(node, token, path, False)]
        else:
            raise PatchFailed(f"doc is missing path: {path}")
    return node


def _get(doc, path):
    tokens = _pointer(path)
    if not tokens:
        return doc
    parent, last = _parent(doc, tokens, path), tokens[-1]
    if isinstance(parent, dict) and last in parent:
        return parent[last]
    if isinstance(parent, list):
        return parent[_index(parent, last, path, False)]
    raise PatchFailed(f"doc is missing path: {path}")


def _add(doc, path, value):
    tokens = _pointer(path)
    if not tokens:
        return value
    parent, last = _parent(doc, tokens, path), tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, path, True), value)
    else:
        raise PatchFailed(f"doc is missing path: {path}")
    return doc


def _remove(doc, path):
    tokens = _pointer(path)
    if not tokens:
        raise PatchFailed("cannot remove the whole document")
    parent, last = _parent(doc, tokens, path), tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchFailed(f"unable to remove nonexistent key: {last}: missing value")
        return doc, parent.pop(last)
    if isinstance(parent, list):
        return doc, parent.pop(_index(parent, last, path, False))
    raise PatchFailed(f"doc is missing path: {path}")


def json_patch(doc, operations):
    if not isinstance(operations, list):
        raise PatchMalformed("a JSON patch must be a list of operations")
    doc = copy.deepcopy(doc)
    for op in operations:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise PatchMalformed(f"invalid JSON patch operation {op!r}")
        kind, path = op["op"], op["path"]
        _pointer(path)
        if kind in ("add", "replace", "test") and "value" not in op:
            raise PatchMalformed(f"operation {kind} on {path} has no value")
        if kind in ("move", "copy") and "from" not in op:
            raise PatchMalformed(f"operation {kind} on {path} has no from")
        if kind == "add":
            doc = _add(doc, path, copy.deepcopy(op["value"]))
        elif kind == "remove":
            doc, _ = _remove(doc, path)
        elif kind == "replace":
            _get(doc, path)
            if _pointer(path):
                doc, _ = _remove(doc, path)
            doc = _add(doc, path, copy.deepcopy(op["value"]))
        elif kind == "move":
            if path.startswith(op["from"] + "/"):
                raise PatchFailed(f"cannot move {op['from']} into its own child {path}")
            doc, value = _remove(doc, op["from"])
            doc = _add(doc, path, value)
        elif kind == "copy":
            doc = _add(doc, path, copy.deepcopy(_get(doc, op["from"])))
        elif kind == "test":
            try:
                actual = _get(doc, path)
            except PatchFailed:
                # As the API server's json-patch (evanphx v4): testing a missing member for null passes,
                # which is how a client adds the first finalizer race-free (kube-rs does this).
                if op["value"] is not None:
                    raise PatchFailed(f"testing value {path} failed: test failed")
                actual = None
            if not json_equal(actual, op["value"]):
                raise PatchFailed(f"testing value {path} failed: test failed")
        else:
            raise PatchMalformed(f"unexpected operation {kind!r}")
    return doc
