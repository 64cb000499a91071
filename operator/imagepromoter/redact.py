"""Removing secret values, and the usual encodings of them, from any text before it is shown.

A message built from outside text (a registry's 403 body, a git server's reply, a library's
exception) can carry a secret we sent: a hostile server only has to echo it back. Removing exact
copies is not enough: `Authorization: Basic` carries base64 of `user:password`, URLs carry it
percent-quoted, JSON escapes it, and a message cut to a length keeps whatever part of it was
before the cut. So a `Redactor` knows, for every secret, its variants (itself, base64 of
`user:password` and of itself, URL-quoted, JSON-escaped) and removes each of them and every run
of text made of their 8-character windows: any 8 characters in a row of a secret are as good as
the secret to someone guessing the rest. Secrets shorter than 8 characters are removed where
they appear whole; shorter than 3, they cannot be told from ordinary text and are left.

Order matters: redact first, then cut (`sanitise.cut`): cutting first can split a secret into
pieces no window recognises. One RE2 pass finds candidates (linear in the text, however many
secrets), and each is widened while its neighbouring windows are windows of a secret too.
Pure: no I/O.
"""

from __future__ import annotations

import base64
import bisect
import json
import re
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import quote, quote_plus

import re2

WINDOW = 8
MIN_SECRET = 3
MARK = "<redacted>"


def variants(secret: str, username: str | None = None) -> set[str]:
    """The forms `secret` travels in: itself, base64, URL-quoted, JSON-escaped, Basic auth."""
    forms = {secret, quote(secret, safe=""), quote_plus(secret), json.dumps(secret)[1:-1]}
    forms.add(base64.b64encode(secret.encode()).decode())
    if username is not None:
        forms.add(base64.b64encode(f"{username}:{secret}".encode()).decode())
    return {form.rstrip("=") for form in forms if form}


def pieces(secret: str) -> list[str]:
    """What to redact of one Secret value: itself, or a PEM key's lines without the armour.

    The `-----BEGIN ... KEY-----` lines are the same in every key and would redact ordinary
    words; the base64 lines between them are the secret.
    """
    if "-----BEGIN " not in secret:
        return [secret, secret.rstrip("\r\n")]
    lines = [line.strip() for line in secret.splitlines()]
    return [line for line in lines if line and not line.startswith("-----")]


class Redactor:
    """Removes every variant of the secrets it was given from text; callable."""

    def __init__(self, secrets: Iterable[str] = (), pairs: Iterable[tuple[str, str]] = ()) -> None:
        forms: set[str] = set()
        for secret in secrets:
            if len(secret) >= MIN_SECRET:
                forms |= variants(secret)
        for username, password in pairs:
            if len(password) >= MIN_SECRET:
                forms |= variants(password, username)
        self._windows = {
            form[i : i + WINDOW]
            for form in forms
            if len(form) >= WINDOW
            for i in range(len(form) - WINDOW + 1)
        }
        needles = self._windows | {form for form in forms if len(form) < WINDOW}
        self._finder: Any = None
        if needles:
            options = re2.Options()
            options.log_errors = False
            options.max_mem = 64 << 20
            alternatives = sorted(needles, key=len, reverse=True)  # longest first
            try:
                self._finder = re2.compile("|".join(re2.escape(n) for n in alternatives), options)
            except re2.error:  # beyond RE2's memory: literals only, so `re` is safe, just slower
                self._finder = re.compile("|".join(re.escape(n) for n in alternatives))

    def __bool__(self) -> bool:
        return self._finder is not None

    def __call__(self, text: str) -> str:
        """`text` with every secret, encoding of one, or 8-character piece of one removed."""
        if self._finder is None or not text:
            return text
        spans: list[tuple[int, int]] = []
        for match in self._finder.finditer(text):
            start, end = match.span()
            if spans and start < spans[-1][1]:
                continue  # already covered by a widened span
            if end - start == WINDOW:
                while end < len(text) and text[end - WINDOW + 1 : end + 1] in self._windows:
                    end += 1
                floor = spans[-1][1] if spans else 0
                while start > floor and text[start - 1 : start - 1 + WINDOW] in self._windows:
                    start -= 1
            if spans and start <= spans[-1][1]:
                spans[-1] = (spans[-1][0], max(end, spans[-1][1]))
            else:
                spans.append((start, end))
        if not spans:
            return text
        out: list[str] = []
        position = 0
        for start, end in spans:
            out += [text[position:start], MARK]
            position = end
        out.append(text[position:])
        return "".join(out)

    def many(self, texts: Sequence[str]) -> list[str]:
        """Each of `texts` redacted, as `self(text)` would, with one search over them all.

        The JSON of 1,000 CRs holds a few thousand distinct strings, and one search each cost
        more in the wrapper's call than in RE2. The texts are joined, searched once, and only a
        text that some match overlaps is redacted on its own: every occurrence of a needle in a
        text is overlapped by a match of the joined search (finditer takes the leftmost match at
        or before it), so a text no match touches has nothing to remove.
        """
        if self._finder is None:
            return list(texts)
        joined = _SEPARATOR.join(texts)
        starts: list[int] = []
        position = 0
        for item in texts:
            starts.append(position)
            position += len(item) + len(_SEPARATOR)
        touched: set[int] = set()
        for match in self._finder.finditer(joined):
            begin, end = match.span()
            first = bisect.bisect_right(starts, begin) - 1
            last = bisect.bisect_right(starts, end - 1) - 1  # a match is never empty
            touched.update(range(first, last + 1))
        return [self(item) if i in touched else item for i, item in enumerate(texts)]


_SEPARATOR = "\n"  # between the texts `many` searches at once (any text would do)


def text(message: str, secrets: Iterable[str] = (), pairs: Iterable[tuple[str, str]] = ()) -> str:
    """`message` with the given secrets (and `user:password` pairs) removed; see `Redactor`."""
    return Redactor(secrets, pairs)(message)
