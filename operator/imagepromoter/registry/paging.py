"""The tag list: `tags/list` pages followed by `Link`, bounded however the registry behaves.

`GET /v2/<name>/tags/list?n=1000`, then `Link: <...>; rel="next"` (relative or absolute, same
host only) to the end. Order is never assumed; duplicates are dropped; a registry that answers
400 to our `n` (Quay above 100) is asked again without it, and that is remembered per host.

A registry or proxy can link for ever, so every scan is bounded, and each bound names itself in
its error: at most `max_pages` pages and `max_tags` tags, within the call's deadline (checked
before every page, and by the transport before every attempt and wait). Two loops are caught at
once rather than at a cap: a `Link` to a URL already read, and a page that adds no new tag but
links on (an empty page pointing at a fresh URL each time is the common one).
"""

from __future__ import annotations

import re

from imagepromoter import bounded
from imagepromoter.registry import messages
from imagepromoter.registry.messages import Call
from imagepromoter.registry.session import Session
from imagepromoter.registry.transport import GZIP, Reply

DEFAULT_PAGE_SIZE = 1000
DEFAULT_MAX_TAGS = 100_000
DEFAULT_MAX_PAGES = 1000

_LINK = re.compile(r"<([^>]*)>\s*((?:;\s*[^;,]+)*)")


class Pager:
    """Lists tags through a Session; remembers which hosts refuse our page size."""

    def __init__(
        self,
        session: Session,
        *,
        page_size: int = DEFAULT_PAGE_SIZE,
        max_tags: int = DEFAULT_MAX_TAGS,
        max_pages: int = DEFAULT_MAX_PAGES,
    ) -> None:
        self.session = session
        self.page_size = page_size
        self.max_tags = max_tags
        self.max_pages = max_pages
        self._rejects_page_size: set[str] = set()

    async def list_tags(self, call: Call) -> list[str]:
        """Every tag of the repository, de-duplicated, in the order the registry gave them."""
        path = f"/v2/{call.repository}/tags/list"
        sized = call.host not in self._rejects_page_size
        url = f"{path}?n={self.page_size}" if sized else path
        seen: set[str] = set()
        tags: list[str] = []
        visited: set[str] = set()
        pages = 0
        while True:
            if call.deadline.expired():
                raise messages.past_deadline(call, f"{pages} pages, {len(tags)} tags so far")
            if pages >= self.max_pages:
                raise messages.too_many_pages(call, self.max_pages, len(tags))
            visited.add(url)
            reply = await self.session.get(
                call, "GET", url, accept="application/json", encoding=GZIP
            )
            if pages == 0 and sized and reply.status == 400:
                self._rejects_page_size.add(call.host)
                url, sized = path, False
                continue
            pages += 1
            self.session.expect(call, reply, "the tag list")
            new = 0
            for tag in _tag_page(call, reply):
                if tag not in seen:
                    seen.add(tag)
                    tags.append(tag)
                    new += 1
            if len(tags) > self.max_tags:
                raise messages.too_many_tags(call, self.max_tags)
            following = _next_link(call, reply)
            if following is None:
                return tags
            if following in visited:
                raise messages.paging_loop(call, len(tags), "the Link repeats a page already read")
            if not new:
                raise messages.paging_loop(
                    call, len(tags), "a page with no new tag still links to another"
                )
            url = following


def _tag_page(call: Call, reply: Reply) -> list[str]:
    try:
        doc = bounded.loads_json(reply.body)
    except bounded.LimitError as exc:
        raise messages.sent(
            call, f"a tag list for {call.repository} beyond a limit: {exc}"
        ) from None
    except ValueError:
        raise messages.invalid_json(call, "the tag list") from None
    tags = doc.get("tags", ()) if isinstance(doc, dict) else ()
    if tags is None:  # distribution says null for a repository with no tags left
        return []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise messages.sent(
            call,
            f"a tag list for {call.repository} without a `tags` list of strings; the registry "
            "(or a proxy in front of it) is not an OCI registry",
        )
    return tags


def _next_link(call: Call, reply: Reply) -> str | None:
    for header in reply.headers.get_list("link"):
        for match in _LINK.finditer(header):
            params = match.group(2).lower().replace(" ", "")
            if 'rel="next"' not in params and "rel=next" not in params:
                continue
            target = reply.url.join(match.group(1))
            if target.netloc != reply.url.netloc:
                raise messages.foreign_link(call, target.host)
            return target.raw_path.decode("ascii")
    return None
