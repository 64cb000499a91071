"""Two shards of the operator over one API (the kmock emulator), one registry and one git server.

Two `operate(...)` runs, each in its own thread and loop (tests/operator_harness.py), with
`--selector imagepromoter.dev/shard=0` and `=1`. Each shard logs in with its own
bearer token, so the emulator's request history says which process wrote what, and each has its
own git committer, so the repository says which process committed what. Four CRs, two per shard,
each writing its own file. Then one CR is relabelled from shard 0 to shard 1 and a new tag is
pushed: shard 1 promotes it, once, and shard 0 no longer touches it.

Also here: `--selector` parsing (shards.parse) and its usage errors, table-driven.
"""

from __future__ import annotations

import asyncio
import inspect
from pathlib import Path
from typing import Any

import kopf
import pytest
from kopf._core.reactor import processing as kopf_processing

from imagepromoter import cli, scans, shards
from imagepromoter.kube import handlers, sharding
from imagepromoter.kube.options import REQUESTED_AT
from tests.kmock_emulator import Emulator
from tests.operator_harness import (
    TIMEOUT,
    VALUES,
    Cluster,
    Running,
    credentials,
    eventually,
    promotion,
    start_operator,
    stop_operator,
)

SHARD = shards.SHARD_LABEL
LOADED = 3 * TIMEOUT  # four CRs, two operators and an emulator on a shared 2-core machine
NAMES = {"s0-a": "0", "s0-b": "0", "s1-a": "1", "s1-b": "1"}


# --- --selector --------------------------------------------------------------------------------

PARSED = [
    (["imagepromoter.dev/shard=0"], {SHARD: "0"}),
    (["imagepromoter.dev/shard=0", "team"], {SHARD: "0", "team": None}),
    (["a=1,b=2"], {"a": "1", "b": "2"}),
    (["tier="], {"tier": ""}),
    ([], {}),
]


@pytest.mark.parametrize(
    ("texts", "labels"), PARSED, ids=["one", "and-present", "kubectl-commas", "empty-value", "none"]
)
def test_selector_parses(texts: list[str], labels: dict[str, str | None]) -> None:
    assert shards.parse(texts).labels == labels


BAD = [
    ("shard!=0", "is not a label requirement"),
    ("shard==0", "is not a label requirement"),
    ("a=b=c", "is not a label requirement"),
    ("=0", "is not a label name"),
    ("Bad_Prefix.io/shard=0", "is not a label name"),
    ("shard=not a value", "is not a label value"),
    ("shard=" + "x" * 64, "is not a label value"),
    ("", "is not a label requirement"),
]


