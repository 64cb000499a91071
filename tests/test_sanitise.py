"""sanitise: outside text made safe for one-line sinks, terminals and quotes."""

from __future__ import annotations

import pytest

from imagepromoter import sanitise

# (id, text, one_line result)
ONE_LINE = [
    ("newline-forges-a-line", "a\nSigned-off-by: x", "a Signed-off-by: x"),
    ("crlf-and-tab", "a\r\n\tb", "a   b"),
    ("nul", "a\x00b", "a\\x00b"),
    ("escape", "a\x1b[2Jb", "a\\x1b[2Jb"),
    ("right-to-left-override", "abc\u202edef", "abc\\u202edef"),
    ("zero-width-joiner", ".g\u200cit", ".g\\u200cit"),
    ("line-separator", "a\u2028b", "a\\u2028b"),
    ("c1-control", "a\x85b", "a\\x85b"),
    ("ordinary-unicode-kept", "café 日本 ✓", "café 日本 ✓"),
]


@pytest.mark.parametrize(("text", "want"), [c[1:] for c in ONE_LINE], ids=[c[0] for c in ONE_LINE])
def test_one_line(text: str, want: str) -> None:
    assert sanitise.one_line(text) == want


def test_one_line_cuts_with_an_ellipsis_and_is_bounded() -> None:
    out = sanitise.one_line("\x00" * 10_000, 100)
    assert len(out) == 100 and out.endswith("…")


def test_terminal_keeps_lines_and_tabs_but_shows_escapes() -> None:
    assert sanitise.terminal("a\tb\n\x1b]0;title\x07c") == "a\tb\n\\x1b]0;title\\x07c"


def test_shown_quotes_and_escapes() -> None:
    assert sanitise.shown("it's\n") == "'it\\'s '"
    assert sanitise.shown("x" * 200, 10) == "'xxxxxxxxx…'"
