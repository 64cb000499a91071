"""Registry notifications (distribution/distribution, `docker-registry`): the event envelopes.

A registry POSTs `{"events": [...]}` with media type
`application/vnd.docker.distribution.events.v1+json` (or `v2`); one push sends an event per blob
and per manifest, and a multi-arch push one per platform manifest besides the index. Only a
`push` of a manifest that carries a `tag` announces anything: blobs, pulls, deletes and the
untagged platform manifests are skipped (the tagged index of the same push is the one that
counts), and repeats of one image and tag in an envelope fold into one Event. The image is
`request.host` (the host the pushing client addressed) + `target.repository`.
"""

from __future__ import annotations

from collections.abc import Mapping

from imagepromoter.webhooks import model

MEDIA_TYPES = (
    "application/vnd.docker.distribution.events.v1+json",
    "application/vnd.docker.distribution.events.v2+json",
    "application/json",
)


def parse(body: bytes, headers: Mapping[str, str]) -> list[model.Event] | model.Ignored:
    """An envelope into one Event per (image, tag) pushed; Ignored when none was."""
    content_type = ""
    for key, value in headers.items():
        if key.lower() == "content-type":
            content_type = value.split(";", 1)[0].strip().lower()
    if content_type and content_type not in MEDIA_TYPES:
        raise model.Malformed(
            f"content type {content_type[:80]} is not a registry notification envelope"
        )
    doc = model.mapping(model.load_json(body), "the envelope")
    events = doc.get("events")
    if not isinstance(events, list):
        raise model.Malformed("the envelope has no events list")
    found: dict[tuple[str, str], model.Event] = {}
    for item in events:
        event = model.mapping(item, "each event")
        if event.get("action") != "push":
            continue
        target = event.get("target")
        request = event.get("request")
        if not isinstance(target, Mapping) or not isinstance(request, Mapping):
            raise model.Malformed("a push event needs target and request objects")
        tag = model.tag_or_none(target.get("tag"))
        repository, host = target.get("repository"), request.get("host")
        if tag is None or not isinstance(repository, str) or not isinstance(host, str):
            continue
        image = f"{host}/{repository}"
        found.setdefault((image, tag), model.Event(image=image, tag=tag))
    if not found:
        return model.Ignored("no push of a tagged manifest")
    return list(found.values())