@pytest.mark.parametrize(("text", "words"), BAD, ids=[t[:20] or "empty" for t, _ in BAD])
def test_a_malformed_selector_is_a_usage_error(
    text: str, words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(shards.SelectorError, match=words):
        shards.parse([text])
    args = cli.build_parser().parse_args(["run", "--standalone", "--selector", text])
    assert cli._run(args) == cli.EXIT_USAGE  # before anything is built or connected
    assert words in capsys.readouterr().err


def test_the_same_label_twice_with_two_values_is_refused() -> None:
    with pytest.raises(shards.SelectorError, match="required twice"):
        shards.parse(["shard=0", "shard=1"])


@pytest.mark.parametrize(
    ("labels", "matches"),
    [({SHARD: "0"}, True), ({SHARD: "1"}, False), ({}, False), ({SHARD: "0", "x": "y"}, True)],
    ids=["same", "other-shard", "unlabelled", "more-labels"],
)
def test_matches(labels: dict[str, str], matches: bool) -> None:
    assert shards.parse([f"{SHARD}=0"]).matches(labels) is matches


# --- what kube/sharding.py relies on in Kopf (fast; see tests/test_private_api.py) --------------


def test_every_imagepromotion_handler_is_filtered_and_nothing_else() -> None:
    state = handlers.Operator(handlers.Adapters(registry_factory=object, git=object()))  # type: ignore[arg-type]
    registry = handlers.build_registry(state, selector=shards.parse([f"{SHARD}=0", "team"]))
    seen = 0
    parts = (registry._changing, registry._spawning, registry._watching, registry._indexing)
    unfiltered = [h for part in parts for h in part._handlers if h.id.endswith("left_shard")]
    assert len(unfiltered) == 1, "one event handler sees every CR: those that left the shard"
    for handler in [h for part in parts for h in part._handlers if h not in unfiltered]:
        if handler.selector.check(sharding._RESOURCE):
            assert handler.labels == {SHARD: "0", "team": kopf.PRESENT}, handler.id
            seen += 1
        else:  # ImageWebhooks and the rest: every shard serves them
            assert not handler.labels, handler.id
    assert seen >= 3  # the timer, the watch (changes and triggers), the upstream watch
    plain = handlers.build_registry(state)
    assert all(not h.labels for part in (plain._changing,) for h in part._handlers)
    assert not [h for h in plain._watching._handlers if h.id.endswith("left_shard")]


async def test_a_cr_that_left_the_shard_is_dropped_from_what_the_shard_keeps() -> None:
    from tests.test_kube_freshness import body, handler

    state = handlers.Operator(handlers.Adapters(registry_factory=object, git=object()))  # type: ignore[arg-type]
    registry = handlers.build_registry(state, selector=shards.parse([f"{SHARD}=0"]))
    watched, left = handler(registry, "watched"), handler(registry, "left_shard")
    ours = body("u0", labels={SHARD: "0"})
    await watched(type="ADDED", body=ours, meta=ours.meta)
    await left(type="ADDED", body=ours, meta=ours.meta)
    image = state.images.image_of("u0")
    assert image is not None and state.images.members(image) == {"u0"}, "still ours: kept"
    moved = body("u0", labels={SHARD: "1"})
    await left(type="MODIFIED", body=moved, meta=moved.meta)  # Kopf no longer calls `watched`
    assert state.images.image_of("u0") is None and state.images.members(image) == set()
    assert "u0" not in state.gone, "it may come back: its timer starts again there"
    await watched(type="MODIFIED", body=ours, meta=ours.meta)  # relabelled back
    assert state.images.members(image) == {"u0"}


async def test_a_request_waiting_for_its_turn_is_dropped_when_its_cr_leaves_the_shard() -> None:
    from tests.test_kube_freshness import body, handler, operator
    from tests.test_reconcile import MemoryRegistry

    registry = MemoryRegistry(["1.0.0-dev"])
    state, kopf_registry = operator(registry)
    watched = handler(kopf_registry, "watched")
    cr = kopf.Body({**body("u0"), "status": {"observedGeneration": 1}})
    await watched(type=None, body=cr, meta=cr.meta)
    lock = state.locks.setdefault("u0", asyncio.Lock())
    await lock.acquire()  # a pass of the CR is running: the request waits for its turn
    asked = kopf.Body({**cr, "metadata": {**cr.meta, "annotations": {REQUESTED_AT: "1"}}})
    await watched(type="MODIFIED", body=asked, meta=asked.meta)
    assert ("u0", REQUESTED_AT) in state.asked
    state.release("u0")  # relabelled into another shard (the left_shard handler)
    lock.release()
    await asyncio.gather(*state.requested)
    assert registry.seen == [] and not state.asked, "the other shard answers it"


def test_kopf_is_blind_to_an_object_no_change_handler_matches() -> None:
    """Kopf drops the change cause (no diff-base, no progress written) when no handler prematches:
    the reason one shard never writes Kopf's annotations on another shard's CR."""
    source = inspect.getsource(kopf_processing.process_resource_causes)
    assert "not registry._changing.prematch(cause=changing_cause)" in source
    assert "changing_cause = None" in source


# --- two operators, one cluster ----------------------------------------------------------------


async def start_shard(api: Emulator, number: str, workdir: Path) -> Running:
    """`imagepromoter run --standalone --selector imagepromoter.dev/shard=N` against `api`,
    logged in with the bearer token `shard-N`."""
    from imagepromoter.git import writer
    from imagepromoter.registry import client

    def registry() -> scans.SharedScans:
        return scans.SharedScans(client.RegistryClient(), max_age=0.5)

    adapters = handlers.Adapters(
        registry_factory=registry,
        git=writer.GitWriter(
            workdir / f"shard-{number}",
            committer=f"shard-{number} <shard-{number}@imagepromoter.test>",
            sleep=lambda seconds: None,
        ),
    )
    return await start_operator(
        api,
        adapters,
        selector=shards.parse([f"{SHARD}={number}"]),
        token=token(number),
        name=f"operator-shard-{number}",
    )


def token(number: str) -> str:
    """The bearer token shard `number` logs in with."""
    return f"shard-{number}"


def writes(api: Emulator, token: str, name: str) -> list[str]:
    """The PATCHes `token`'s process sent to ImagePromotion `name` ('status' or 'object')."""
    found = []
    for request in list(api.history):
        method = str(getattr(request.method, "value", request.method)).upper()
        if method != "PATCH" or request.headers.get("Authorization") != f"Bearer {token}":
            continue
        resource = request.resource
        if resource is None or resource.plural != "imagepromotions" or request.name != name:
            continue
        found.append("status" if request.subresource == "status" else "object")
    return found


@pytest.mark.servers
async def test_two_shards_each_promote_only_their_own_and_a_move_promotes_once(
    api: Emulator,
    git_http_server: Any,
    git_repo: Any,
    registry_htpasswd: Any,
    repo_name: str,
    tmp_path: Path,
) -> None:
    from tests.servers import git_http

    url, repo = git_repo({f"{name}.yaml": VALUES.format(tag="0.9.0-dev") for name in NAMES})
    await asyncio.to_thread(registry_htpasswd.push_image, repo_name, tags=["1.0.0-dev"])
    cluster = Cluster(api)
    await credentials(cluster, git_http_server, registry_htpasswd)
    zero = await start_shard(api, "0", tmp_path)
    one = await start_shard(api, "1", tmp_path)
    try:
        for name, shard in NAMES.items():
            doc = promotion(
                name,
                image=f"{registry_htpasswd.host}/{repo_name}",
                insecure=True,
                imagePullSecret="ghcr-pull",
                interval="1s",
                git={
                    "url": url,
                    "branch": "main",
                    "insecure": True,
                    "secretRef": "gitops-write",
                    "commitMessage": "${name}: ${tag}",
                },
                targets=[{"path": f"{name}.yaml", "key": "image.tag"}],
            )
            doc["metadata"]["labels"] = {SHARD: shard}
            await cluster.apply(doc)

        def promoted(tag: str, *names: str) -> bool:
            return all(cluster.status(n).get("promotedTag") == tag for n in names)

        await eventually(
            lambda: promoted("1.0.0-dev", *NAMES), "every CR promoted 1.0.0-dev", LOADED
        )
        log = git_http.log(repo, "main", "%cn %s")
        for name, shard in NAMES.items():  # each CR committed once, by its own shard
            assert [line for line in log if line.endswith(f" {name}: 1.0.0-dev")] == [
                f"shard-{shard} {name}: 1.0.0-dev"
            ]
        for name, shard in NAMES.items():  # and no other shard wrote to it, not even Kopf's notes
            other = token("1" if shard == "0" else "0")
            assert writes(api, other, name) == [], f"{other} wrote to {name}"
            assert "status" in writes(api, token(shard), name)

        # Move s0-a to shard 1, then push a new tag: shard 1 promotes it, exactly once.
        await cluster.patch("s0-a", {"metadata": {"labels": {SHARD: "1"}}})
        await asyncio.to_thread(registry_htpasswd.push_image, repo_name, tags=["1.1.0-dev"])
        await eventually(
            lambda: promoted("1.1.0-dev", *NAMES), "every CR promoted 1.1.0-dev", LOADED
        )
        log = git_http.log(repo, "main", "%cn %s")
        assert [line for line in log if line.endswith(" s0-a: 1.1.0-dev")] == [
            "shard-1 s0-a: 1.1.0-dev"
        ]
        assert [line for line in log if line.endswith(" s0-b: 1.1.0-dev")] == [
            "shard-0 s0-b: 1.1.0-dev"
        ]
        before = len(writes(api, token("0"), "s0-a"))
        # One more whole cycle (another tag, promoted everywhere at its 1 s interval): shard 0,
        # whose timer for s0-a was stopped by the move, wrote nothing more to it meanwhile.
        await asyncio.to_thread(registry_htpasswd.push_image, repo_name, tags=["1.2.0-dev"])
        await eventually(
            lambda: promoted("1.2.0-dev", *NAMES), "every CR promoted 1.2.0-dev", LOADED
        )
        assert len(writes(api, token("0"), "s0-a")) == before
        assert git_http.log(repo, "main", "%cn %s").count("shard-1 s0-a: 1.2.0-dev") == 1
        assert len(git_http.log(repo, "main", "%s")) == 1 + 3 * len(NAMES)  # no double commit

        # And back to shard 0, which served it before: it starts from the cluster's status (what
        # shard 1 promoted), not from what it remembered, so the next tag is simply promoted.
        await cluster.patch("s0-a", {"metadata": {"labels": {SHARD: "0"}}})
        await asyncio.to_thread(registry_htpasswd.push_image, repo_name, tags=["1.3.0-dev"])
        await eventually(
            lambda: promoted("1.3.0-dev", *NAMES), "every CR promoted 1.3.0-dev", LOADED
        )
        assert cluster.ready("s0-a")["reason"] == "Promoted"
        assert git_http.log(repo, "main", "%cn %s").count("shard-0 s0-a: 1.3.0-dev") == 1
        assert len(git_http.log(repo, "main", "%s")) == 1 + 4 * len(NAMES)
    finally:
        await stop_operator(zero)
        await stop_operator(one)
