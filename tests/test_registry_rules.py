"""The registry adapter's pure rules: challenges, token lifetimes, Retry-After, backoff."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from imagepromoter.credentials import BasicCredentials
from imagepromoter.registry import auth, limits, lookups

CHALLENGES = [
    (
        'Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:org/app:pull"',
        [
            (
                "bearer",
                {
                    "realm": "https://ghcr.io/token",
                    "service": "ghcr.io",
                    "scope": "repository:org/app:pull",
                },
            )
        ],
    ),
    (
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/nginx:pull,push"',
        [
            (
                "bearer",
                {
                    "realm": "https://auth.docker.io/token",
                    "service": "registry.docker.io",
                    "scope": "repository:library/nginx:pull,push",
                },
            )
        ],
    ),
    ('Basic realm="Registry Realm"', [("basic", {"realm": "Registry Realm"})]),
    ("basic realm=quay", [("basic", {"realm": "quay"})]),
    (
        'Basic realm="a, b", Bearer realm="https://x/token", service=x',
        [("basic", {"realm": "a, b"}), ("bearer", {"realm": "https://x/token", "service": "x"})],
    ),
    ('Bearer realm="quoted \\"q\\" realm"', [("bearer", {"realm": 'quoted "q" realm'})]),
    (
        'Bearer realm="https://r/token",error="insufficient_scope"',
        [("bearer", {"realm": "https://r/token", "error": "insufficient_scope"})],
    ),
    ("", []),
]


@pytest.mark.parametrize(
    ("header", "expected"),
    CHALLENGES,
    ids=[
        "ghcr",
        "docker-hub-comma-in-scope",
        "basic",
        "unquoted-lowercase",
        "two-challenges",
        "escaped-quotes",
        "insufficient-scope",
        "empty",
    ],
)
def test_parse_challenges(header: str, expected: list[tuple[str, dict[str, str]]]) -> None:
    found = auth.parse_challenges(header)
    assert [(c.scheme, dict(c.params)) for c in found] == expected


@pytest.mark.parametrize(
    ("header", "scheme"),
    [
        ('Basic realm="a", Bearer realm="https://b"', "bearer"),
        ('Basic realm="a"', "basic"),
        ('Negotiate abc, Basic realm="a"', "basic"),
        ("Negotiate", None),
    ],
    ids=["bearer-preferred", "basic-only", "unknown-skipped", "nothing-usable"],
)
def test_pick_prefers_bearer(header: str, scheme: str | None) -> None:
    picked = auth.pick(auth.parse_challenges(header))
    assert (picked.scheme if picked else None) == scheme


@pytest.mark.parametrize(
    ("doc", "now", "value", "expires_at"),
    [
        ({"token": "t", "expires_in": 300}, 1000.0, "t", 1000.0 + 300 - 30),
        ({"access_token": "a"}, 5.0, "a", None),  # ghcr.io: no expires_in, keep until a 401
        ({"token": "t", "access_token": "a", "expires_in": 40}, 0.0, "t", 20.0),
        ({"token": "t", "expires_in": 0}, 0.0, "t", None),
        ({"token": "t", "expires_in": True}, 0.0, "t", None),
        ({"token": ""}, 0.0, None, None),
        ({"details": "none"}, 0.0, None, None),
        (["token"], 0.0, None, None),
    ],
    ids=[
        "expires-in-minus-margin",
        "no-expiry",
        "short-lifetime-half-margin",
        "zero-means-unknown",
        "bool-ignored",
        "empty-token",
        "no-token",
        "not-an-object",
    ],
)
def test_token_from_response(
    doc: object, now: float, value: str | None, expires_at: float | None
) -> None:
    token = auth.token_from_response(doc, now)
    assert (token.value if token else None) == value
    if token:
        assert token.expires_at == expires_at


def test_token_cache_honours_expiry_and_identity() -> None:
    clock = [0.0]
    cache = auth.TokenCache(clock=lambda: clock[0])
    alice = auth.Identity.of(BasicCredentials("alice", "one"))
    rotated = auth.Identity.of(BasicCredentials("alice", "two"))
    key = auth.TokenKey("https://r/token", "svc", auth.pull_scope("org/app"), alice)
    cache.put(key, auth.Token("tok", expires_at=100.0))
    assert cache.get(key) is not None
    assert cache.get(auth.TokenKey(key.realm, key.service, key.scope, rotated)) is None
    assert cache.get(auth.TokenKey(key.realm, key.service, key.scope, auth.Identity())) is None
    clock[0] = 100.0
    assert cache.get(key) is None


def test_token_cache_discard_only_the_token_used() -> None:
    cache = auth.TokenCache()
    key = auth.TokenKey("r", "s", "scope", auth.Identity())
    old, new = auth.Token("old"), auth.Token("new")
    cache.put(key, new)
    cache.discard(key, old)  # a slow request that used the old token must not drop the new one
    assert cache.get(key) is new
    cache.discard(key, new)
    assert cache.get(key) is None


def test_secrets_never_in_repr() -> None:
    identity = auth.Identity.of(BasicCredentials("alice", "hunter2-password"))
    token = auth.Token("eyJ-secret-token")
    text = repr(identity) + repr(token) + repr(auth.TokenKey("r", "s", "x", identity))
    assert "hunter2" not in text
    assert "eyJ-secret-token" not in text
    assert identity.password_hash not in text


NOW = datetime(2026, 11, 29, 10, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("3", 3.0),
        (" 120 ", 120.0),
        ("Sun, 29 Nov 2026 10:00:30 GMT", 30.0),
        ("Sun, 29 Nov 2026 09:00:00 GMT", 0.0),
        ("soon", None),
        ("-5", None),
        ("", None),
        (None, None),
    ],
    ids=["seconds", "padded", "http-date", "date-in-past", "junk", "negative", "empty", "absent"],
)
def test_retry_after(value: str | None, seconds: float | None) -> None:
    assert limits.retry_after(value, now=NOW) == seconds


@pytest.mark.parametrize("attempt", [0, 1, 2, 5, 20], ids=lambda a: f"attempt-{a}")
def test_backoff_grows_is_jittered_and_capped(attempt: int) -> None:
    rng = random.Random(attempt)
    ceiling = min(30.0, 0.5 * 2**attempt)
    delays = [limits.backoff(attempt, rng=rng) for _ in range(50)]
    assert all(ceiling / 2 <= d <= ceiling for d in delays)
    assert len(set(delays)) > 1


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-01-02T03:04:05Z", "2026-01-02T03:04:05+00:00"),
        ("2026-01-02T03:04:05.123456789Z", "2026-01-02T03:04:05.123456+00:00"),
        ("2026-01-02T05:04:05+02:00", "2026-01-02T03:04:05+00:00"),
        ("2026-01-02T03:04:05", "2026-01-02T03:04:05+00:00"),
        ("yesterday", None),
        (12345, None),
        ("", None),
    ],
    ids=["zulu", "nanoseconds", "offset", "naive-is-utc", "junk", "number", "empty"],
)
def test_created_time_parsing(value: object, expected: str | None) -> None:
    parsed = lookups.parse_time(value)
    assert (parsed.isoformat() if parsed else None) == expected
