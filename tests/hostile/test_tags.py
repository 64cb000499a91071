"""Tags are data: a hostile registry's tag list reaches no values file, commit or terminal.

Each case serves, through a fault proxy in front of the real registry, a tag list holding the
real tag 1.2.3 and one hostile text that a naive policy would rank higher (a 9.9.9 variant). The
run must promote 1.2.3 (so the good work is not held up), write exactly `tag: "1.2.3"`, leave the
hostile text out of the commit and the output, and count it in the status message.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.hostile import _support

pytestmark = pytest.mark.servers

HOSTILE_TAGS = [
    ("final-newline", "9.9.9\n"),
    ("trailer-injection", "9.9.9\nSigned-off-by: Mallory <m@example.com>"),
    ("comment", "9.9.9 #x"),
    ("colon-space", ": "),
    ("double-quote", '"'),
    ("nul", "9.9.9\x00"),
    ("right-to-left-override", "9.9.9\u202e"),
    ("full-width-digits", "９.９.９"),
    ("path", "/../9.9.9"),
    ("python-tag", "!!python/object/apply:os.system ['id']"),
    ("ten-kilobytes", "9" * 10_000),
    ("escape-sequence", "9.9.9\x1b]0;owned\x07"),
    ("leading-dash", "-9.9.9"),
    ("build-metadata", "9.9.9+x"),
    ("129-characters", "9" + "0" * 128),
]


@pytest.mark.parametrize("tag", [t for _, t in HOSTILE_TAGS], ids=[i for i, _ in HOSTILE_TAGS])
def test_a_hostile_tag_is_ignored_and_counted(
    stage: Callable[..., _support.Stage], tag: str
) -> None:
    st = stage()
    st.write_crs(_support.promotion("app", **st.spec()))
    st.hostile_tags(["1.0.0", tag, "1.2.3"])
    run = st.promote("--output", "json", "-v", measure=("hostile tag", repr(tag)[:40]))
    assert run.returncode == 0, run.text
    status = _support.statuses(run)["app"]
    condition = _support.ready(status)
    assert condition["reason"] == "Promoted"
    assert status["latestTag"] == "1.2.3"
    assert "1 tag list entry is not a valid OCI tag" in condition["message"]
    assert st.file() == _support.VALUES.replace('"1.0.0"', '"1.2.3"')
    assert st.git_show("main") == f"Promote {st.image}:1.2.3 to values.yaml\n\n"
    assert "\x1b" not in run.stderr and "\u202e" not in run.text and "\x00" not in run.text


def test_only_hostile_tags_is_no_matching_tag_and_no_commit(
    stage: Callable[..., _support.Stage],
) -> None:
    st = stage()
    st.write_crs(_support.promotion("app", **st.spec()))
    st.hostile_tags([t for _, t in HOSTILE_TAGS])
    before = st.commits()
    run = st.promote("--output", "json")
    assert run.returncode == 1
    condition = _support.ready(_support.statuses(run)["app"])
    assert condition["reason"] == "NoMatchingTag"
    assert f"{len(HOSTILE_TAGS)} tag list entries are not valid OCI tags" in condition["message"]
    assert st.commits() == before


def test_text_output_shows_no_terminal_escapes(stage: Callable[..., _support.Stage]) -> None:
    st = stage()
    spec = st.spec(tagRegex=r"^(?P<version>\d+\.\d+\.\d+)\x1b\[2J$")
    st.write_crs(_support.promotion("app", **spec))
    run = st.promote()
    assert run.returncode == 1
    assert "\x1b" not in run.stdout and "\\x1b" in run.stdout


def test_outside_text_in_the_commit_message_cannot_forge_lines(
    stage: Callable[..., _support.Stage],
) -> None:
    forged = 'image:\n  tag: "1.0.0\\nSigned-off-by: Mallory <m@example.com>\\u001b[2J"\n'
    st = stage(values=forged)
    spec = st.spec()
    spec["git"] = {**spec["git"], "commitMessage": "Promote ${tag} (was ${previous})"}
    st.write_crs(_support.promotion("app", **spec))
    st.hostile_tags(["1.2.3"])
    run = st.promote("--output", "json")
    assert run.returncode == 0, run.text[-2000:]
    message = st.git_show("main")
    assert message.splitlines()[0].startswith("Promote 1.2.3 (was 1.0.0 Signed-off-by: Mallory")
    assert "\nSigned-off-by" not in message and "\x1b" not in message
