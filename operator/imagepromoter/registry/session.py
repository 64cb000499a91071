"""The auth flow: requests to a registry as an (anonymous or credentialed) client of one repository.

`auth` holds the pieces (challenge parsing, token keys, the cache); this module runs them:
a request goes out with whatever the host's last challenge asked for (nothing at first), a 401
records the new challenge, fetches a token when it is Bearer, and the request is repeated once.
Concurrent requests for one token share a single fetch.

Credentials follow the scheme and the origin, never a downgrade:
- the registry's own requests carry them (Basic, or the Bearer token);
- the token realm gets Basic credentials only over HTTPS, unless the CR is `insecure`;
- a redirect (blobs to object storage) is followed with them only to the same scheme, host and
  port; anything else (another host, or the same host over `http://`) is fetched without any
  Authorization header, and so is every hop after the first that leaves the registry.
"""

from __future__ import annotations

import asyncio
import base64

import httpx

from imagepromoter import bounded
from imagepromoter.registry import auth, messages
from imagepromoter.registry.messages import Call
from imagepromoter.registry.transport import GZIP, Reply, Transient, Transport, same_origin

MAX_REDIRECTS = 5
REDIRECT_STATUS = frozenset({301, 302, 303, 307, 308})


def basic_header(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


class Session:
    """Authenticated requests to registries; one per client, shared by every CR."""

    def __init__(self, transport: Transport, tokens: auth.TokenCache) -> None:
        self.transport = transport
        self.tokens = tokens
        self._challenges: dict[str, auth.Challenge] = {}
        self._token_locks: dict[tuple[str, auth.TokenKey], asyncio.Lock] = {}

    async def get(
        self, call: Call, method: str, target: str, *, accept: str, encoding: str = GZIP
    ) -> Reply:
        """A request to the registry itself, authorised as its challenge asks (one 401 retry)."""
        retried = False
        while True:
            headers = {"Accept": accept, "Accept-Encoding": encoding}
            used = await self._authorize(call, headers)
            try:
                reply = await self.transport.registry(call, method, target, headers)
            except Transient as exc:
                raise self._unreachable(call, target, exc) from None
            if reply.status != 401:
                return reply
            found = auth.parse_challenges(", ".join(reply.headers.get_list("www-authenticate")))
            challenge = auth.pick(found)
            if challenge is None:
                raise messages.no_challenge(call)
            self._challenges[call.host] = challenge
            fresh = used is not None and used[2]
            if used is not None:
                self.tokens.discard(used[0], used[1])
            anonymous_basic = challenge.scheme == "basic" and call.access.credentials is None
            if retried or fresh or anonymous_basic:
                raise messages.refused(call, 401, reply.body, basic=self.basic(call))
            retried = True

    async def fetch(self, call: Call, target: str, *, accept: str, encoding: str) -> Reply:
        """GET from the registry, following redirects; credentials only to the same origin."""
        reply = await self.get(call, "GET", target, accept=accept, encoding=encoding)
        ours = True  # still talking to the registry (not object storage)
        for _ in range(MAX_REDIRECTS):
            if reply.status not in REDIRECT_STATUS:
                return reply
            location = reply.headers.get("location", "")
            target_url = reply.url.join(location)
            if target_url.scheme not in ("http", "https") or not target_url.host:
                raise messages.sent(
                    call, f"a redirect for {call.repository} to an unusable URL ({location!r})"
                )
            if ours and same_origin(target_url, reply.url):
                reply = await self.get(
                    call, "GET", str(target_url), accept=accept, encoding=encoding
                )
                continue
            ours = False  # object storage: the URL carries its own signature, no credentials
            headers = {"Accept": accept, "Accept-Encoding": encoding}
            try:
                reply = await self.transport.request(
                    call, "GET", target_url, headers, verify=not call.access.insecure
                )
            except Transient as exc:
                raise self._unreachable(call, str(target_url), exc) from None
        return reply

    def basic(self, call: Call) -> bool:
        """Whether the host's last challenge was Basic (a 401 then means a wrong password)."""
        challenge = self._challenges.get(call.host)
        return challenge is not None and challenge.scheme == "basic"

    def expect(self, call: Call, reply: Reply, what: str) -> None:
        """Raise the error that a non-2xx answer about `what` means."""
        if not 200 <= reply.status < 300:
            raise messages.unexpected(call, reply.status, reply.body, what, basic=self.basic(call))

    # credentials -------------------------------------------------------------------------------

    async def _authorize(
        self, call: Call, headers: dict[str, str]
    ) -> tuple[auth.TokenKey, auth.Token, bool] | None:
        """Add the Authorization the host's last challenge asks for.

        Returns the token used and whether it was fetched just now (a 401 then is final).
        """
        challenge = self._challenges.get(call.host)
        credentials = call.access.credentials
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            if credentials is not None:
                headers["Authorization"] = basic_header(credentials.username, credentials.password)
            return None
        key = auth.TokenKey(
            realm=challenge.realm,
            service=challenge.service,
            scope=auth.pull_scope(call.repository),
            identity=auth.Identity.of(credentials),
        )
        token = self.tokens.get(key)
        fetched = False
        if token is None:
            lock = self._token_locks.setdefault((call.host, key), asyncio.Lock())
            async with lock:
                token = self.tokens.get(key)
                if token is None:
                    token = await self._fetch_token(call, challenge, key)
                    fetched = True
                    self.tokens.put(key, token)
        headers["Authorization"] = f"Bearer {token.value}"
        call.secrets.append(token.value)
        return key, token, fetched

    async def _fetch_token(
        self, call: Call, challenge: auth.Challenge, key: auth.TokenKey
    ) -> auth.Token:
        realm = httpx.URL(challenge.realm) if challenge.realm else None
        if realm is None or realm.scheme not in ("http", "https") or not realm.host:
            raise messages.no_realm(call)
        credentials = call.access.credentials
        if realm.scheme == "http" and credentials is not None and not call.access.insecure:
            raise messages.plain_realm(call, realm.host)
        params = {"scope": key.scope}
        if challenge.service:
            params["service"] = challenge.service
        url = realm.copy_merge_params(params)
        headers = {"Accept": "application/json", "Accept-Encoding": GZIP}
        if credentials is not None:
            headers["Authorization"] = basic_header(credentials.username, credentials.password)
        try:
            reply = await self.transport.request(
                call, "GET", url, headers, verify=not call.access.insecure
            )
        except Transient as exc:
            raise messages.unreachable(
                call, url, exc.detail, self.transport.retries + 1, token=True
            ) from None
        where = realm.netloc.decode()
        if reply.status in (401, 403):
            raise messages.token_refused(call, where, reply.status)
        if reply.status != 200:
            raise messages.token_failed(call, where, reply.status, reply.body)
        try:
            doc = bounded.loads_json(reply.body)
        except ValueError:
            doc = None
        token = auth.token_from_response(doc, self.tokens.clock())
        if token is None:
            raise messages.no_token(call, where)
        return token

    def _unreachable(self, call: Call, target: str, exc: Transient) -> Exception:
        if "://" in target:
            url = httpx.URL(target)
        else:
            scheme = self.transport.scheme_of(call.host) or "https"
            url = httpx.URL(f"{scheme}://{call.host}{target}")
        return messages.unreachable(call, url, exc.detail, self.transport.retries + 1)
