"""Label and field selectors, parsed and matched the way the API server does.

Label selector grammar (k8s.io/apimachinery/pkg/labels): comma-separated requirements, each one of
`key`, `!key`, `key=v`, `key==v`, `key!=v`, `key in (a,b)`, `key notin (a,b)`, `key>N`, `key<N`.
`!=` and `notin` also match objects without the key, as the real server does.

Field selectors: comma-separated `field=v`, `field==v`, `field!=v`; `\\,` `\\=` `\\\\` escape. Which
fields a resource supports is the caller's business (see resources.py): an unknown field is an
error there, as on a real server.

A metav1.LabelSelector object (`matchLabels`, `matchExpressions` with In, NotIn, Exists and
DoesNotExist), as webhook configurations carry, converts to the same requirements with
`from_label_selector`; `{}` or null selects everything.
"""


class SelectorError(ValueError):
    pass


def _split_top_level(text):
    """Split on commas outside parentheses."""
    parts, depth, current = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


def _parse_set(text, requirement):
    text = text.strip()
    if not (text.startswith("(") and text.endswith(")")):
        raise SelectorError(f"unable to parse requirement: {requirement!r}: expected a (value, ...) list")
    return frozenset(v.strip() for v in text[1:-1].split(",") if v.strip())


def _parse_requirement(req):
    if req.startswith("!"):
        return (req[1:].strip(), "!", None)
    for word in (" notin ", " in "):
        if word in req:
            key, rest = req.split(word, 1)
            return (key.strip(), word.strip(), _parse_set(rest, req))
    for op in ("==", "!=", "=", ">", "<"):
        if op in req:
            key, value = req.split(op, 1)
            key, value = key.strip(), value.strip()
            if op in (">", "<"):
                try:
                    int(value)
                except ValueError:
                    raise SelectorError(f"unable to parse requirement: {req!r}: {value!r} is not an integer")
            return (key, "=" if op == "==" else op, value)
    return (req.strip(), "exists", None)


def parse_label_selector(text):
    """A list of (key, op, value) requirements; an empty selector matches everything."""
    requirements = [_parse_requirement(r) for r in _split_top_level(text or "")]
    for key, _, _ in requirements:
        if not key:
            raise SelectorError(f"unable to parse requirement: empty key in {text!r}")
    return requirements


def labels_match(requirements, labels):
    labels = labels or {}
    for key, op, value in requirements:
        present = key in labels
        actual = labels.get(key)
        if op == "exists" and not present:
            return False
        if op == "!" and present:
            return False
        if op == "=" and actual != value:
            return False
        if op == "!=" and present and actual == value:
            return False
        if op == "in" and actual not in value:
            return False
        if op == "notin" and present and actual in value:
            return False
        if op in (">", "<"):
            try:
                number = int(actual)
            except (TypeError, ValueError):
                return False
            if (op == ">" and not number > int(value)) or (op == "<" and not number < int(value)):
                return False
    return True


SELECTOR_OPERATORS = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}


def label_selector_errors(selector, path):
    """metav1validation.ValidateLabelSelector's messages for a LabelSelector object: [(field, detail)]."""
    if selector is None:
        return []
    if not isinstance(selector, dict):
        return [(path, "Invalid value: must be an object")]
    errors = []
    for i, expression in enumerate(selector.get("matchExpressions") or []):
        field = f"{path}.matchExpressions[{i}]"
        if not isinstance(expression, dict):
            errors.append((field, "Invalid value: must be an object"))
            continue
        operator, values = expression.get("operator"), expression.get("values") or []
        if operator in ("In", "NotIn") and not values:
            errors.append((f"{field}.values", "Required value: must be specified when `operator` is 'In' or 'NotIn'"))
        elif operator in ("Exists", "DoesNotExist") and values:
            errors.append((f"{field}.values",
                           "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'"))
        elif operator not in SELECTOR_OPERATORS:
            errors.append((f"{field}.operator", f'Invalid value: "{operator}": not a valid selector operator'))
        if not expression.get("key"):
            errors.append((f"{field}.key", "Invalid value: \"\": name part must be non-empty"))
    return errors


def from_label_selector(selector):
    """The (key, op, value) requirements of a LabelSelector object (valid: see label_selector_errors)."""
    selector = selector or {}
    requirements = [(key, "=", value) for key, value in sorted((selector.get("matchLabels") or {}).items())]
    for expression in selector.get("matchExpressions") or []:
        op = SELECTOR_OPERATORS[expression["operator"]]
        values = frozenset(expression.get("values") or []) if op in ("in", "notin") else None
        requirements.append((expression["key"], op, values))
    return requirements

def _split_escaped(text, separator):
    parts, current, i = [], [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            current.append(text[i + 1])
            i += 2
            continue
        if ch == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    parts.append("".join(current))
    return parts


def parse_field_selector(text):
    """A list of (field, op, value) with op '=' or '!='."""
    requirements = []
    for term in _split_escaped(text or "", ","):
        if not term.strip():
            continue
        raw = term
        for op in ("!=", "==", "="):
            index = raw.find(op)
            if index > 0:
                field, value = raw[:index].strip(), raw[index + len(op):].strip()
                requirements.append((field, "!=" if op == "!=" else "=", value))
                break
        else:
            raise SelectorError(f"invalid selector: {text!r}; can't understand {term!r}")
    return requirements


def field_value(obj, path):
    """The string form of a dotted field of obj, as field selectors compare it ("" when absent)."""
    value = obj
    for part in path.split("."):
        if not isinstance(value, dict):
            return ""
        value = value.get(part)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def fields_match(requirements, obj):
    for field, op, value in requirements:
        actual = field_value(obj, field)
        if (op == "=") != (actual == value):
            return False
    return True
