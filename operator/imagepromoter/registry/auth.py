"""Registry authentication as registries really do it: challenge first, then credentials.

A scan starts anonymous. A 401 carries `WWW-Authenticate`, which says how to authenticate:
- `Basic realm=...`: send the credentials to the registry itself on every request.
- `Bearer realm=...,service=...,scope=...`: ask the realm (a token service, possibly on another
  host such as auth.docker.io) for a token with scope `repository:<name>:pull`, with Basic
  credentials when we have them and anonymously otherwise (how public images on ghcr.io and
  Docker Hub are read), then send `Authorization: Bearer <token>` to the registry.

Tokens are cached per (realm, service, scope, identity). `expires_in` is honoured when given
(minus a margin for clock skew and time in flight); ghcr.io gives none, so such a token is kept
until the registry answers 401 again, and then fetched afresh once. The identity includes a hash
of the password, so a rotated Secret gets a new token rather than the old account's.

Nothing here holds a secret in a `repr`: `Token` and `Identity` redact their values.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from imagepromoter.credentials import BasicCredentials

EXPIRY_MARGIN = 30.0  # seconds before `expires_in` runs out that we stop using a token

_RFC_TCHARS = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_PARAM = re.compile(rf'\s*({_RFC_TCHARS})\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,]*)\s*(,|$)')
_SCHEME = re.compile(rf"\s*({_RFC_TCHARS}=*)(?:\s+|$|(?=,))")


@dataclass(frozen=True)
class Challenge:
    """One WWW-Authenticate challenge: `scheme` lowercased, parameter names lowercased."""

    scheme: str
    params: Mapping[str, str] = field(default_factory=dict)

    @property
    def realm(self) -> str:
        return self.params.get("realm", "")

    @property
    def service(self) -> str:
        return self.params.get("service", "")


def parse_challenges(header: str) -> list[Challenge]:
    """Every challenge in a WWW-Authenticate value (schemes and quoted parameters, RFC 9110)."""
    challenges: list[Challenge] = []
    pos = 0
    text = header.strip()
    while pos < len(text):
        match = _SCHEME.match(text, pos)
        if match is None:
            break
        scheme = match.group(1).lower()
        pos = match.end()
        params: dict[str, str] = {}
        while pos < len(text):
            param = _PARAM.match(text, pos)
            if param is None:
                break
            name, value = param.group(1).lower(), param.group(2)
            if value.startswith('"'):
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            params[name] = value
            pos = param.end()
        challenges.append(Challenge(scheme, params))
        while pos < len(text) and text[pos] in ", ":
            pos += 1
    return challenges


def pick(challenges: list[Challenge]) -> Challenge | None:
    """The challenge we answer: Bearer when offered (it scopes access), else Basic."""
    for scheme in ("bearer", "basic"):
        for challenge in challenges:
            if challenge.scheme == scheme:
                return challenge
    return None


def pull_scope(repository: str) -> str:
    return f"repository:{repository}:pull"


@dataclass(frozen=True)
class Identity:
    """Who asks for a token: a username and a hash of the password, or anonymous."""

    username: str = ""
    password_hash: str = field(default="", repr=False)

    @classmethod
    def of(cls, credentials: BasicCredentials | None) -> Identity:
        if credentials is None:
            return cls()
        digest = hashlib.sha256(credentials.password.encode()).hexdigest()
        return cls(credentials.username, digest)

    @property
    def anonymous(self) -> bool:
        return not self.username and not self.password_hash


@dataclass(frozen=True)
class TokenKey:
    realm: str
    service: str
    scope: str
    identity: Identity


@dataclass(frozen=True)
class Token:
    """A bearer token and when to stop using it (None: until the registry refuses it)."""

    value: str = field(repr=False)
    expires_at: float | None = None

    def fresh(self, now: float) -> bool:
        return self.expires_at is None or now < self.expires_at


def token_from_response(doc: object, now: float) -> Token | None:
    """Read a token service's JSON answer (`token` or `access_token`, optional `expires_in`)."""
    if not isinstance(doc, Mapping):
        return None
    value = doc.get("token") or doc.get("access_token")
    if not isinstance(value, str) or not value:
        return None
    expires_in = doc.get("expires_in")
    expires_at = None
    if isinstance(expires_in, int | float) and not isinstance(expires_in, bool) and expires_in > 0:
        expires_at = now + max(0.0, float(expires_in) - min(EXPIRY_MARGIN, expires_in / 2))
    return Token(value, expires_at)


class TokenCache:
    """Tokens by (realm, service, scope, identity); bounded, expired ones are never returned."""

    def __init__(self, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic):
        self._tokens: dict[TokenKey, Token] = {}
        self._max = max_entries
        self.clock = clock

    def get(self, key: TokenKey) -> Token | None:
        token = self._tokens.get(key)
        if token is not None and not token.fresh(self.clock()):
            del self._tokens[key]
            return None
        return token

    def put(self, key: TokenKey, token: Token) -> None:
        if len(self._tokens) >= self._max and key not in self._tokens:
            self._tokens.pop(next(iter(self._tokens)))
        self._tokens[key] = token

    def discard(self, key: TokenKey, token: Token | None = None) -> None:
        """Forget the token for `key` (only if it is still `token`, when given)."""
        if token is None or self._tokens.get(key) is token:
            self._tokens.pop(key, None)

    def values(self) -> list[str]:
        """Every cached token value (for scrubbing error text; never logged)."""
        return [token.value for token in self._tokens.values()]
