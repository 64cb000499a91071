"""One notification per push and URL: CRs batched into one push notify once (kube/notifying.py).

The Notifier and its real Sender post to Argo CD stand-ins (real HTTP servers on 127.0.0.1);
the passes' results are built as reconcile returns them for three CRs of one push.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from imagepromoter import changes, reconcile, spec
from imagepromoter import status as statuses
from imagepromoter.kube import notifying
from tests.argocd_standin import ArgoCD

URL = "https://git.example/myorg/gitops.git"
BASE, TIP = "b" * 40, "f" * 40


@pytest.fixture
async def argos() -> AsyncIterator[tuple[ArgoCD, ArgoCD]]:
    first, second = await ArgoCD(secret=None).start(), await ArgoCD(secret=None).start()
    yield first, second
    await first.stop()
    await second.stop()


def result(name: str, commit: str, base: str, push: changes.Push | None, *urls: str) -> Any:
    path = f"apps/{name}/values.yaml"
    promotion = spec.parse(
        {
            "image": "ghcr.io/myorg/app",
            "tagRegex": r"^\d+\.\d+\.\d+$",
            "git": {"url": URL, "branch": "main"},
            "targets": [{"path": path, "key": "image.tag"}],
            "notify": [{"type": "argocd", "url": url} for url in urls],
        }
    )
    changeset = changes.Changeset((changes.FileChange(path, b"a", b"b"),), f"promote {name}")
    write = changes.WriteResult(
        commit=commit, branch="main", base=base, changeset=changeset, push=push
    )
    outcome = statuses.Outcome(reason="Promoted", message="", promoted_tag="1.2.0")
    return reconcile.Result(status={}, outcome=outcome, write=write, promotion=promotion)


def body(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "gitops"}}


async def test_crs_of_one_push_notify_each_url_once(argos: tuple[ArgoCD, ArgoCD]) -> None:
    argo, other = argos
    warnings: list[tuple[Any, ...]] = []
    notifier = notifying.Notifier(secrets=lambda: None, post=lambda *a: bool(warnings.append(a)))
    push = changes.Push(
        tip=TIP, before=BASE, paths=tuple(f"apps/{n}/values.yaml" for n in ("a", "b", "c"))
    )
    notifier.after(body("a"), result("a", "a" * 40, BASE, push, argo.url))
    notifier.after(body("b"), result("b", "c" * 40, "a" * 40, push, argo.url, other.url))
    notifier.after(body("c"), result("c", TIP, "c" * 40, push, argo.url, other.url))
    assert len(notifier.tasks) == 2, "a for argo, b for the other URL; c has nothing left to send"
    for task in list(notifier.tasks):
        await task
    assert (argo.requests, other.requests) == (1, 1)
    (event,) = argo.received
    assert (event["before"], event["after"]) == (BASE, TIP), "the push, not a's own commit"
    assert event["commits"][0]["modified"] == list(push.paths), "every app the push changed"
    assert event["commits"][0]["message"] == "promote a", "told by the first CR to finish"
    assert other.received[0]["after"] == TIP
    # the next push (another tip) is told again
    next_push = changes.Push(tip="e" * 40, before=TIP, paths=("apps/a/values.yaml",))
    notifier.after(body("a"), result("a", "e" * 40, TIP, next_push, argo.url))
    for task in list(notifier.tasks):
        await task
    assert [e["after"] for e in argo.received] == [TIP, "e" * 40]
    assert warnings == []
    await notifier.aclose()


async def test_a_lost_answer_found_on_the_remote_notifies_once_for_its_commit(
    argos: tuple[ArgoCD, ArgoCD],
) -> None:
    argo, _ = argos
    notifier = notifying.Notifier(secrets=lambda: None, post=lambda *a: True)
    # two CRs whose earlier push was found landed: no push now, the same commit for both
    notifier.after(body("a"), result("a", TIP, BASE, None, argo.url))
    notifier.after(body("b"), result("b", TIP, BASE, None, argo.url))
    for task in list(notifier.tasks):
        await task
    assert [e["after"] for e in argo.received] == [TIP]
    await notifier.aclose()
