"""What is sent after a push: Argo CD's GitHub-style push event, or the generic promotion event.

Pure. `argocd` is shaped like the GitHub push events Argo CD's own webhook tests post
(util/webhook/testdata/github-commit-event.json): Argo CD reads `repository.html_url` (matched
against each Application's repoURL, so it is the git URL as a web URL: scheme https for ssh and
scp-like URLs, no credentials, no `.git`), `ref` (refs/heads/<branch>), `before`, `after`, and
the paths in `commits[].added/modified/removed` (to refresh only the apps whose paths changed),
plus `repository.default_branch`. It is signed `X-Hub-Signature-256` with the Secret key
`secret` (Argo CD's `webhook.github.secret`). `generic` is `{name, namespace, image, tag, digest,
commit, repository, branch, files}` signed `X-Signature: sha256=<hex>`.

One notification per push and URL: `key` is (url, commit), and for CRs batched into one push
`commit` is the push's tip (kube/notifying.py), so they notify once.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from imagepromoter.webhooks import auth


@dataclass(frozen=True)
class Pushed:
    """One push that promoted something: what a notification describes."""

    name: str
    namespace: str
    image: str
    tag: str
    digest: str
    repository: str  # spec.git.url
    branch: str
    before: str
    commit: str
    message: str
    files: tuple[str, ...]
    author_name: str
    author_email: str
    timestamp: str  # RFC 3339


@dataclass(frozen=True)
class Notification:
    """A request to make: where, the body and its headers (signature included)."""

    type: str
    url: str
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str]:
        """(url, delivery id): the same push to the same URL is sent once."""
        return (self.url, self.headers.get("X-Imagepromoter-Commit", ""))


def web_url(git_url: str) -> str:
    """The repository's web URL as GitHub's html_url spells it (no credentials, no .git)."""
    text = git_url.strip()
    scp = re.match(r"[^@/:\s]+@([^@/:\s]+):(.+)\Z", text)
    if scp and "://" not in text:
        host, path = scp.groups()
        scheme = "https"
    else:
        match = re.match(r"([A-Za-z][A-Za-z0-9+.-]*)://(?:[^@/]*@)?([^/]+)(/.*)?\Z", text)
        if not match:
            return text
        scheme, host, path = match.groups()
        scheme = "http" if scheme.lower() == "http" else "https"
        if scheme == "https" and match.group(1).lower() == "ssh":
            host = host.split(":", 1)[0]  # an ssh port is not the web port
        path = path or ""
    path = path.strip("/")
    if path.endswith(".git"):
        path = path[:-4]
    return f"{scheme}://{host}/{path}"


def argocd(pushed: Pushed, url: str, secret: str | None) -> Notification:
    """Argo CD's /api/webhook push event for this push."""
    html_url = web_url(pushed.repository)
    full_name = "/".join(html_url.split("/")[-2:])
    person = {"name": pushed.author_name, "email": pushed.author_email}
    commit = {
        "id": pushed.commit,
        "tree_id": "",
        "distinct": True,
        "message": pushed.message,
        "timestamp": pushed.timestamp,
        "url": f"{html_url}/commit/{pushed.commit}",
        "author": person,
        "committer": person,
        "added": [],
        "removed": [],
        "modified": list(pushed.files),
    }
    payload = {
        "ref": f"refs/heads/{pushed.branch}",
        "before": pushed.before,
        "after": pushed.commit,
        "created": False,
        "deleted": False,
        "forced": False,
        "base_ref": None,
        "compare": f"{html_url}/compare/{pushed.before[:12]}...{pushed.commit[:12]}",
        "commits": [commit],
        "head_commit": commit,
        "repository": {
            "name": full_name.split("/")[-1],
            "full_name": full_name,
            "html_url": html_url,
            "clone_url": pushed.repository,
            "default_branch": pushed.branch,
        },
        "pusher": person,
        "sender": {"login": "imagepromoter"},
    }
    return _signed("argocd", url, payload, secret, "X-Hub-Signature-256",
                   {"X-GitHub-Event": "push"}, pushed.commit)  # fmt: skip


def generic(pushed: Pushed, url: str, secret: str | None) -> Notification:
    """The generic JSON promotion event for this push."""
    payload = {
        "name": pushed.name,
        "namespace": pushed.namespace,
        "image": pushed.image,
        "tag": pushed.tag,
        "digest": pushed.digest,
        "commit": pushed.commit,
        "repository": pushed.repository,
        "branch": pushed.branch,
        "files": list(pushed.files),
    }
    return _signed("generic", url, payload, secret, "X-Signature", {}, pushed.commit)


def build(type_: str, pushed: Pushed, url: str, secret: str | None) -> Notification:
    """The notification of `type_` (argocd | generic)."""
    return argocd(pushed, url, secret) if type_ == "argocd" else generic(pushed, url, secret)


def _signed(
    type_: str,
    url: str,
    payload: Mapping[str, object],
    secret: str | None,
    header: str,
    extra: Mapping[str, str],
    commit: str,
) -> Notification:
    body = json.dumps(payload, separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "imagepromoter",
        "X-GitHub-Delivery": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{url}#{commit}")),
        "X-Imagepromoter-Commit": commit,
        **extra,
    }
    if secret:
        headers[header] = auth.sign(body, secret)
    return Notification(type=type_, url=url, body=body, headers=headers)


def changed_files(paths: Sequence[str]) -> tuple[str, ...]:
    """The changed paths in order, once each."""
    return tuple(dict.fromkeys(paths))
