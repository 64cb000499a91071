"""Which ImagePromotions name which image: the operator's index, image -> CRs and their intervals.

Images are scanned, not CRs. To scan each image once per the shortest interval among its CRs,
and to tell every CR of an image when a scan found something new, the operator needs the set of
CRs per image; the watch keeps it current (kube/passes.py: ADDED and MODIFIED update a CR,
DELETED removes it). An image is (host, repository) as `reference.parse` normalises it, so
`docker.io/nginx` and `nginx` are one image; transport and credentials are not part of it (they
are part of the scan cache's key, scans.py, not of "which CRs care about this image").

A spec that does not parse (no image, a bad one) leaves the CR out: its pass reports InvalidSpec,
and it has no image to be told about. A suspended CR is left out too: it does not scan, so its
interval must not make the others scan sooner, and a poke would do nothing for it. A malformed
interval counts as the default, as the pass's own schedule does. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from imagepromoter import errors, reference, spec

ImageKey = tuple[str, str]  # (host, repository)


def image_key(spec_dict: Mapping[str, Any]) -> ImageKey | None:
    """The image a spec names, normalised; None when it names none that parses."""
    text = spec_dict.get("image")
    if not isinstance(text, str):
        return None
    try:
        image = reference.parse(text)
    except errors.InvalidSpec:
        return None
    return (image.host, image.repository)


def interval_of(spec_dict: Mapping[str, Any]) -> timedelta:
    """The spec's interval, or the default when it is absent or malformed (the pass reports it)."""
    text = spec_dict.get("interval")
    parsed = spec.parse_interval(text) if isinstance(text, str) else None
    return parsed if parsed is not None and parsed > timedelta(0) else spec.DEFAULT_INTERVAL


class ImageIndex:
    """image -> {CR uid: interval}, with the shortest interval per image kept up to date."""

    def __init__(self) -> None:
        self._members: dict[ImageKey, dict[str, timedelta]] = {}
        self._image_of: dict[str, ImageKey] = {}
        self._shortest: dict[ImageKey, timedelta] = {}

    def update(self, uid: str, spec_dict: Mapping[str, Any]) -> None:
        """Record a CR's current spec (a new image moves it; a bad or suspended one drops it)."""
        key = image_key(spec_dict)
        if key is None or spec_dict.get("suspend") is True:
            self.remove(uid)
            return
        old = self._image_of.get(uid)
        if old is not None and old != key:
            self.remove(uid)
        self._image_of[uid] = key
        members = self._members.setdefault(key, {})
        members[uid] = interval_of(spec_dict)
        self._shortest[key] = min(members.values())

    def remove(self, uid: str) -> None:
        """Forget a CR (deleted, or no longer naming a scannable image)."""
        key = self._image_of.pop(uid, None)
        if key is None:
            return
        members = self._members[key]
        del members[uid]
        if members:
            self._shortest[key] = min(members.values())
        else:
            del self._members[key], self._shortest[key]

    def min_interval(self, key: ImageKey) -> timedelta | None:
        """The shortest interval among the CRs naming `key` (None: no CR names it)."""
        return self._shortest.get(key)

    def members(self, key: ImageKey) -> frozenset[str]:
        """The uids of the CRs naming `key`."""
        return frozenset(self._members.get(key, ()))

    def image_of(self, uid: str) -> ImageKey | None:
        """The image a CR names, as last recorded."""
        return self._image_of.get(uid)

    def __len__(self) -> int:
        return len(self._image_of)
