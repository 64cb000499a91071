"""The emulator carries many requests: kmock matches each against the requests in flight only.

Stock kmock 0.8 keeps every request it served in the list its filters scan for each new request,
so a PATCH costs O(requests served). tests/kmock_emulator.py retires each served request into a
bounded `history` and a whole-run `counts`; these tests pin that down without timing anything.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import kmock
import pytest

from tests.kmock_emulator import Emulator
from tests.operator_harness import CRD, NS, promotion

pytestmark = pytest.mark.servers  # the emulator over HTTP on 127.0.0.1

PATH = f"/apis/imagepromoter.dev/v1alpha1/namespaces/{NS}/imagepromotions"
MERGE = {"Content-Type": "application/merge-patch+json"}


@pytest.fixture
async def small() -> AsyncIterator[Emulator]:
    async with Emulator(keep_requests=50) as emulator, kmock.Server(emulator):
        emulator.resources.load_bundled()
        emulator.register_crd(CRD)
        yield emulator


def ipr(api: Emulator) -> kmock.resource:
    """The ImagePromotion resource as the emulator declared it."""
    return next(r for r in api.resources if r.plural == "imagepromotions")


async def patch_status(api: Emulator, name: str, n: int) -> dict[str, Any]:
    resp = await api.patch(f"{PATH}/{name}/status", json={"status": {"n": n}}, headers=MERGE)
    assert resp.status == 200
    return dict(await resp.json())


async def test_served_requests_leave_the_matching_list(small: Emulator) -> None:
    resp = await small.post(PATH, json=promotion("a"))
    assert resp.status in (200, 201)
    for n in range(300):
        await patch_status(small, "a", n)
    assert list(small) == [], "nothing in flight: kmock's filters scan nothing"
    assert all(list(payload._requests) == [] for payload in small._payloads)
    assert len(small.history) == 50, "the last keep_requests, for assertions"
    assert small.counts["PATCH", "imagepromotions", "status"] == 300
    assert small.counts["POST", "imagepromotions", ""] == 1


async def test_objects_keep_their_last_versions_only(small: Emulator) -> None:
    await small.post(PATH, json=promotion("a"))
    for n in range(20):
        await patch_status(small, "a", n)
    key = (ipr(small), NS, "a")
    assert len(small.objects[key].history) == small.keep_versions
    assert small.read_object(*key)["status"] == {"n": 19}, "the newest state is the one kept"
    resp = await small.get(f"{PATH}/a")
    assert (await resp.json())["status"] == {"n": 19}


async def test_history_keeps_what_tests_assert_on(small: Emulator) -> None:
    await small.post(PATH, json=promotion("a"))
    await patch_status(small, "a", 1)
    resp = await small.get(PATH)
    assert [item["metadata"]["name"] for item in (await resp.json())["items"]] == ["a"]
    made = [
        (str(getattr(r.method, "value", r.method)).upper(), r.resource and r.resource.plural,
         r.subresource)
        for r in small.history
    ]  # fmt: skip
    assert made[-3:] == [
        ("POST", "imagepromotions", None),
        ("PATCH", "imagepromotions", "status"),
        ("GET", "imagepromotions", None),
    ]


async def test_a_deleted_object_stays_deleted_after_trimming(small: Emulator) -> None:
    await small.post(PATH, json=promotion("a"))
    for n in range(5):
        await patch_status(small, "a", n)
    resp = await small.delete(f"{PATH}/a")
    assert resp.status == 200
    assert (await small.get(f"{PATH}/a")).status == 404
    assert small.list_objects(ipr(small)) == []


def in_namespace(ns: str, name: str) -> dict[str, Any]:
    doc = promotion(name)
    doc["metadata"]["namespace"] = ns
    return doc


async def test_requests_naming_one_object_find_exactly_that_object(small: Emulator) -> None:
    path = "/apis/imagepromoter.dev/v1alpha1/namespaces/{}/imagepromotions"
    for ns in ("one", "two"):
        resp = await small.post(path.format(ns), json=in_namespace(ns, "a"))
        assert resp.status in (200, 201)
        assert (await resp.json())["metadata"]["namespace"] == ns, "create answers its own object"
    resp = await small.patch(
        f"{path.format('two')}/a/status", json={"status": {"n": 2}}, headers=MERGE
    )
    assert (await resp.json())["metadata"]["namespace"] == "two"
    one = await (await small.get(f"{path.format('one')}/a")).json()
    two = await (await small.get(f"{path.format('two')}/a")).json()
    assert (one["metadata"]["namespace"], one.get("status")) == ("one", None)
    assert (two["metadata"]["namespace"], two["status"]) == ("two", {"n": 2})
    assert (await small.get(f"{path.format('three')}/a")).status == 404
    assert (await small.get(f"{path.format('one')}/b")).status == 404
    resp = await small.delete(f"{path.format('one')}/a")
    assert (resp.status, (await resp.json())["metadata"]["namespace"]) == (200, "one")
    assert (await small.get(f"{path.format('one')}/a")).status == 404
    assert (await small.get(f"{path.format('two')}/a")).status == 200
