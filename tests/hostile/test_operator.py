"""In the operator: a registry echoing our credentials leaves them in no status, event, log, metric.

The seed's two CRs run next to a third whose image is served through a fault proxy that answers
every tag list with a 403 whose body repeats the registry password, its Basic header and a
URL-quoted copy. The good CRs are promoted; the hostile one is AuthError; and no status, event,
log record (at DEBUG) or metric sample holds the registry or git password in any form.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import prometheus_client
import pytest

from tests.hostile import _support
from tests.operator_harness import eventually, reason_is, secret
from tests.servers import registry
from tests.test_operator_e2e import Seed, apply_seed, seed, seed_cr  # noqa: F401  (fixture)

pytestmark = pytest.mark.servers


async def test_a_hostile_registry_echo_leaves_no_trace_in_the_operator(
    seed: Seed,  # noqa: F811
    fault_proxy: Callable[..., registry.FaultProxy],
    git_http_server: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("DEBUG")
    reg = seed.registry
    user, password = reg.username, reg.password
    proxy = fault_proxy(reg.url)
    basic = base64.b64encode(f"{user}:{password}".encode()).decode()
    echo = f"{'x' * 136}{password} Basic {basic} {quote(password, safe='')}"
    body = json.dumps({"errors": [{"code": "DENIED", "message": echo}]}).encode()
    proxy.add("status", path=r"/tags/list", status=403, body=body, times=999)
    cluster = seed.running.cluster
    auths = {proxy.host: {"username": user, "password": password}}
    await cluster.apply(
        secret("hostile-pull", **{".dockerconfigjson": json.dumps({"auths": auths})})
    )
    hostile = seed_cr("dev", seed, image=f"{proxy.host}/{seed.repository}")
    hostile["metadata"]["name"] = "hostile"
    hostile["spec"]["imagePullSecret"] = "hostile-pull"
    await cluster.apply(hostile)
    await apply_seed(seed)
    await eventually(reason_is(cluster, "hostile", "AuthError"), "hostile AuthError")
    assert proxy.seen("/tags/list")
    events = await eventually(lambda: cluster.events("hostile"), "an event for hostile")
    texts = [
        json.dumps([cluster.status(n) for n in ("hostile", "myapp-dev", "myapp-prod")]),
        json.dumps([cluster.events(n) for n in ("hostile", "myapp-dev", "myapp-prod")]),
        json.dumps(events),
        caplog.text,
        prometheus_client.generate_latest(seed.running.metrics.registry).decode(),
    ]
    known = [(user, password), (git_http_server.username, git_http_server.password)]
    assert _support.leaks(texts, known) == []
    assert "DENIED" in cluster.ready("hostile")["message"]
