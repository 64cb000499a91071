"""The generic sender: `{"image": ..., "tag": ..., ...}`, signed `X-Signature: sha256=<hex>`.

For any CI that can compute an HMAC. `image` names `spec.image`; `tag` is optional (without it
the image's CRs do a fresh pass); every other top-level string field (at most 10 keys in all)
becomes a template variable when the pass promotes that tag.
"""

from __future__ import annotations

from imagepromoter.webhooks import model


def parse(body: bytes) -> list[model.Event]:
    """A generic event into its one Event."""
    doc = model.mapping(model.load_json(body), "the body")
    fields = model.checked_fields(doc)
    image = doc.get("image")
    if not isinstance(image, str) or not image.strip():
        raise model.Malformed("image is required (the host/repository that was pushed)")
    raw_tag = doc.get("tag")
    tag = model.tag_or_none(raw_tag)
    if raw_tag is not None and tag is None:
        raise model.Malformed("tag is not an image tag ([A-Za-z0-9_][A-Za-z0-9._-]{0,127})")
    extra = {k: v for k, v in fields.items() if k not in ("image", "tag")}
    return [model.Event(image=image.strip(), tag=tag, fields=extra)]
