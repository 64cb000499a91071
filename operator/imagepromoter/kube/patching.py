"""Status writes of ImagePromotions: merge patches of the status subresource, made inside the pass.

Why not Kopf's `patch`: Kopf applies it after the handler returns, outside our per-CR lock, so a
timer pass and a change pass on one CR could land their statuses in the wrong order. So the pass
itself sends the merge patch (`status.changes`, only what differs: nothing at all when nothing
does) through Kopf's API session, while it still holds the CR's lock; Kopf's own patch carries
only its annotations. No resourceVersion precondition: the patch names only the fields this pass
changed, and the lock already orders our writes (a precondition would fail on every annotation
Kopf writes between two passes, and a lost retry would lose the commit sha it carried).

Which status a pass starts from (`base`): the cluster's, as the body shows it, is the truth.
The one exception is our own last write that the body does not show yet: `Written` remembers
the resourceVersion the body showed just before that patch and the one the patch produced, and
its status is used while the body is older than the latter. Resource versions of one resource
are comparable integers (Kubernetes 1.35, KEP-5504): a body whose version is below the one our
patch produced predates it, whichever older version it is. That matters because a change
handler's body is the snapshot of the event it handles, not the live object: a requested pass
queued behind a fan-out pass's write reads a version older than that write, and must not patch
the whole status back. Where a version is not a canonical integer (another API server), only
the version from just before our write counts as older, as before KEP-5504.

At most `IN_FLIGHT` patches are sent at once (the rest wait for a slot, still inside their CR's
turn). Kopf's API session sets no connection limit, so a wave of 1,000 passes opened about one
connection per patch, up to 800 sockets at once, and the operator's peak resident memory at
1,000 CRs (bench/scale.py, initial and changed cycles) was 147 and 149 MB; with the bound, 140
and 141 MB (one run each; the sockets left at the initial cycle's peak are Kopf's own patches).
A real API server throttles such a burst anyway (API Priority and Fairness); a few connections
kept alive carry the same writes.

A 404 (the CR was deleted meanwhile) is quiet; any other failure is `PatchFailed` (the handler
logs it and the schedule retries the pass). Kopf's request retries are off, as in secrets.py.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
import kopf
from kopf._cogs.clients import api as kopf_api
from kopf._cogs.clients import errors as kopf_errors
from kopf._cogs.structs import credentials as kopf_credentials

logger = logging.getLogger(__name__)

GROUP, VERSION, PLURAL = "imagepromoter.dev", "v1alpha1", "imagepromotions"
TIMEOUT = 30.0  # seconds for one status PATCH (it runs under the CR's lock)
IN_FLIGHT = 16  # status PATCHes sent at once (see the module docstring)


class PatchFailed(Exception):
    """The status could not be written (not a 404); the message says why, without values."""


@dataclass(frozen=True)
class Written:
    """Our last status write of one CR: what it wrote, and the versions around it."""

    status: Mapping[str, Any]
    started_from: str | None  # the body's resourceVersion just before the patch
    produced: str | None  # the resourceVersion the patch produced


def base(
    cluster: Mapping[str, Any], resource_version: str | None, written: Written | None
) -> dict[str, Any]:
    """The status a pass starts from: ours while the watch lags our write, else the body's."""
    if lagging(written, resource_version):
        assert written is not None
        return copy.deepcopy(dict(written.status))
    return copy.deepcopy(dict(cluster))


def lagging(written: Written | None, resource_version: str | None) -> bool:
    """Whether the body predates our last write (see the module docstring)."""
    if written is None or resource_version is None:
        return False
    if resource_version == written.started_from:
        return True
    older = compare_versions(resource_version, written.produced)
    return older is not None and older < 0


def compare_versions(a: str | None, b: str | None) -> int | None:
    """-1, 0 or 1 as resourceVersion `a` is below, equal to or above `b`; None: not comparable.

    Comparable means a canonical positive integer (no sign, no leading zero), as KEP-5504 says.
    """
    if not (_canonical(a) and _canonical(b)):
        return None
    assert a is not None and b is not None
    left, right = (len(a), a), (len(b), b)  # same digits, longer is larger: no int() of huge text
    return (left > right) - (left < right)


def _canonical(version: str | None) -> bool:
    if not version:
        return False
    return version.isascii() and version.isdigit() and version[0] != "0"


class StatusWriter(Protocol):
    """Writes a merge patch into one ImagePromotion's status subresource."""

    async def patch(self, namespace: str, name: str, patch: Mapping[str, Any]) -> str | None:
        """The resourceVersion after the patch; None when the CR no longer exists."""
        ...


class KopfStatus:
    """`StatusWriter` over Kopf's authenticated API session."""

    def __init__(
        self,
        settings: kopf.OperatorSettings,
        *,
        timeout: float = TIMEOUT,
        in_flight: int = IN_FLIGHT,
    ) -> None:
        self._settings = settings
        self._timeout = timeout
        self._slots = asyncio.Semaphore(in_flight)

    async def patch(self, namespace: str, name: str, patch: Mapping[str, Any]) -> str | None:
        """Merge-patch `{"status": patch}`; the new resourceVersion, None on a 404."""
        quote = urllib.parse.quote
        url = (
            f"/apis/{GROUP}/{VERSION}/namespaces/{quote(namespace, safe='')}/{PLURAL}/"
            f"{quote(name, safe='')}/status"
        )
        where = f"ImagePromotion {name} in namespace {namespace}"
        try:
            async with self._slots:
                response = await kopf_api.request(
                    "patch",
                    url,
                    settings=self._settings,
                    payload={"status": dict(patch)},
                    headers={"Content-Type": "application/merge-patch+json"},
                    timeout=aiohttp.ClientTimeout(total=self._timeout),
                    backoffs=(),
                    logger=logger,
                )
                async with response:
                    body = await response.json()
        except kopf_errors.APINotFoundError:
            return None
        except kopf_errors.APIError as exc:
            raise PatchFailed(
                f"writing the status of {where} failed with HTTP {exc.status}"
            ) from None
        except kopf_credentials.LoginError:
            raise PatchFailed(
                f"writing the status of {where}: the operator's credentials were refused"
            ) from None
        except (OSError, aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise PatchFailed(
                f"writing the status of {where}: the Kubernetes API could not be reached or "
                f"answered nonsense ({type(exc).__name__})"
            ) from None
        meta = body.get("metadata") if isinstance(body, dict) else None
        version = meta.get("resourceVersion") if isinstance(meta, dict) else None
        return str(version) if version is not None else None
