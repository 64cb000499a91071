"""redact: secrets, their encodings and their 8-character pieces leave any text; cut after."""

from __future__ import annotations

import base64
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imagepromoter import redact, sanitise

USER, PASSWORD = "reader", "S3cr3t-Pa55w0rd/xyzw"
BASIC = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()

# (id, text, what must not survive)
CASES = [
    ("exact", f"denied {PASSWORD} here", PASSWORD),
    ("16-of-20-after-a-cut", f"x: {PASSWORD[:16]}", PASSWORD[:16]),
    ("suffix", f"tail {PASSWORD[5:]}!", PASSWORD[5:]),
    ("middle-8", f"...{PASSWORD[6:14]}...", PASSWORD[6:14]),
    ("basic-header", f"Authorization: Basic {BASIC}", BASIC[:-2]),
    ("basic-header-piece", f"zz {BASIC[4:20]} zz", BASIC[4:20]),
    ("url-quoted", "u=" + quote(PASSWORD, safe=""), quote(PASSWORD, safe="")),
    ("base64-of-password", base64.b64encode(PASSWORD.encode()).decode(), PASSWORD[:8]),
    ("json-escaped", '{"p": "S3cr3t-Pa55w0rd\\/xyzw"}', "Pa55w0rd"),
    ("twice-overlapping", PASSWORD + PASSWORD[4:], PASSWORD[4:12]),
]


@pytest.mark.parametrize(("text", "secret"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_every_form_and_piece_is_removed(text: str, secret: str) -> None:
    out = redact.text(text, [PASSWORD], [(USER, PASSWORD)])
    assert secret not in out and redact.MARK in out
    assert not any(out[i : i + 8] in PASSWORD for i in range(len(out) - 7))


@pytest.mark.parametrize(
    "text",
    ["nothing secret here", "S3cr3t", "Pa55", "reader asked for it", ""],
    ids=["plain", "6-chars-of-it", "4-chars-of-it", "username", "empty"],
)
def test_ordinary_text_and_short_pieces_are_kept(text: str) -> None:
    assert redact.text(text, [PASSWORD], [(USER, PASSWORD)]) == text


def test_short_secrets_only_whole_and_tiny_ones_not_at_all() -> None:
    assert redact.text("pin 4711 and 4711x", ["4711"]) == f"pin {redact.MARK} and {redact.MARK}x"
    assert redact.text("a b", ["a"]) == "a b"  # shorter than 3: indistinguishable from text


def test_redact_before_cutting_leaves_no_piece() -> None:
    message = "x" * 136 + PASSWORD
    cut_first = sanitise.cut(message, 152)  # the old order: the cut leaves 15 characters
    assert PASSWORD[:15] in cut_first
    right = sanitise.cut(redact.text(message, [PASSWORD]), 152)
    assert not any(right[i : i + 8] in PASSWORD for i in range(len(right) - 7))


def test_redactor_is_linear_in_the_text() -> None:
    big = ("x" * 1000 + PASSWORD[3:15]) * 2000
    out = redact.Redactor([PASSWORD])(big)
    assert out.count(redact.MARK) == 2000 and PASSWORD[3:11] not in out


def test_an_empty_redactor_changes_nothing() -> None:
    assert not redact.Redactor()
    assert redact.Redactor()("x") == "x"


def test_a_large_private_key_is_removed_piece_by_piece() -> None:
    import secrets as random

    body = "\n".join(base64.b64encode(random.token_bytes(54)).decode() for _ in range(50))
    key = f"-----BEGIN OPENSSH PRIVATE KEY-----\n{body}\n-----END OPENSSH PRIVATE KEY-----\n"
    out = redact.Redactor([key])("ssh said: " + key[100:180] + " and " + key[-300:-200])
    assert key[100:108] not in out and key[-300:-292] not in out


def test_beyond_re2_memory_it_falls_back_to_literal_matching(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import re2

    def refuse(*args: object, **kwargs: object) -> None:
        raise re2.error(b"pattern too large - compile failed")

    monkeypatch.setattr(redact.re2, "compile", refuse)
    assert redact.text(f"a {PASSWORD[2:14]} b", [PASSWORD]) == f"a {redact.MARK} b"


def test_pieces_of_a_pem_key_leave_the_armour_alone() -> None:
    armour = "OPENSSH PRIVATE KEY-----"
    key = f"-----BEGIN {armour}\nb3BlbnNzaC1rZXk\nAAAAtzc2gtZW\n-----END {armour}\n"
    assert redact.pieces(key) == ["b3BlbnNzaC1rZXk", "AAAAtzc2gtZW"]
    out = redact.Redactor(redact.pieces(key))("the OPENSSH PRIVATE KEY has b3BlbnNzaC1rZXk")
    assert out == f"the OPENSSH PRIVATE KEY has {redact.MARK}"
    assert redact.pieces("tok\n") == ["tok\n", "tok"]


MULTILINE = "first-line-of-it\nsecond-line-of-it"  # spans the join of two texts in `many`


@given(
    st.lists(
        st.lists(
            st.sampled_from(
                [
                    "",
                    "x",
                    "\n",
                    " ",
                    PASSWORD[:9],
                    PASSWORD[5:],
                    "abc",
                    BASIC[2:14],
                    "S3cr",
                    "3t-Pa55",
                    "w0rd/x",
                    "first-line-of-it",
                    "second-li",
                    "-of-it\nsec",
                ]
            ),
            max_size=6,
        ).map("".join),
        max_size=12,
    )
)
def test_many_texts_at_once_read_as_each_on_its_own(texts: list[str]) -> None:
    """`many` searches the texts joined: pieces split across two texts, or across the join,
    must not change what either text keeps."""
    redactor = redact.Redactor([PASSWORD, "abc", MULTILINE], [(USER, PASSWORD)])
    assert redactor.many(texts) == [redactor(text) for text in texts]
    assert redact.Redactor().many(texts) == texts


def test_many_redacts_only_the_texts_a_match_touches() -> None:
    redactor = redact.Redactor([PASSWORD])
    texts = ["plain", f"a {PASSWORD[:8]}", PASSWORD[8:], "x" * 3, PASSWORD[:4], PASSWORD[4:]]
    assert redactor.many(texts) == [
        "plain", "a <redacted>", "<redacted>", "xxx", PASSWORD[:4], PASSWORD[4:12] and "<redacted>",
    ]  # fmt: skip
