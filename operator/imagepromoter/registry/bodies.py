"""Response bodies as the exact bytes the server meant: the size cap, and Content-Encoding undone.

Digests are over the bytes a registry stores, so what we hash must be those bytes, whatever
carried them: nginx's `gzip on` and CDNs compress JSON (and manifests) even for registries that
never do. We ask for identity where it matters and decode gzip, x-gzip or deflate where it
arrives anyway; any other encoding is an error naming it, never bytes hashed as they came.

Decoding is incremental through zlib's `max_length`, not httpx's decoders (which expand a whole
chunk at once): the cap (`max_body_bytes`) holds on the raw bytes and on the decoded ones, so a
small compressed body cannot expand into gigabytes before anything checks it. A compressed body
that ends before its stream does is `Truncated` (the transport retries it like a reset).
"""

from __future__ import annotations

import zlib

import httpx

from imagepromoter.registry import messages
from imagepromoter.registry.messages import Call

IDENTITY = "identity"
GZIP = "gzip"
DECODABLE = ("gzip", "x-gzip", "deflate")


class Truncated(Exception):
    """The compressed stream ended early: worth another attempt."""


async def read(call: Call, response: httpx.Response, limit: int) -> bytes:
    """The decoded body, or a RegistryError once it (raw or decoded) exceeds `limit` bytes."""
    netloc, path = response.url.netloc.decode(), response.url.path
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise messages.oversized(call, netloc, path, limit)
    decoder = _decoder(call, netloc, response.headers.get("content-encoding", ""))
    chunks: list[bytes] = []
    raw = size = 0
    try:
        async for chunk in response.aiter_raw():
            raw += len(chunk)
            if raw > limit:
                raise _TooBig
            data = chunk if decoder is None else decoder.feed(chunk, limit - size)
            size += len(data)
            chunks.append(data)
        if decoder is not None and raw:  # a HEAD or 304 carries the header but no body
            chunks.append(decoder.finish(limit - size))
    except _TooBig:
        raise messages.oversized(call, netloc, path, limit) from None
    except zlib.error:
        assert decoder is not None
        raise messages.sent(
            call,
            f"a body for {call.repository} that does not decode as {decoder.name}; the "
            "registry (or a proxy in front of it) is misbehaving",
        ) from None
    return b"".join(chunks)


class _TooBig(Exception):
    """The body (raw or decoded) went past the size cap."""


class _Inflater:
    """gzip or deflate, decoded chunk by chunk, never producing more than the room left."""

    def __init__(self, name: str) -> None:
        self.name = name
        wbits = 16 + zlib.MAX_WBITS if name in ("gzip", "x-gzip") else zlib.MAX_WBITS
        self._zlib = zlib.decompressobj(wbits)

    def feed(self, data: bytes, room: int) -> bytes:
        out = self._zlib.decompress(data, max(room, 0) + 1)
        if len(out) > room or self._zlib.unconsumed_tail:
            raise _TooBig
        return out

    def finish(self, room: int) -> bytes:
        tail = self._zlib.flush()
        if len(tail) > room:
            raise _TooBig
        if not self._zlib.eof:
            raise Truncated(f"the {self.name} body ended early (truncated)")
        return tail


def _decoder(call: Call, netloc: str, header: str) -> _Inflater | None:
    """What undoes the Content-Encoding: None for identity; one of DECODABLE, else an error."""
    names = [n.strip().lower() for n in header.split(",")]
    names = [n for n in names if n not in ("", IDENTITY)]
    if not names:
        return None
    if len(names) > 1 or names[0] not in DECODABLE:
        raise messages.unknown_encoding(call, netloc, ", ".join(names))
    return _Inflater(names[0])
