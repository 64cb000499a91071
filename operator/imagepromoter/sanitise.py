r"""Outside text made safe for the place it is written to: one-line messages, a terminal, a quote.

Text from outside (a registry's error body, a git server's message, a file's name, a manifest's
kind) reaches sinks that each have their own way of being fooled: a newline in a status message
or log line forges a second line, `\x1b]...` in a terminal rewrites the screen or the window
title, U+202E turns the rest of a line around, a NUL truncates it in C tools. Each sink gets one
function here, and all of them make such characters visible instead of dropping them silently
(`\x1b` stays readable as `\x1b`), so a user can still see what was sent.

- `one_line`: status conditions, events, log lines. No control, format (bidi, zero-width) or
  line/paragraph separator characters; newlines and tabs become spaces; length capped.
- `terminal`: `--output text`. Lines are kept, everything else as `one_line` escapes it.
- `shown`: a value quoted inside a message (`'a\nb'`), capped.

Values written into YAML are not sanitised here: `values` quotes them by its own rules. Secrets
are not removed here either: `redact` does that, and must run first (`redact`, then cut).
Pure: no I/O.
"""

from __future__ import annotations

import unicodedata

_ELLIPSIS = "…"
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def _escape(char: str) -> str:
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _safe(char: str) -> bool:
    return char == " " or unicodedata.category(char) not in _UNSAFE_CATEGORIES


def cut(text: str, limit: int) -> str:
    """`text` at most `limit` characters long, marked with … when it was cut."""
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + _ELLIPSIS


def one_line(text: str, limit: int = 4096) -> str:
    """`text` on one line with every control or invisible character escaped, at most `limit`."""
    out: list[str] = []
    size = 0
    for char in text:
        piece = " " if char in "\n\r\t" else char if _safe(char) else _escape(char)
        out.append(piece)
        size += len(piece)
        if size > limit:
            break
    return cut("".join(out), limit)


def terminal(text: str) -> str:
    """`text` for a terminal: its lines kept, escape sequences and invisible characters shown."""
    return "\n".join(
        "".join(c if c == "\t" or _safe(c) else _escape(c) for c in line)
        for line in text.split("\n")
    )


def shown(text: str, limit: int = 80) -> str:
    """`text` quoted for a message, escaped as `one_line` does and cut to about `limit`."""
    body = one_line(text, limit).replace("'", "\\'")
    return f"'{body}'"
