"""Prometheus metrics for the operator, served on their own HTTP port.

    imagepromoter_scans_total                            passes that read the registry
    imagepromoter_promotions_total                       passes that pushed a commit
    imagepromoter_failures_total{reason}                 passes ending Ready=False (not Suspended)
    imagepromoter_registry_requests_total{host,status}   every HTTP response (or "error") from a
                                                         registry, reported by the registry client
                                                         through `on_request(host, status)`
    imagepromoter_manual_triggers_total{result}          new requested-at values: result="passed"
                                                         (a pass ran) or "answered" (the CR's
                                                         last pass had already answered it)
    imagepromoter_scan_duration_seconds                  pass start until the tag is chosen
    imagepromoter_promotion_duration_seconds             the git write (clone/fetch, commit, push)

Labels are bounded: reasons are the fixed list in errors.REASONS, hosts are the registries the CRs
name, statuses are HTTP codes. No CR name is a label, so the series count does not grow with CRs.

`METRICS` is the process-wide instance on prometheus_client's default registry (what `run`
serves); tests build their own `Metrics(CollectorRegistry())`.
"""

from __future__ import annotations

import prometheus_client

from imagepromoter import status as status_module

_DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class Metrics:
    """The operator's counters and histograms."""

    def __init__(self, registry: prometheus_client.CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else prometheus_client.REGISTRY
        r = self.registry
        self.scans = prometheus_client.Counter(
            "imagepromoter_scans", "Passes that read the registry", registry=r
        )
        self.promotions = prometheus_client.Counter(
            "imagepromoter_promotions", "Passes that pushed a commit", registry=r
        )
        self.failures = prometheus_client.Counter(
            "imagepromoter_failures", "Passes that ended Ready=False", ["reason"], registry=r
        )
        self.registry_requests = prometheus_client.Counter(
            "imagepromoter_registry_requests",
            "HTTP responses from registries",
            ["host", "status"],
            registry=r,
        )
        self.manual_triggers = prometheus_client.Counter(
            "imagepromoter_manual_triggers",
            "New requested-at values: a pass ran, or the last pass had answered it",
            ["result"],
            registry=r,
        )
        self.scan_seconds = prometheus_client.Histogram(
            "imagepromoter_scan_duration_seconds",
            "Time from the start of a pass until the tag is chosen",
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.promotion_seconds = prometheus_client.Histogram(
            "imagepromoter_promotion_duration_seconds",
            "Time spent writing to git (fetch, commit, push)",
            buckets=_DURATION_BUCKETS,
            registry=r,
        )

    def on_request(self, host: str, status: int | str | None) -> None:
        """Count one registry response; None (no response: timeout, refused) counts as "error"."""
        label = "error" if status is None else str(status)
        self.registry_requests.labels(host=host, status=label).inc()

    def record(
        self,
        outcome: status_module.Outcome,
        *,
        scan_seconds: float | None,
        promotion_seconds: float | None,
    ) -> None:
        """Count one finished pass."""
        if outcome.scan_time is not None:
            self.scans.inc()
        if scan_seconds is not None:
            self.scan_seconds.observe(scan_seconds)
        if outcome.reason in ("Promoted", "Pinned") and outcome.commit:  # a pin rollback too
            self.promotions.inc()
            if promotion_seconds is not None:
                self.promotion_seconds.observe(promotion_seconds)
        if not outcome.ready and outcome.reason != "Suspended":
            self.failures.labels(reason=outcome.reason).inc()

    def serve(self, port: int, addr: str = "0.0.0.0") -> None:  # noqa: S104 - a pod's port
        """Serve /metrics on a background thread."""
        prometheus_client.start_http_server(port, addr=addr, registry=self.registry)


METRICS = Metrics()


def on_request(host: str, status: int | str | None) -> None:
    """Count one registry response on the process-wide metrics (pass to the registry client)."""
    METRICS.on_request(host, status)
