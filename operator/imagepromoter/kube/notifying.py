"""After a push: tell spec.notify's receivers, in the background, and never fail the promotion.

`Notifier.after(body, result)` is called by the pass once its status is patched. When the pass
pushed a commit and the CR has `spec.notify`, it starts one background task that reads each
entry's Secret (key `secret`), builds the notification (notify.events) and sends it
(notify.sending: retried with backoff, once per URL and commit).

One notification per push and URL (API.md): CRs batched into one push share its tip
(`WriteResult.pushed`), and the first of them to finish claims (URL, tip) for each of its notify
URLs, here, before any Secret is read; the others skip those URLs. The notification describes
the push: `after` is the tip, `before` the head it was built on, and the files are every path
the push changed (Argo CD refreshes the applications whose paths changed), with the claiming
CR's name, image, tag and message. Whatever goes wrong (a missing
Secret, an unreachable URL, a 4xx) becomes one Warning event `NotificationFailed` on the CR naming
the URL (without credentials); the pass has already ended Promoted and stays so.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from imagepromoter import reconcile
from imagepromoter.notify import events as notify_events
from imagepromoter.notify import sending

logger = logging.getLogger(__name__)

Post = Callable[[Mapping[str, Any], str, str, str], bool]
MAX_CLAIMS = 10_000  # (url, tip) pairs remembered: far more than one cycle's pushes


class Notifier:
    """Background notifications for one operator run."""

    def __init__(
        self,
        *,
        secrets: Callable[[], reconcile.SecretReader | None],
        post: Post,
        sender: Callable[[], sending.Sender] = sending.Sender,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._secrets = secrets
        self._post = post
        self._make_sender = sender
        self._sender: sending.Sender | None = None
        self._now = now
        self.tasks: set[asyncio.Task[None]] = set()
        self._claimed: OrderedDict[tuple[str, str], None] = OrderedDict()

    def after(self, body: Mapping[str, Any], result: reconcile.Result) -> None:
        """Start notifying for this pass, if it pushed a commit and the CR asks for it."""
        promotion, write = result.promotion, result.write
        if promotion is None or write is None or not write.commit or not promotion.notify:
            return
        tip = write.pushed or write.commit
        targets = [t for t in promotion.notify if self._claim(t.url, tip)]
        if not targets:  # another CR of the same push notifies these URLs
            return
        push = write.push
        paths = push.paths if push else tuple(c.path for c in write.changeset.changes)
        meta = body.get("metadata") or {}
        pushed = notify_events.Pushed(
            name=str(meta.get("name")),
            namespace=str(meta.get("namespace")),
            image=promotion.image_text,
            tag=str(result.status.get("promotedTag") or result.outcome.promoted_tag or ""),
            digest=str(result.status.get("latestDigest") or ""),
            repository=promotion.git.url,
            branch=write.branch,
            before=push.before if push else write.base,
            commit=tip,
            message=write.changeset.message,
            files=notify_events.changed_files(paths),
            author_name=promotion.git.author.name,
            author_email=promotion.git.author.email,
            timestamp=self._now().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        task = asyncio.create_task(self._notify(body, pushed, targets))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _claim(self, url: str, tip: str) -> bool:
        """True for the first caller of (url, tip): it sends; later ones skip."""
        key = (url, tip)
        if key in self._claimed:
            return False
        self._claimed[key] = None
        while len(self._claimed) > MAX_CLAIMS:
            self._claimed.popitem(last=False)
        return True

    async def aclose(self) -> None:
        """Cancel what is still being sent and close the HTTP client."""
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self._sender is not None:
            await self._sender.aclose()
            self._sender = None

    async def _notify(
        self, body: Mapping[str, Any], pushed: notify_events.Pushed, targets: Any
    ) -> None:
        if self._sender is None:
            self._sender = self._make_sender()
        for target in targets:
            problem = await self._one(pushed, target)
            if problem is not None:
                logger.warning("%s/%s: %s", pushed.namespace, pushed.name, problem)
                self._post(body, "Warning", "NotificationFailed", problem)
            else:
                logger.info("%s/%s: notified %s of %s", pushed.namespace, pushed.name,
                            target.type, pushed.commit[:7])  # fmt: skip

    async def _one(self, pushed: notify_events.Pushed, target: Any) -> str | None:
        secret: str | None = None
        if target.secret_ref:
            reader = self._secrets()
            data = await reader.read(pushed.namespace, target.secret_ref) if reader else None
            secret = (data or {}).get("secret") or None
            if secret is None:
                return (
                    f"{target.type} notification not sent: Secret {target.secret_ref} in "
                    f"namespace {pushed.namespace} is missing or has no key `secret`"
                )
        notification = notify_events.build(target.type, pushed, target.url, secret)
        assert self._sender is not None
        return await self._sender.send(notification)
