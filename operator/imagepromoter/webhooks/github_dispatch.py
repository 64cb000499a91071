"""GitHub's `repository_dispatch` API, served as GitHub serves it, so a CI step changes host only.

The seed's CI runs `curl -X POST .../repos/{owner}/{repo}/dispatches -H "Authorization: Bearer
$TOKEN" --data '{"event_type": "...", "client_payload": {...}}'` and expects 204. The body rules
are GitHub's: `event_type` is a required non-empty string (at most 100 characters), and
`client_payload` an optional object of at most 10 top-level keys. Its string fields become the
template variables of the pass (`git_branch`, `commit_message`, ...); the announced tag is
`docker_image_tag` (the seed's name) or `tag`, and `image`, when given, must name `spec.image`.
"""

from __future__ import annotations

from imagepromoter.webhooks import model

TAG_KEYS = ("docker_image_tag", "tag")
_MAX_EVENT_TYPE = 100


def parse(body: bytes, *, owner: str, repo: str) -> model.Event:
    """One dispatch request into its Event; raise Malformed as GitHub would answer 422."""
    doc = model.mapping(model.load_json(body), "the body")
    event_type = doc.get("event_type")
    if not isinstance(event_type, str) or not event_type.strip():
        raise model.Malformed("event_type is required and must be a non-empty string")
    if len(event_type) > _MAX_EVENT_TYPE:
        raise model.Malformed(f"event_type is longer than {_MAX_EVENT_TYPE} characters")
    payload = doc.get("client_payload")
    fields = model.checked_fields(payload if payload is not None else {})
    tag: str | None = None
    for key in TAG_KEYS:
        if key in fields:
            tag = model.tag_or_none(fields[key])
            if tag is None:
                raise model.Malformed(  # the value is not echoed: payloads stay out of logs
                    f"client_payload.{key} is not an image tag "
                    "([A-Za-z0-9_][A-Za-z0-9._-]{0,127})"
                )
            break
    image = fields.get("image")
    return model.Event(
        image=image.strip() if image else None,
        tag=tag,
        fields=fields,
        repository=f"{owner}/{repo}",
        event_type=event_type,
    )
