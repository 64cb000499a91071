"""The operator under test: Kopf with our handlers against the kmock API emulator.

One place for what every operator end-to-end test needs: the emulator fixture (`api`, loaded as a
plugin by tests/conftest.py, so modules use it without importing it), kubectl's
verbs on it (`Cluster`), starting `handlers.operate(...)` in its own thread and loop and stopping
it (`start_operator`, `stop_operator`), the credentials Secrets for the real registry and git
server (`credentials`), and waiting as "until a condition holds, or fail after a timeout"
(`eventually`), never a fixed sleep. The tests (tests/test_*operator*.py, test_idle_e2e,
test_scan_sharing_e2e, test_webhook_e2e, tests/hostile) differ only in adapters, clock, options
and selector, which are the arguments here.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import kmock
import kopf
import prometheus_client
import pytest
import yaml
from kopf._cogs.clients import auth
from kopf._cogs.structs import credentials as kopf_credentials

from imagepromoter import shards
from imagepromoter.kube import handlers, metrics
from tests.kmock_emulator import Emulator

ROOT = Path(__file__).resolve().parent.parent
CRD = yaml.safe_load((ROOT / "crds" / "imagepromotion.yaml").read_text())
IPR = kmock.resource("imagepromoter.dev", "v1alpha1", "imagepromotions")
EVENTS = kmock.resource("", "v1", "events")
SECRETS = kmock.resource("", "v1", "secrets")
NS = "gitops"
TIMEOUT = 20.0
VALUES = "image:\n  repository: ghcr.io/myorg/myapp\n  tag: {tag}  # managed by imagepromoter\n"


@dataclass
class Cluster:
    """The emulator, and helpers to act on it as kubectl would."""

    api: Emulator

    async def apply(self, doc: dict[str, Any]) -> dict[str, Any]:
        meta = doc["metadata"]
        ns = meta.get("namespace", NS)
        plural = "secrets" if doc["kind"] == "Secret" else "imagepromotions"
        prefix = "/api/v1" if doc["kind"] == "Secret" else "/apis/imagepromoter.dev/v1alpha1"
        resp = await self.api.post(f"{prefix}/namespaces/{ns}/{plural}", json=doc)
        assert resp.status in (200, 201), await resp.text()
        return dict(await resp.json())

    async def patch(self, name: str, body: dict[str, Any], ns: str = NS) -> None:
        resp = await self.api.patch(
            f"/apis/imagepromoter.dev/v1alpha1/namespaces/{ns}/imagepromotions/{name}",
            json=body,
            headers={"Content-Type": "application/merge-patch+json"},
        )
        assert resp.status == 200, await resp.text()

    async def delete(self, name: str, ns: str = NS) -> None:
        resp = await self.api.delete(
            f"/apis/imagepromoter.dev/v1alpha1/namespaces/{ns}/imagepromotions/{name}"
        )
        assert resp.status == 200, await resp.text()

    def ipr(self, name: str, ns: str = NS) -> dict[str, Any] | None:
        return self.api.read_object(IPR, ns, name)

    def status(self, name: str, ns: str = NS) -> dict[str, Any]:
        obj = self.ipr(name, ns) or {}
        return dict(obj.get("status") or {})

    def ready(self, name: str, ns: str = NS) -> dict[str, Any]:
        for condition in self.status(name, ns).get("conditions") or []:
            if condition.get("type") == "Ready":
                return dict(condition)
        return {}

    def events(self, name: str, ns: str = NS) -> list[dict[str, Any]]:
        return [
            e
            for e in self.api.list_objects(EVENTS, ns)
            if (e.get("involvedObject") or {}).get("name") == name
        ]


async def eventually(check: Callable[[], Any], what: str, timeout: float = TIMEOUT) -> Any:
    """Poll `check` until it returns something truthy; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def handled(running: Running, name: str, requested: str) -> bool:
    """Whether the operator answered this requested-at value of the CR (a pass, or its last)."""
    uid = ((running.cluster.ipr(name) or {}).get("metadata") or {}).get("uid")
    return uid is not None and running.state().requests.last_answered(uid) == requested


def reason_is(cluster: Cluster, name: str, reason: str) -> Callable[[], bool]:
    return lambda: cluster.ready(name).get("reason") == reason


@dataclass
class Running:
    cluster: Cluster
    metrics: metrics.Metrics
    stop: threading.Event
    thread: threading.Thread
    errors: list[BaseException]
    states: list[handlers.Operator]

    def state(self) -> handlers.Operator:
        """The running operator's state (handed out by `operate(observe=...)`)."""
        return self.states[0]


