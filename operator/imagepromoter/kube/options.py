"""What the operator is configured with: the adapters cli.py builds, and the run's options.

kube/ may not import registry/ or git/ (import-linter), so `Adapters` carries them in from cli.py;
`Options` is the behaviour no CR states (tick, backoff, deadlines, the batch window, the webhook
receiver). Apart from kube/handlers.py and kube/passes.py, so both, and the tests, name them
from one place.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from imagepromoter import reconcile
from imagepromoter.kube import events, secrets

GROUP, VERSION, PLURAL = "imagepromoter.dev", "v1alpha1", "imagepromotions"
REQUESTED_AT = "imagepromoter.dev/requested-at"
KOPF_PREFIX = "kopf.imagepromoter.dev"


@dataclass(frozen=True)
class Adapters:
    """The real adapters, built by cli.py (kube/ may not import them)."""

    registry_factory: Callable[[], reconcile.RegistryReader]  # called inside the operator's loop
    git: reconcile.GitWriter
    history: reconcile.GitHistory | None = None  # for Held messages (git/history.py)


@dataclass(frozen=True)
class Options:
    """Operator behaviour that is not in any CR."""

    tick: float = 10.0  # seconds between timer checks; the per-CR interval is checked on each
    base_backoff: timedelta = timedelta(seconds=10)  # first retry after a temporary failure
    event_window: timedelta = events.DEFAULT_WINDOW  # an identical event is not re-posted within
    dry_run: bool = False
    webhook_port: int | None = None  # serve ImageWebhooks here (None: no receiver)
    webhook_host: str = "0.0.0.0"  # noqa: S104 - a pod's port
    webhook_ssl: ssl.SSLContext | None = None  # TLS from a mounted Secret; None: plain HTTP
    webhook_namespaces: tuple[str, ...] = ()  # ImageWebhooks read only here (default all)
    pass_deadline: float | None = reconcile.DEFAULT_DEADLINE  # seconds per pass (network phases)
    blocked_after: float = 10.0  # /healthz: the event loop silent this long is unhealthy
    start_after: float = 300.0  # /healthz: a due pass not started after this long is unhealthy
    heartbeat: float = 1.0  # seconds between the event loop's heartbeats
    secret_max_age: float = secrets.DEFAULT_MAX_AGE  # a Secret read serves passes this long
    # seconds writes into one repository and branch are gathered into one push; `imagepromoter
    # run` defaults to 2s (--batch-window), here 0: only what is waiting (embedding, tests)
    batch_window: float = 0.0

    def __post_init__(self) -> None:
        if self.batch_window < 0:
            raise ValueError(f"the batch window must not be negative (got {self.batch_window:g}s)")
        if self.pass_deadline is not None and self.start_after <= self.pass_deadline:
            raise ValueError(
                f"start_after ({self.start_after:g}s) must exceed the pass deadline "
                f"({self.pass_deadline:g}s): a pass may wait that long behind an earlier one"
            )
