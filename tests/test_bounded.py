"""bounded: YAML and JSON from outside within size, depth and alias-expansion limits."""

from __future__ import annotations

import pytest

from imagepromoter import bounded


def _laughs(levels: int) -> str:
    lines = ['l0: &l0 ["a","a","a","a","a","a","a","a","a"]']
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


BAD_YAML = [
    ("alias-bomb", _laughs(9), "expands to more than 100000 values"),
    ("deep-flow", "[" * 100 + "]" * 100, "nests deeper than 64 levels"),
    ("deeper-than-libyaml", "[" * 5000 + "]" * 5000, "nests deeper than 64 levels"),
    ("deep-block", "".join("  " * i + f"k{i}:\n" for i in range(80)), "nests deeper"),
    (
        "python-tag",
        "a: !!python/object/apply:os.system [id]\n",
        "could not determine a constructor",
    ),
    ("nul", "a: b\x00\n", "a character YAML does not allow"),
    ("unterminated-names-lines", 'a:\n  p: "secret-value\n', "line 2"),
]


@pytest.mark.parametrize(("text", "words"), [c[1:] for c in BAD_YAML], ids=[c[0] for c in BAD_YAML])
def test_yaml_beyond_a_limit_is_one_limit_error(text: str, words: str) -> None:
    with pytest.raises(bounded.LimitError) as caught:
        bounded.yaml_documents(text, "f.yaml")
    message = str(caught.value)
    assert message.startswith("f.yaml") and words in message
    assert "secret-value" not in message


def test_yaml_within_limits_loads_with_aliases() -> None:
    docs = bounded.yaml_documents("a: &x [1, 2]\nb: *x\n---\n- c\n", "f.yaml")
    assert docs == [{"a": [1, 2], "b": [1, 2]}, ["c"]]
    assert bounded.yaml_documents(_laughs(4), "f.yaml")[0]["l3"][0][0][0] == ["a"] * 9


def test_yaml_size_limit() -> None:
    with pytest.raises(bounded.LimitError, match="larger than the limit of 10 bytes"):
        bounded.yaml_documents("a: 12345678901", "f.yaml", bounded.Limits(max_bytes=10))


@pytest.mark.parametrize(
    ("data", "words"),
    [(b"\xff\xfe", "byte 0"), (b"a" * 11, "more than the limit of 10")],
    ids=["not-utf8", "too-large"],
)
def test_decode(data: bytes, words: str) -> None:
    with pytest.raises(bounded.LimitError, match=words):
        bounded.decode(data, "f", max_bytes=10)


def test_decode_drops_a_bom() -> None:
    assert bounded.decode(b"\xef\xbb\xbfa: 1", "f", max_bytes=10) == "a: 1"


JSON = [
    ("deep-list", b"[" * 100_000 + b"]" * 100_000, bounded.LimitError, "nests deeper than 64"),
    ("deep-object", b'{"a":' * 65 + b"1" + b"}" * 65, bounded.LimitError, "nests deeper than 64"),
    ("unclosed-deep", b"[" * 100_000, bounded.LimitError, "nests deeper than 64"),
    ("unclosed-shallow", b"[[[" * 10, ValueError, "malformed"),
    ("too-large", b"[" + b"1," * 100 + b"1]", bounded.LimitError, "more than the limit"),
    ("invalid", b'{"tags": ["1.0",', ValueError, "malformed"),
    ("invalid-but-paired", b'{"tags": ["1.0",]}', ValueError, "Expecting"),
]


@pytest.mark.parametrize(("data", "kind", "words"), [c[1:] for c in JSON], ids=[c[0] for c in JSON])
def test_json_beyond_a_limit(data: bytes, kind: type[Exception], words: str) -> None:
    with pytest.raises(kind, match=words):
        bounded.loads_json(data, max_bytes=100 if data.startswith(b"[1") else 1 << 24)


@pytest.mark.parametrize(
    "data",
    [b'{"tags": ["a]]]", "b{{"]}', b'{"a": [[[[[]]]]], "b": "\\"]"}', b'"x"', b"[]"],
    ids=["brackets-in-strings", "escaped-quote", "string", "empty-list"],
)
def test_json_within_limits_parses(data: bytes) -> None:
    import json

    assert bounded.loads_json(data) == json.loads(data)
    assert bounded.loads_json(data, max_depth=64) == json.loads(data)


def test_json_depth_exactly_at_the_limit() -> None:
    assert bounded.loads_json(b"[" * 64 + b"]" * 64, max_depth=64) is not None


def test_a_deep_webhook_body_is_malformed_not_a_recursion_error() -> None:
    from imagepromoter.webhooks import model

    with pytest.raises(model.Malformed, match="nests deeper than 64"):
        model.load_json(b"[" * 500_000 + b"]" * 500_000)
    assert model.decode("[" * 100_000) is None