async def start_operator(
    api: Emulator,
    adapters: handlers.Adapters,
    *,
    options: handlers.Options | None = None,
    metrics_: metrics.Metrics | None = None,
    liveness: str | None = None,
    now: Callable[[], datetime] | None = None,
    selector: shards.Selector | None = None,
    token: str | None = None,
    name: str = "operator",
) -> Running:
    """Start the operator against the emulator in its own thread and loop; return once ready.

    Its own loop, because Kopf cancels every task that appeared in its loop after it started
    when it stops (the emulator's request handlers and pytest's fixture teardown included).
    `token` is the bearer token it logs in with (the emulator's history records it).
    """
    server = str(api.servers[0].url).rstrip("/")
    stop, ready = threading.Event(), threading.Event()
    registry = metrics_ or metrics.Metrics(prometheus_client.CollectorRegistry())
    errors: list[BaseException] = []
    states: list[handlers.Operator] = []

    def run() -> None:
        try:
            asyncio.run(
                handlers.operate(
                    adapters,
                    options=options
                    or handlers.Options(tick=0.1, base_backoff=timedelta(seconds=0.2)),
                    connection=kopf.ConnectionInfo(server=server, token=token),
                    metrics_=registry,
                    now=now,
                    liveness=liveness,
                    selector=selector,
                    stop_flag=stop,
                    ready_flag=ready,
                    observe=states.append,
                )
            )
        except BaseException as exc:  # reported by stop_operator
            errors.append(exc)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    if not await asyncio.to_thread(ready.wait, TIMEOUT):
        stop.set()
        await asyncio.to_thread(thread.join, TIMEOUT)
        pytest.fail(f"{name} did not get ready: {errors}")
    return Running(
        cluster=Cluster(api),
        metrics=registry,
        stop=stop,
        thread=thread,
        errors=errors,
        states=states,
    )


async def stop_operator(running: Running) -> None:
    running.stop.set()
    await asyncio.to_thread(running.thread.join, TIMEOUT)
    assert not running.thread.is_alive(), "the operator did not stop"
    assert running.errors == []


@contextlib.asynccontextmanager
async def emulated(*crds: dict[str, Any], vault: bool = False) -> AsyncIterator[Emulator]:
    """The emulator serving `crds` over HTTP; with `vault`, Kopf's API client logged in to it
    (as the operator's login would), for code that calls Kopf's client without its reactor."""
    async with Emulator() as emulator, kmock.Server(emulator) as server:
        emulator.resources.load_bundled()
        for crd in crds:
            emulator.register_crd(crd)
        if not vault:
            yield emulator
            return
        logins = kopf_credentials.Vault()
        await logins.populate({"emulator": kopf.ConnectionInfo(server=str(server.url).rstrip("/"))})
        token = auth.vault_var.set(logins)
        try:
            yield emulator
        finally:
            auth.vault_var.reset(token)
            await logins.close()


@pytest.fixture
async def api() -> AsyncIterator[Emulator]:
    """The emulator with the ImagePromotion CRD (a plugin of tests/conftest.py: every module)."""
    async with emulated(CRD) as emulator:
        yield emulator


def promotion(name: str, **spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "image": "127.0.0.1:5000/myorg/myapp",
        "tagRegex": r"^(?P<version>\d+\.\d+\.\d+)-dev$",
        "interval": "1m",
        "git": {"url": "http://127.0.0.1:1/gitops.git", "branch": "main"},
        "targets": [{"path": "environments/dev/values.yaml", "key": "image.tag"}],
    }
    base.update(spec)
    return {
        "apiVersion": "imagepromoter.dev/v1alpha1",
        "kind": "ImagePromotion",
        "metadata": {"name": name, "namespace": NS},
        "spec": base,
    }


def secret(name: str, **data: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": NS},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


async def credentials(
    cluster: Cluster, git_server: Any, registry: Any | None = None, *, pull: str = "ghcr-pull"
) -> None:
    """Secret `gitops-write` (git Basic auth) and, given a registry, the pull Secret `pull`."""
    await cluster.apply(
        secret("gitops-write", username=git_server.username, password=git_server.password)
    )
    if registry is not None:
        auths = {registry.host: {"username": registry.username, "password": registry.password}}
        await cluster.apply(secret(pull, **{".dockerconfigjson": json.dumps({"auths": auths})}))
