"""Who is asking: the test API server's authenticators, tried in the order a real API server tries them.

    x509 client certificate (--client-ca)  ->  bearer token (--token, --token-user)  ->  basic auth (--basic-auth)

The first method that recognises the request names the user; a method whose credential is wrong does not
stop the next one (a real server's union authenticator), and when none succeeds the request is 401.

- Client certificates (HTTPS with --client-ca only): the server asks for one and verifies it against that
  CA; a verified certificate authenticates as user = its subject CN, groups = its subject O values. A
  client without a certificate is fine (other methods may apply). Difference from a real server, which
  accepts any certificate in the handshake and lets its authenticator refuse it (401): Python's ssl module
  verifies during the handshake, so a certificate from another CA ends the TLS handshake with an alert.
- `--token T`: the administrator (groups system:masters, system:authenticated), always authorized.
- `--token-user TOKEN=USERNAME` (repeatable): more bearer tokens with an identity; a service account's
  name `system:serviceaccount:NS:NAME` also gets the groups system:serviceaccounts and
  system:serviceaccounts:NS, as a real service account token does.
- `--basic-auth USER:PASSWORD` (repeatable): `Authorization: Basic base64(USER:PASSWORD)`.

Every authenticated user is in the group system:authenticated. With no method configured at all, every
request is accepted as an anonymous administrator (the server's behaviour before authentication existed).
"""
import base64
import binascii
import hmac
from dataclasses import dataclass, field

MASTERS = "system:masters"
AUTHENTICATED = "system:authenticated"
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple = field(default=())

    @property
    def is_admin(self):
        return MASTERS in self.groups


ANONYMOUS_ADMIN = User("system:admin", (MASTERS, AUTHENTICATED))


def user_named(name, groups=()):
    """A user with the groups a real server adds: service-account groups and system:authenticated."""
    extra = []
    if name.startswith(SERVICE_ACCOUNT_PREFIX):
        namespace = name[len(SERVICE_ACCOUNT_PREFIX):].split(":", 1)[0]
        extra = ["system:serviceaccounts", f"system:serviceaccounts:{namespace}"]
    return User(name, tuple(dict.fromkeys([*groups, *extra, AUTHENTICATED])))


def parse_pair(text, separator, flag):
    """'A<sep>B' -> (A, B), both non-empty; ValueError naming the flag otherwise."""
    left, sep, right = text.partition(separator)
    if not sep or not left or not right:
        raise ValueError(f"{flag} wants LEFT{separator}RIGHT with both parts non-empty, got {text!r}")
    return left, right


class Authenticator:
    def __init__(self, admin_token=None, token_users=(), basic_auth=(), client_certificates=False):
        """token_users: 'TOKEN=USERNAME' strings; basic_auth: 'USER:PASSWORD' strings."""
        self.admin_token = admin_token
        self.token_users = dict(parse_pair(t, "=", "--token-user") for t in token_users)
        self.passwords = dict(parse_pair(b, ":", "--basic-auth") for b in basic_auth)
        self.client_certificates = client_certificates

    @property
    def enabled(self):
        return bool(self.admin_token or self.token_users or self.passwords or self.client_certificates)

    def authenticate(self, authorization, peer_certificate):
        """The User of a request, or None (401). `authorization` is the header's value or None;
        `peer_certificate` is ssl's getpeercert() dict of a verified certificate, or None."""
        if not self.enabled:
            return ANONYMOUS_ADMIN
        user = self.from_certificate(peer_certificate)
        if user is None and authorization:
            scheme, _, credential = authorization.strip().partition(" ")
            credential = credential.strip()
            if scheme.lower() == "bearer":
                user = self.from_token(credential)
            elif scheme.lower() == "basic":
                user = self.from_basic(credential)
        return user

    def from_certificate(self, certificate):
        if not self.client_certificates or not certificate:
            return None
        attributes = [pair for rdn in certificate.get("subject", ()) for pair in rdn]
        common_names = [v for k, v in attributes if k == "commonName"]
        if not common_names:
            return None
        return user_named(common_names[0], [v for k, v in attributes if k == "organizationName"])

    def from_token(self, token):
        if not token:
            return None
        if self.admin_token and hmac.compare_digest(token, self.admin_token):
            return User("system:admin", (MASTERS, AUTHENTICATED))
        name = self.token_users.get(token)
        return user_named(name) if name else None

    def from_basic(self, credential):
        try:
            decoded = base64.b64decode(credential, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        name, sep, password = decoded.partition(":")
        expected = self.passwords.get(name)
        if not sep or expected is None or not hmac.compare_digest(password, expected):
            return None
        return user_named(name)
