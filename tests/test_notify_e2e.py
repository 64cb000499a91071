"""spec.notify end to end: the operator promotes on a dispatch and tells an Argo CD stand-in,
which checks the signature and the push event's fields; a refused notification is a Warning
event and the promotion stays Promoted."""

from __future__ import annotations

import pytest

from imagepromoter.notify import events
from tests.argocd_standin import ArgoCD
from tests.operator_harness import eventually, secret
from tests.test_webhook_e2e import Start, api, create, dev_tag, hooked  # noqa: F401

pytestmark = pytest.mark.servers


async def test_argocd_is_told_after_the_push(hooked: Start) -> None:  # noqa: F811
    argo = await ArgoCD(secret="argo-s3cret").start()
    refusing = await ArgoCD(secret=None).start()
    refusing.answer = 403
    try:
        h = await hooked()
        await create(h.running.cluster.api, secret("argocd-webhook", secret="argo-s3cret"))
        notify = [
            {"type": "argocd", "url": argo.url, "secretRef": "argocd-webhook"},
            {"type": "generic", "url": refusing.url},
        ]
        await h.cluster.patch("myapp-dev", {"spec": {"notify": notify}})
        await eventually(lambda: h.cluster.status("myapp-dev").get("observedGeneration") == 2,
                         "the spec change handled")  # fmt: skip
        assert argo.requests == 0, "no push, no notification"
        await h.push("1.1.0-dev")
        assert await h.curl("1.1.0-dev", "feature/x", "Add x") == "204"
        await eventually(lambda: argo.received, "Argo CD told")
        status = h.cluster.status("myapp-dev")
        [event] = argo.received
        assert event["after"] == status["lastCommit"] and event["ref"] == "refs/heads/main"
        assert event["before"] != event["after"] and len(event["before"]) == 40
        git_url = h.cluster.ipr("myapp-dev")["spec"]["git"]["url"]
        assert event["repository"]["html_url"] == events.web_url(git_url)
        assert event["commits"][0]["modified"] == ["environments/dev/values.yaml"]
        assert event["commits"][0]["message"].startswith("Branch feature/x led to")
        warnings = await eventually(
            lambda: [e for e in h.cluster.events("myapp-dev") if e["type"] == "Warning"],
            "the refused notification's Warning",
        )
        assert [e["reason"] for e in warnings] == ["NotificationFailed"]
        assert "HTTP 403" in warnings[0]["message"]
        assert h.cluster.ready("myapp-dev")["reason"] == "Promoted"
        assert dev_tag(h) == "1.1.0-dev" and argo.rejected == []
    finally:
        await argo.stop()
        await refusing.stop()
