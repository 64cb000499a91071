"""A small Argo CD stand-in for tests: /api/webhook as Argo CD serves it, for push events.

It checks what Argo CD checks before it refreshes anything: the X-GitHub-Event header, the
X-Hub-Signature-256 HMAC under `webhook.github.secret` (when one is set), and that the body has
the fields Argo CD's GitHub handler reads (repository.html_url, ref, before, after,
commits[].added/modified/removed). Accepted events are kept in `received`; a bad one is
answered 400 (Argo CD answers 400 to an unverifiable payload). `answer` forces a status.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from imagepromoter.webhooks import auth


@dataclass
class ArgoCD:
    secret: str | None
    received: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    requests: int = 0
    answer: int | None = None
    url: str = ""
    _runner: web.AppRunner | None = None

    async def start(self) -> ArgoCD:
        app = web.Application()
        app.router.add_post("/api/webhook", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/api/webhook"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        if self.answer is not None:
            return web.Response(status=self.answer)
        body = await request.read()
        problem = self._problem(request, body)
        if problem:
            self.rejected.append(problem)
            return web.Response(status=400, text=problem)
        self.received.append(json.loads(body))
        return web.Response(status=200, text="ok")

    def _problem(self, request: web.Request, body: bytes) -> str | None:
        if request.headers.get("X-GitHub-Event") != "push":
            return "not a push event"
        if self.secret and not auth.signed(
            body, self.secret, request.headers.get("X-Hub-Signature-256")
        ):
            return "signature mismatch"
        doc = json.loads(body)
        if not isinstance((doc.get("repository") or {}).get("html_url"), str):
            return "no repository.html_url"
        for key in ("ref", "before", "after"):
            if not isinstance(doc.get(key), str):
                return f"no {key}"
        for commit in doc.get("commits") or []:
            for key in ("added", "modified", "removed"):
                if not isinstance(commit.get(key), list):
                    return f"commit without {key}"
        return None
