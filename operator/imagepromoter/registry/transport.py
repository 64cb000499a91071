"""HTTP to registries: connection pools, the scheme for `insecure`, bodies, retries, deadlines.

Only this module touches httpx's request API. What it settles for the layers above:
- Scheme. A verified registry is HTTPS. With `insecure`, Docker's order: HTTPS without
  verification first; plain HTTP only when the host speaks no TLS (the HTTPS connection fails
  and plain HTTP answers, on the same port, or on 80 when the image names no port). The
  answer is remembered per host. The fallback is part of the same attempt: one rate-limit
  token, one metrics report, no backoff for the probe.
- Bodies are the exact bytes the server meant: callers choose Accept-Encoding (identity for
  manifests and blobs, whose digests are over those bytes; gzip for JSON lists), and
  `bodies.read` undoes any compression sent anyway, under the size cap.
- Retries on resets, truncation, stalls, 429 and 502-504 (honouring Retry-After), each
  attempt bounded by the request timeout and every attempt and wait by the call's deadline.
- Pacing per host (limits.HostLimits over pacing.Pacer): every answer is shown to the host's
  pacer, which slows down on 429 / Retry-After / RateLimit-* and recovers on success; a retry
  after a throttled answer waits for the hold once, here, and takes no second token.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from imagepromoter.registry import bodies, limits, messages
from imagepromoter.registry.messages import Call

IDENTITY = bodies.IDENTITY
GZIP = bodies.GZIP
MAX_RETRY_AFTER = 60.0  # a longer Retry-After is reported instead of waited for

OnRequest = Callable[[str, int | None], None]
Sleep = Callable[[float], Awaitable[None]]


@dataclass
class Reply:
    status: int
    headers: httpx.Headers
    body: bytes  # decoded: the bytes the server meant, whatever Content-Encoding carried them
    url: httpx.URL


class Transient(Exception):
    """One attempt failed in a way worth retrying.

    `connect`: no connection was made at all; `no_tls`: the server answered a TLS handshake
    with something that is not TLS (a plain-HTTP server).
    """

    def __init__(self, detail: str, *, connect: bool = False, no_tls: bool = False) -> None:
        super().__init__(detail)
        self.detail = detail
        self.connect = connect
        self.no_tls = no_tls


def same_origin(a: httpx.URL, b: httpx.URL) -> bool:
    """Same scheme, host and port: where credentials sent to `a` may also go."""
    return a.scheme == b.scheme and a.netloc == b.netloc


class Transport:
    """Per-host pools, limits and schemes; share one across every CR (through the client)."""

    def __init__(
        self,
        *,
        max_in_flight: int,
        requests_per_second: float,
        max_body_bytes: int,
        timeout: httpx.Timeout,
        request_timeout: float,
        retries: int,
        on_request: OnRequest | None,
        sleep: Sleep,
        clock: Callable[[], float] = time.monotonic,
        burst: float | None = None,
    ) -> None:
        self.max_in_flight = max_in_flight
        self.requests_per_second = requests_per_second
        self.burst = burst
        self.max_body_bytes = max_body_bytes
        self.timeout = timeout
        self.request_timeout = request_timeout
        self.retries = retries
        self.on_request = on_request
        self._sleep = sleep
        self._clock = clock
        self._limits: dict[str, limits.HostLimits] = {}
        self._schemes: dict[str, str] = {}  # insecure hosts: the scheme that answered
        self._clients: dict[tuple[str, bool], httpx.AsyncClient] = {}

    async def registry(
        self, call: Call, method: str, target: str, headers: dict[str, str]
    ) -> Reply:
        """A request to the call's registry; `target` is a path on it or an absolute URL."""
        if "://" in target:
            return await self.request(
                call, method, httpx.URL(target), headers, verify=not call.access.insecure
            )
        if not call.access.insecure:
            url = httpx.URL(f"https://{call.host}{target}")
            return await self.request(call, method, url, headers, verify=True)

        async def send() -> Reply:
            scheme = self._schemes.get(call.host)
            if scheme is not None:
                url = httpx.URL(f"{scheme}://{call.host}{target}")
                return await self._attempt(call, method, url, headers, verify=False)
            return await self._negotiate(call, method, target, headers)

        return await self._retrying(call, call.host, send)

    async def request(
        self,
        call: Call,
        method: str,
        url: httpx.URL,
        headers: dict[str, str],
        *,
        verify: bool,
    ) -> Reply:
        """One request to `url` (a token realm, object storage) with limits and retries."""

        async def send() -> Reply:
            return await self._attempt(call, method, url, headers, verify=verify)

        return await self._retrying(call, url.netloc.decode(), send)

    def scheme_of(self, host: str) -> str | None:
        """The scheme an insecure host turned out to speak (None until it answered)."""
        return self._schemes.get(host)

    async def aclose(self) -> None:
        """Close every connection pool."""
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()

    # the pipeline ------------------------------------------------------------------------------

    async def _negotiate(
        self, call: Call, method: str, target: str, headers: dict[str, str]
    ) -> Reply:
        """HTTPS without verification; plain HTTP only if the host speaks no TLS."""
        try:
            reply = await self._attempt(
                call, method, httpx.URL(f"https://{call.host}{target}"), headers, verify=False
            )
        except Transient as exc:
            if not exc.connect:
                raise
            over_tls = exc.detail
            if exc.no_tls:  # it answered, but not in TLS: a plain-HTTP host, for good
                self._schemes[call.host] = "http"
        else:
            self._schemes[call.host] = "https"
            return reply
        plain = httpx.URL(f"http://{call.host}{target}")
        try:
            reply = await self._attempt(call, method, plain, headers, verify=False)
        except Transient as exc:
            if self._schemes.get(call.host) == "http":
                raise
            detail = f"over HTTPS: {over_tls}; over HTTP: {exc.detail}"
            raise Transient(detail, connect=exc.connect) from None
        if reply.status == 400 and b"HTTPS" in reply.body.upper():
            # It does speak TLS: the HTTPS failure was a passing one, so try that again.
            raise Transient(f"over HTTPS: {over_tls}", connect=True)
        self._schemes[call.host] = "http"
        return reply

    async def _retrying(
        self, call: Call, netloc: str, send: Callable[[], Awaitable[Reply]]
    ) -> Reply:
        host = self._host(netloc)
        attempt = 0
        waited_until: float | None = None  # a throttled retry: the hold already waited for
        while True:
            if call.deadline.expired():
                raise messages.past_deadline(call, f"{attempt} attempts to {netloc}")
            try:
                async with host.slot(call.deadline, waited_until=waited_until) as sent:
                    reply = await send()
            except limits.Throttled as exc:
                raise messages.throttled(call, exc.host, exc.wait, exc.why) from None
            except Transient as exc:
                self._report(netloc, None)
                if attempt >= self.retries:
                    raise
                await self._wait(call, limits.backoff(attempt), exc.detail)
                waited_until = None
                attempt += 1
                continue
            self._report(netloc, reply.status)
            verdict = host.observe(reply.status, reply.headers, sent=sent)
            if reply.status not in limits.RETRYABLE_STATUS:
                return reply
            signal = verdict.signal
            wait = signal.retry_after
            if attempt >= self.retries or (wait is not None and wait > MAX_RETRY_AFTER):
                raise messages.busy(
                    call,
                    reply.url.netloc.decode(),
                    reply.status,
                    attempt + 1,
                    wait,
                    MAX_RETRY_AFTER,
                    signal.quota_words(),
                )
            if signal.throttled and verdict.hold > 0:
                delay = verdict.hold  # Retry-After, or the quota's reset: the registry said when
            elif wait is not None:
                delay = wait
            else:
                delay = limits.backoff(attempt)
            why = f"{netloc} answered {reply.status}"
            if signal.throttled and host.why:
                why = f"{netloc} {host.why}"
            now = self._clock()
            await self._wait(call, delay, why)
            waited_until = now + delay
            attempt += 1

    async def _wait(self, call: Call, seconds: float, why: str) -> None:
        if seconds >= call.deadline.remaining():
            raise messages.past_deadline(call, f"the last attempt: {why}")
        await self._sleep(seconds)

    async def _attempt(
        self,
        call: Call,
        method: str,
        url: httpx.URL,
        headers: dict[str, str],
        *,
        verify: bool,
    ) -> Reply:
        client = self._client(url.netloc.decode(), verify)
        budget = min(self.request_timeout, call.deadline.remaining())
        try:
            async with asyncio.timeout(budget):
                request = client.build_request(method, url, headers=headers)
                response = await client.send(request, stream=True)
                try:
                    body = await bodies.read(call, response, self.max_body_bytes)
                finally:
                    await response.aclose()
        except TimeoutError:
            raise Transient(f"no complete answer within {budget:g} s") from None
        except bodies.Truncated as exc:
            raise Transient(str(exc)) from None
        except httpx.TimeoutException as exc:
            raise Transient(messages.timeout_words(exc)) from None
        except httpx.ConnectError as exc:
            if messages.unverified(exc):  # retrying cannot help: say what to change instead
                self._report(url.netloc.decode(), None)
                raise messages.untrusted(call, url, exc) from None
            no_tls = url.scheme == "https" and messages.tls_failed(exc)
            raise Transient(messages.transport_words(exc), connect=True, no_tls=no_tls) from None
        except httpx.TransportError as exc:
            raise Transient(messages.transport_words(exc)) from None
        return Reply(response.status_code, response.headers, body, url)

    # state -------------------------------------------------------------------------------------

    def _host(self, netloc: str) -> limits.HostLimits:
        found = self._limits.get(netloc)
        if found is None:
            found = limits.HostLimits(
                self.max_in_flight,
                self.requests_per_second,
                self.burst,
                host=netloc,
                clock=self._clock,
                sleep=self._sleep,
            )
            self._limits[netloc] = found
        return found

    def _client(self, netloc: str, verify: bool) -> httpx.AsyncClient:
        client = self._clients.get((netloc, verify))
        if client is None:
            client = httpx.AsyncClient(
                http2=True,
                verify=verify,
                timeout=self.timeout,
                follow_redirects=False,
                limits=httpx.Limits(
                    max_connections=self.max_in_flight * 2,
                    max_keepalive_connections=self.max_in_flight,
                ),
                # Only what bodies.read decodes; callers narrow it to identity for manifests.
                headers={"User-Agent": "imagepromoter", "Accept-Encoding": GZIP},
            )
            self._clients[(netloc, verify)] = client
        return client

    def _report(self, host: str, status: int | None) -> None:
        if self.on_request is not None:
            self.on_request(host, status)
