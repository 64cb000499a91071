"""pipeline/index.py: image -> ImagePromotions and their intervals, as the watch keeps it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from imagepromoter import spec
from imagepromoter.pipeline import index

APP = ("ghcr.io", "org/app")
OTHER = ("ghcr.io", "org/other")
HUB_NGINX = ("registry-1.docker.io", "library/nginx")


def cr(image: Any = "ghcr.io/org/app", interval: Any = "5m", **more: Any) -> dict[str, Any]:
    return {"image": image, "interval": interval, **more}


KEYS = [
    ({"image": "ghcr.io/org/app"}, APP),
    ({"image": "  ghcr.io/org/app "}, APP),
    ({"image": "nginx"}, HUB_NGINX),
    ({"image": "docker.io/library/nginx"}, HUB_NGINX),
    ({"image": "ghcr.io/org/app:1.0"}, None),
    ({"image": "https://ghcr.io/org/app"}, None),
    ({"image": 7}, None),
    ({}, None),
]


@pytest.mark.parametrize(("spec_dict", "key"), KEYS, ids=[repr(s) for s, _ in KEYS])
def test_image_key_normalises_like_the_pass(spec_dict: dict[str, Any], key: Any) -> None:
    assert index.image_key(spec_dict) == key


INTERVALS = [
    ("1m", timedelta(minutes=1)),
    ("1h30m", timedelta(hours=1, minutes=30)),
    ("0s", spec.DEFAULT_INTERVAL),
    ("soon", spec.DEFAULT_INTERVAL),
    (None, spec.DEFAULT_INTERVAL),
    (60, spec.DEFAULT_INTERVAL),
]


@pytest.mark.parametrize(("text", "interval"), INTERVALS, ids=[repr(t) for t, _ in INTERVALS])
def test_interval_of_falls_back_to_the_default(text: Any, interval: timedelta) -> None:
    assert index.interval_of({"interval": text} if text is not None else {}) == interval


# Each step: (uid, spec or None for a deletion); then the expected state of APP and OTHER.
STEPS: list[tuple[str, list[tuple[str, dict[str, Any] | None]], dict[Any, Any]]] = [
    (
        "three CRs on one image: the shortest interval",
        [("a", cr(interval="5m")), ("b", cr(interval="1m")), ("c", cr(interval="1h"))],
        {APP: ({"a", "b", "c"}, timedelta(minutes=1)), OTHER: (set(), None)},
    ),
    (
        "the shortest one deleted: the next shortest",
        [("a", cr(interval="5m")), ("b", cr(interval="1m")), ("b", None)],
        {APP: ({"a"}, timedelta(minutes=5))},
    ),
    (
        "an interval made longer is seen",
        [("a", cr(interval="1m")), ("b", cr(interval="5m")), ("a", cr(interval="1h"))],
        {APP: ({"a", "b"}, timedelta(minutes=5))},
    ),
    (
        "a CR moved to another image leaves the first",
        [("a", cr()), ("b", cr(interval="1m")), ("b", cr("ghcr.io/org/other", "1m"))],
        {APP: ({"a"}, timedelta(minutes=5)), OTHER: ({"b"}, timedelta(minutes=1))},
    ),
    (
        "the last CR of an image gone: the image is gone",
        [("a", cr()), ("a", None)],
        {APP: (set(), None)},
    ),
    (
        "a spec that stops parsing drops the CR",
        [("a", cr()), ("b", cr()), ("b", cr("ghcr.io/org/app:oops"))],
        {APP: ({"a"}, timedelta(minutes=5))},
    ),
    (
        "a suspended CR counts for nothing, resumed it counts again",
        [("a", cr(interval="1h")), ("b", cr(interval="1m", suspend=True))],
        {APP: ({"a"}, timedelta(hours=1))},
    ),
    (
        "resumed",
        [("b", cr(interval="1m", suspend=True)), ("b", cr(interval="1m", suspend=False))],
        {APP: ({"b"}, timedelta(minutes=1))},
    ),
    (
        "a bad interval counts as the default",
        [("a", cr(interval="1h")), ("b", cr(interval="often"))],
        {APP: ({"a", "b"}, spec.DEFAULT_INTERVAL)},
    ),
    (
        "removing an unknown CR is harmless",
        [("zz", None), ("a", cr())],
        {APP: ({"a"}, timedelta(minutes=5))},
    ),
]


@pytest.mark.parametrize(("steps", "expected"), [(s, e) for _, s, e in STEPS],
                         ids=[i for i, *_ in STEPS])  # fmt: skip
def test_the_index_follows_the_watch(
    steps: list[tuple[str, dict[str, Any] | None]], expected: dict[Any, Any]
) -> None:
    images = index.ImageIndex()
    for uid, spec_dict in steps:
        if spec_dict is None:
            images.remove(uid)
        else:
            images.update(uid, spec_dict)
    for key, (members, shortest) in expected.items():
        assert images.members(key) == members
        assert images.min_interval(key) == shortest
        for uid in members:
            assert images.image_of(uid) == key
    assert len(images) == len({uid for m, _ in expected.values() for uid in m})
