"""The Kubernetes API of bench/scale.py's operator runs: tests/kmock_emulator.py, own process.

Its own process, so that its CPU time is measured apart from the operator's and from the bench's
(the emulator is slower than a real API server: its share must be shown, not mixed in). It serves
HTTP on a free port of 127.0.0.1 and takes commands as JSON lines on stdin, one JSON line back
on stdout each: the bench creates, annotates and reads ImagePromotions through these commands,
never through the API, so every request the emulator counts was made by the operator.

Commands: {"op": "create", "docs": [...]}, {"op": "annotate", "names": [...], "key", "value"},
{"op": "statuses", "tag": T} (how many CRs are Ready with promotedTag T), {"op": "counts"}
(operator requests by "METHOD plural/subresource", the monotonic time of its last write, and the
wall time of each Secret read),
{"op": "stop"}. The first line it prints is {"url": ...}; it stops at end of input or SIGTERM.

Run: python bench/scale_emulator.py
"""

from __future__ import annotations

import asyncio
import collections
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

import attrs
import kmock
import yaml
from kmock._internal import rendering

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.kmock_emulator import Emulator

ROOT = Path(__file__).resolve().parent.parent
IPR = kmock.resource("imagepromoter.dev", "v1alpha1", "imagepromotions")
PREFIX = "/apis/imagepromoter.dev/v1alpha1/namespaces"


@attrs.define(kw_only=True)
class CountingEmulator(Emulator):
    """The project's emulator, counting only the requests of clients other than its own."""

    operator_counts: collections.Counter[str] = attrs.field(factory=collections.Counter, init=False)
    last_write: float = attrs.field(default=0.0, init=False)
    secret_reads: list[float] = attrs.field(factory=list, init=False)  # time.time() of each

    def _retire(self, request: rendering.Request) -> None:
        super()._retire(request)
        if str(request.headers.get("User-Agent", "")).startswith("kmock/"):
            return  # the bench's own command, sent through kmock's client
        method = str(getattr(request.method, "value", request.method)).upper()
        plural = request.resource.plural if request.resource is not None else "-"
        sub = f"/{request.subresource}" if request.subresource else ""
        watch = request.action == kmock.action.WATCH
        self.operator_counts[f"{'WATCH' if watch else method} {plural}{sub}"] += 1
        if method == "GET" and plural == "secrets":
            self.secret_reads.append(time.time())
        if method in {"POST", "PATCH", "PUT", "DELETE"}:
            self.last_write = time.monotonic()


def ready_with(obj: dict[str, Any], tag: str) -> bool:
    status = obj.get("status") or {}
    ready = [c for c in status.get("conditions") or [] if c.get("type") == "Ready"]
    return status.get("promotedTag") == tag and bool(ready) and ready[0].get("status") == "True"


async def command(api: CountingEmulator, line: str) -> dict[str, Any]:
    """Do one command; its JSON answer."""
    request = json.loads(line)
    op = request["op"]
    if op == "create":
        failed = 0
        for start in range(0, len(request["docs"]), 50):
            batch = request["docs"][start : start + 50]
            answers = await asyncio.gather(*(create(api, doc) for doc in batch))
            failed += sum(not ok for ok in answers)
        return {"created": len(request["docs"]) - failed, "failed": failed}
    if op == "annotate":
        failed = 0
        body = {"metadata": {"annotations": {request["key"]: request["value"]}}}
        names = request["names"]
        for start in range(0, len(names), 50):
            batch = names[start : start + 50]
            ns = request["namespace"]
            answers = await asyncio.gather(*(patch(api, ns, name, body) for name in batch))
            failed += sum(not ok for ok in answers)
        return {"annotated": len(names) - failed, "failed": failed}
    if op == "statuses":
        objs = api.list_objects(IPR)
        reasons = collections.Counter(
            next(
                (c.get("reason", "") for c in (o.get("status") or {}).get("conditions") or []
                 if c.get("type") == "Ready"),
                "none",
            )
            for o in objs
        )  # fmt: skip
        done = sum(ready_with(o, request["tag"]) for o in objs)
        return {"total": len(objs), "done": done, "reasons": dict(reasons)}
    if op == "counts":
        return {
            "counts": dict(api.operator_counts),
            "idle_s": time.monotonic() - api.last_write,
            "secret_reads": list(api.secret_reads),
        }
    return {"error": f"unknown op {op!r}"}


async def create(api: CountingEmulator, doc: dict[str, Any]) -> bool:
    ns = doc["metadata"]["namespace"]
    if doc["kind"] == "Secret":
        url = f"/api/v1/namespaces/{ns}/secrets"
    else:
        url = f"{PREFIX}/{ns}/imagepromotions"
    resp = await api.post(url, json=doc)
    return resp.status in (200, 201)


async def patch(api: CountingEmulator, ns: str, name: str, body: dict[str, Any]) -> bool:
    resp = await api.patch(
        f"{PREFIX}/{ns}/imagepromotions/{name}",
        json=body,
        headers={"Content-Type": "application/merge-patch+json"},
    )
    return resp.status == 200


async def serve() -> None:
    crd = yaml.safe_load((ROOT / "crds" / "imagepromotion.yaml").read_text())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with CountingEmulator(keep_requests=100) as api, kmock.Server(api) as server:
        api.resources.load_bundled()
        api.register_crd(crd)
        print(json.dumps({"url": str(server.url).rstrip("/")}), flush=True)
        reader = asyncio.StreamReader(limit=1 << 26)  # a command carries up to 1,000 CRs
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while not stop.is_set():
            reading = asyncio.ensure_future(reader.readline())
            stopping = asyncio.ensure_future(stop.wait())
            await asyncio.wait({reading, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if not reading.done():
                reading.cancel()
                break
            line = reading.result().decode()
            if not line or json.loads(line)["op"] == "stop":
                break
            print(json.dumps(await command(api, line)), flush=True)


if __name__ == "__main__":
    asyncio.run(serve())
