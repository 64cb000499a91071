"""User regexes run in linear time: patterns that backtrack for ever in Python's `re` finish.

One `promote` run holds a good CR and three CRs whose regexes are the textbook catastrophic
cases, each against text made to trigger them: tagRegex `^(a+)+$` against `aaa...ab` (a valid
OCI tag; Python's `re` needs seconds at 25 characters and never ends at 37), the same as an
excludeTags entry, and a target regex with a nested quantifier over a values line of digits that
almost matches. All of them must finish, with their own reasons, and the good CR is promoted.
Patterns RE2 cannot run are InvalidSpec naming the field, before any registry or git request.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.hostile import _support

pytestmark = pytest.mark.servers

EVIL_TAGS = ["1.2.3", "a" * 37 + "b", "a" * 120 + "b", "a" * 127]
NEAR_MISS = "1" * 5000 + "x"  # `(?:[0-9]+\.?)+"` backtracks over every split of these digits


def test_catastrophic_patterns_finish_and_hold_up_nothing(
    stage: Callable[..., _support.Stage],
) -> None:
    values = f'blob: "{NEAR_MISS}"\n' + _support.VALUES
    st = stage(values=values)
    st.write_crs(
        _support.promotion("good", **st.spec()),
        _support.promotion("evil-tag-regex", **st.spec(tagRegex="^(a+)+$")),
        _support.promotion("evil-exclude", **st.spec(excludeTags=["^(a+)+$", "(x+x+)+y"])),
        _support.promotion(
            "evil-target",
            **st.spec(
                targets=[{"path": "values.yaml", "regex": r'tag: "(?P<value>(?:[0-9]+\.?)+)"'}]
            ),
        ),
        _support.promotion(
            "evil-near-miss",
            **st.spec(targets=[{"path": "values.yaml", "regex": r': "(?P<value>(?:[0-9]+)+)"'}]),
        ),
    )
    st.hostile_tags(EVIL_TAGS, times=50)
    run = st.promote("--output", "json", measure=("catastrophic regex", "five CRs, one run"))
    found = {name: _support.ready(status) for name, status in _support.statuses(run).items()}
    assert found["good"]["reason"] in {"Promoted", "UpToDate"}
    assert found["evil-tag-regex"]["reason"] == "NoMatchingTag"
    assert "1 is not a version" in found["evil-tag-regex"]["message"]
    assert found["evil-exclude"]["reason"] in {"Promoted", "UpToDate"}
    assert found["evil-target"]["reason"] in {"Promoted", "UpToDate"}
    assert found["evil-near-miss"]["reason"] == "TargetError"
    assert "matches nothing" in found["evil-near-miss"]["message"]
    assert 'tag: "1.2.3"' in st.file() and NEAR_MISS in st.file()


REFUSED = [
    ("backreference", {"tagRegex": r"^(\d+)\.\1$"}, "spec.tagRegex", "uses a backreference"),
    ("lookahead", {"tagRegex": r"^(?!.*-rc)(?P<version>.+)$"}, "spec.tagRegex", "lookaround"),
    ("lookbehind-exclude", {"excludeTags": [r"(?<=-)rc"]}, "spec.excludeTags[0]", "lookaround"),
    (
        "target-backreference",
        {"targets": [{"path": "values.yaml", "regex": r"(?P<q>['\"])(?P<value>.*)(?P=q)"}]},
        "spec.targets[0].regex",
        "backreference",
    ),
    ("possessive", {"tagRegex": r"^\d++$"}, "spec.tagRegex", "possessive"),
]


@pytest.mark.parametrize(
    ("spec", "field", "words"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED]
)
def test_a_pattern_re2_cannot_run_is_invalid_spec_naming_the_field(
    stage: Callable[..., _support.Stage], spec: dict[str, object], field: str, words: str
) -> None:
    st = stage()
    st.write_crs(_support.promotion("app", **st.spec(**spec)))
    st.proxy.clear()
    run = st.promote("--output", "json")
    assert run.returncode == 1
    condition = _support.ready(_support.statuses(run)["app"])
    assert condition["reason"] == "InvalidSpec"
    assert condition["message"].startswith(f"{field}: ") and words in condition["message"]
    assert "linear time" in condition["message"]
    assert st.proxy.seen("/v2/") == []  # refused before any registry request
