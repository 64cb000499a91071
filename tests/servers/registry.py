"""A real OCI registry (Debian's `docker-registry`, the CNCF distribution 2.8) and its helpers.

Used by the registry adapter's tests, `bench/registry_scan.py` and `scripts/demo.py`, so nothing
here imports pytest:

    with RegistryServer(tmpdir, auth=None) as reg:       # or auth="htpasswd" / auth="token"
        reg.push_image("org/app", tags=["1.0.0"], created="2026-01-01T00:00:00Z")
        reg.url, reg.host

What it is made of, and the facts about distribution 2.8 that shaped it:
- Three auth modes. `htpasswd`: Basic auth (bcrypt file made with `htpasswd -B`). `token`: Bearer
  auth exactly like ghcr.io and Docker Hub: the registry sends clients to `TokenServer`, ours,
  which issues ES256 JWTs with the `access` claim. The registry trusts the key through
  `rootcertbundle` (a self-signed certificate) and finds it by the JWT `kid`, which must be the
  libtrust key id: the first 30 bytes of the SHA-256 of the DER public key, base32, in groups of 4.
- Images are pushed through the registry's own HTTP API (tiny config and layer blobs, OCI or
  Docker manifests, multi-arch indexes). httpx's `params=` would replace the upload URL's own
  `_state` query, so the blob PUT appends `&digest=` to the Location by hand.
- 2.8 ignores `n` and `last` on `tags/list` (every tag in one response, no `Link`), so
  `PaginatingProxy` plays ghcr.io in front of it: 100 per page, relative or absolute `Link`
  URLs, and (like Quay) a 400 for an `n` above its limit. Its `tags` is `null` for a
  repository whose tags were all removed.
- Seeding thousands of tags through the API takes 16 to 30 s per 10,000; `seed_tags` writes the
  tag links straight into the storage tree (about 2 s) and the registry lists them at once.
- `FaultProxy` sits in front of the registry and misbehaves on demand (status codes with
  Retry-After, stalls, truncated, oversized and invalid bodies, blob redirects to a separate
  "object storage" server that records whether an Authorization header reached it). With
  `dual_tls` it speaks HTTPS and plain HTTP on one port, so a redirect can downgrade the scheme
  while keeping the host:port.
- `CompressingProxy` gzips JSON and manifests (nginx's `gzip on`), honouring Accept-Encoding or
  not; `HostilePagingProxy` links for ever (empty pages, or one new tag per page).
- `RegistryServer(port=443)` (or 80) gives an image name without a port; `claim_port` holds such
  a port for one test run at a time and says plainly when something else has it.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import fcntl
import gzip
import hashlib
import http.client
import http.server
import ipaddress
import json
import os
import re
import secrets
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.servers import free_port, require_binary, spawned

DOCKER_REGISTRY = "/usr/bin/docker-registry"
HTPASSWD = "/usr/bin/htpasswd"

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
ACCEPT_ALL = ", ".join((OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST))

SERVICE = "imagepromoter-test-registry"
ISSUER = "imagepromoter-test-token-server"
PUSHER = "pusher"  # the account the helpers push with (htpasswd and token modes)
CREATED_ANNOTATION = "org.opencontainers.image.created"


def digest_of(data: bytes) -> str:
    """The OCI digest (`sha256:<hex>`) of `data`."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


def libtrust_kid(public_key: ec.EllipticCurvePublicKey) -> str:
    """The key id distribution expects in a JWT `kid`: libtrust's fingerprint of the DER key."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    b32 = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(b32[i : i + 4] for i in range(0, len(b32), 4))


# ---------------------------------------------------------------------------------------------
# A tiny threaded HTTP server base, shared by the token server and the proxies.


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    owner: _ThreadedServer

    def setup(self) -> None:
        dual = self.owner.dual_tls
        if dual is not None:  # one port, both schemes: a TLS ClientHello starts with 0x16
            with contextlib.suppress(OSError):
                self.request.settimeout(30)
                if self.request.recv(1, socket.MSG_PEEK) == b"\x16":
                    self.request = dual.server_context().wrap_socket(self.request, server_side=True)
        super().setup()
        # Headers and body leave in two writes; without this, Nagle's algorithm and the
        # client's delayed ACK add 40 ms to every keep-alive response.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.owner.handle(self)

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    @property
    def secure(self) -> bool:
        """Whether this request came over TLS."""
        return isinstance(self.connection, ssl.SSLSocket)

    def body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def reply(
        self,
        status: int,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
        *,
        content_type: str | None = "application/json",
    ) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if content_type and not any(k.lower() == "content-type" for k in headers or {}):
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


class _ThreadedServer:
    """Serves `handle(request)` on a free 127.0.0.1 port from a daemon thread.

    `tls`: HTTPS only. `dual_tls`: HTTPS and plain HTTP on the same port (each connection's
    first byte says which), so a redirect can change the scheme while keeping the host:port.
    """

    def __init__(self, tls: TlsFiles | None = None, *, dual_tls: TlsFiles | None = None) -> None:
        owner = self

        class Handler(_Handler):
            pass

        Handler.owner = owner
        self.dual_tls = dual_tls
        self.port = free_port()
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.scheme = "https" if dual_tls is not None else "http"
        if tls is not None:  # handshake in the handler thread, so a stuck client blocks no one
            self._server.socket = tls.server_context().wrap_socket(
                self._server.socket, server_side=True, do_handshake_on_connect=False
            )
            self.scheme = "https"
        self._server.daemon_threads = True
        self.stopping = threading.Event()
        self._thread = threading.Thread(  # a short poll: stop() waits at most one poll interval
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def handle(self, request: _Handler) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> _ThreadedServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---------------------------------------------------------------------------------------------
# The token server: Docker's token auth protocol, as ghcr.io and Docker Hub speak it.


@dataclass
class TokenRequest:
    """One request the token server answered (never the password)."""

    account: str | None
    scopes: list[str]
    status: int
    token: str = field(default="", repr=False)


class TokenServer(_ThreadedServer):
    """Issues signed JWTs for `GET /token?service=&scope=`; Basic credentials optional.

    `users` maps account -> password; `grants` maps account (or None for anonymous) to the
    repositories it may pull (`"*"` for all). `PUSHER` may push and pull everything.
    `expires_in=None` omits the field, as ghcr.io does.
    """

    def __init__(
        self,
        *,
        users: Mapping[str, str],
        grants: Mapping[str | None, Sequence[str]],
        expires_in: int | None = 300,
    ) -> None:
        self.users = dict(users)
        self.grants = {k: list(v) for k, v in grants.items()}
        self.expires_in = expires_in
        self.requests: list[TokenRequest] = []
        self._lock = threading.Lock()
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.kid = libtrust_kid(self.key.public_key())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "imagepromoter test tokens")])
        now = dt.datetime.now(dt.UTC)
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .sign(self.key, hashes.SHA256())
        )
        super().__init__()

    @property
    def realm(self) -> str:
        return f"{self.url}/token"

    def cert_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def issued(self) -> list[TokenRequest]:
        """Every token request answered so far (a copy)."""
        with self._lock:
            return list(self.requests)

    def mint(self, account: str | None, access: list[dict[str, Any]], lifetime: int = 300) -> str:
        """A token the registry accepts, for `account` with `access` entries."""
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "sub": account or "",
            "aud": SERVICE,
            "exp": now + lifetime,
            "nbf": now - 10,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        return jwt.encode(claims, self.key, algorithm="ES256", headers={"kid": self.kid})

    def handle(self, request: _Handler) -> None:
        parsed = urllib.parse.urlsplit(request.path)
        query = urllib.parse.parse_qs(parsed.query)
        request.body()
        account: str | None = None
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            try:
                user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            except ValueError:
                user, password = "", ""
            if self.users.get(user) != password or not password:
                self._record(user or "?", query.get("scope", []), 401)
                request.reply(
                    401,
                    json.dumps(
                        {"errors": [{"code": "UNAUTHORIZED", "message": "bad login"}]}
                    ).encode(),
                )
                return
            account = user
        if parsed.path != "/token" or query.get("service") != [SERVICE]:
            self._record(account, query.get("scope", []), 400)
            request.reply(400, b'{"errors":[{"code":"UNSUPPORTED","message":"bad request"}]}')
            return
        access = []
        for scope in query.get("scope", []):
            for one in scope.split(" "):
                kind, _, rest = one.partition(":")
                name, _, actions = rest.rpartition(":")
                if kind != "repository" or not name:
                    continue
                allowed = self._allowed(account, name)
                granted = [a for a in actions.split(",") if a in allowed]
                access.append({"type": "repository", "name": name, "actions": granted})
        token = self.mint(account, access, lifetime=self.expires_in or 300)
        doc: dict[str, Any] = {"token": token, "access_token": token}
        if self.expires_in is not None:
            doc["expires_in"] = self.expires_in
            doc["issued_at"] = dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")
        self._record(account, query.get("scope", []), 200, token)
        request.reply(200, json.dumps(doc).encode())

    def _allowed(self, account: str | None, repository: str) -> set[str]:
        if account == PUSHER:
            return {"pull", "push", "delete"}
        repos = self.grants.get(account, [])
        return {"pull"} if "*" in repos or repository in repos else set()

    def _record(self, account: str | None, scopes: list[str], status: int, token: str = "") -> None:
        with self._lock:
            self.requests.append(TokenRequest(account, scopes, status, token))


# ---------------------------------------------------------------------------------------------
# The registry itself.


@dataclass
class PushedImage:
    """What `push_image` made: the tag's manifest digest and, for an index, the children's."""

    digest: str
    media_type: str
    children: dict[str, str] = field(default_factory=dict)  # "os/arch" -> manifest digest


class RegistryServer:
    """`docker-registry` on a free 127.0.0.1 port, in one of three auth modes.

    auth=None: open. auth="htpasswd": Basic auth for `reader`/`pusher`. auth="token": Bearer
    auth through `self.tokens` (a TokenServer); `reader` may pull everything, `outsider` can log
    in but read nothing, anonymous may pull `public_repos`.
    """

    def __init__(
        self,
        base_dir: Path | str | None = None,
        *,
        auth: str | None = None,
        public_repos: Sequence[str] = (),
        token_expires_in: int | None = 300,
        tls: bool = False,
        realm: str | None = None,
        port: int | None = None,
        notify: Sequence[tuple[str, str]] = (),
    ) -> None:
        if auth not in (None, "htpasswd", "token"):
            raise ValueError(f"auth must be None, 'htpasswd' or 'token', not {auth!r}")
        self.auth = auth
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if base_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="registry-")
            base_dir = self._tmp.name
        self.base_dir = Path(base_dir)
        self.storage = self.base_dir / "storage"
        self.port = 0
        self._fixed_port = port  # e.g. 443, under `claim_port`; else a free one at start
        self.username = "reader"
        self.password = "reader-" + secrets.token_hex(8)
        self.pusher_password = "pusher-" + secrets.token_hex(8)
        self.outsider = "outsider"
        self.outsider_password = "outsider-" + secrets.token_hex(8)
        self.public_repos = list(public_repos)
        self.token_expires_in = token_expires_in
        self.tls: TlsFiles | None = None  # set at start when `tls`: a self-signed certificate
        self._want_tls = tls
        self.realm_override = realm  # token mode: send clients here instead of `self.tokens`
        self.notify = list(notify)  # (url, bearer token): notifications.endpoints to POST to
        self.tokens: TokenServer | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._http: httpx.Client | None = None

    # lifecycle ---------------------------------------------------------------------------------

    def start(self) -> RegistryServer:
        """Start the registry (and the token server in token mode); wait until it answers."""
        binary = require_binary(DOCKER_REGISTRY)
        if self.auth == "htpasswd":
            require_binary(HTPASSWD)
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.storage.mkdir(exist_ok=True)
        self.port = self._fixed_port or free_port()
        if self._want_tls:
            self.tls = TlsFiles.self_signed(self.base_dir / "tls")
        config = self.base_dir / "config.yml"
        config.write_text(self._config(), "utf-8")
        log = self.base_dir / "registry.log"
        with open(log, "wb") as log_file:
            self._process = spawned(
                subprocess.Popen(
                    [binary, "serve", str(config)],
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        verify: ssl.SSLContext | bool = self.tls.client_context() if self.tls else True
        self._http = httpx.Client(timeout=30, verify=verify)
        deadline = time.monotonic() + 15
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"docker-registry exited: {log.read_text(errors='replace')}")
            with contextlib.suppress(httpx.TransportError):
                if self._http.get(f"{self.url}/v2/").status_code in (200, 401):
                    break
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("docker-registry did not answer within 15 s")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        """Stop the registry and the token server; remove a temporary base directory."""
        if self._http is not None:
            self._http.close()
            self._http = None
        if self._process is not None and self._process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGTERM)
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self._process.pid, signal.SIGKILL)
                self._process.wait()
        self._process = None
        if self.tokens is not None:
            self.tokens.stop()
            self.tokens = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> RegistryServer:
        return self if self._process is not None else self.start()  # `with reg.start():` too

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def host(self) -> str:
        """What goes before the repository in `spec.image` (`127.0.0.1:PORT`; no port on 443)."""
        default = 443 if self.tls else 80
        return "127.0.0.1" if self.port == default else f"127.0.0.1:{self.port}"

    def _config(self) -> str:
        lines = [
            "version: 0.1",
            "log:",
            "  level: error",
            "  accesslog:",
            "    disabled: true",
            "storage:",
            "  filesystem:",
            f"    rootdirectory: {self.storage}",
            "  delete:",
            "    enabled: true",
            "  maintenance:",
            "    uploadpurging:",
            "      enabled: false",
            "http:",
            f"  addr: 127.0.0.1:{self.port}",
            f"  secret: {secrets.token_hex(16)}",
        ]
        if self.tls is not None:
            lines += [
                "  tls:",
                f"    certificate: {self.tls.certificate}",
                f"    key: {self.tls.key}",
            ]
        if self.auth == "htpasswd":
            htpasswd = self.base_dir / "htpasswd"
            htpasswd.unlink(missing_ok=True)
            for user, password in (
                (self.username, self.password),
                (PUSHER, self.pusher_password),
            ):
                flags = "-bB" if htpasswd.exists() else "-bcB"
                subprocess.run(
                    [HTPASSWD, flags, str(htpasswd), user, password],
                    check=True,
                    capture_output=True,
                )
            lines += ["auth:", "  htpasswd:", "    realm: test", f"    path: {htpasswd}"]
        elif self.auth == "token":
            self.tokens = TokenServer(
                users={
                    self.username: self.password,
                    PUSHER: self.pusher_password,
                    self.outsider: self.outsider_password,
                },
                grants={self.username: ["*"], None: self.public_repos},
                expires_in=self.token_expires_in,
            )
            bundle = self.base_dir / "token-cert.pem"
            bundle.write_bytes(self.tokens.cert_pem())
            lines += [
                "auth:",
                "  token:",
                f"    realm: {self.realm_override or self.tokens.realm}",
                f"    service: {SERVICE}",
                f"    issuer: {ISSUER}",
                f"    rootcertbundle: {bundle}",
            ]
        if self.notify:
            lines += ["notifications:", "  endpoints:"]
            for index, (url, token) in enumerate(self.notify):
                lines += [f"    - name: endpoint{index}", f"      url: {url}", "      headers:",
                          f"        Authorization: [Bearer {token}]", "      timeout: 2s",
                          "      threshold: 3", "      backoff: 200ms"]  # fmt: skip
        return "\n".join(lines) + "\n"

    # pushing through the HTTP API -------------------------------------------------------------

    def _headers(self, repository: str) -> dict[str, str]:
        if self.auth == "htpasswd":
            raw = f"{PUSHER}:{self.pusher_password}".encode()
            return {"Authorization": "Basic " + base64.b64encode(raw).decode()}
        if self.auth == "token":
            assert self.tokens is not None
            access = [{"type": "repository", "name": repository, "actions": ["pull", "push"]}]
            return {"Authorization": "Bearer " + self.tokens.mint(PUSHER, access)}
        return {}

    def _client(self) -> httpx.Client:
        if self._http is None:
            raise RuntimeError("the registry is not running; use `with RegistryServer(...)`")
        return self._http

    def push_blob(self, repository: str, data: bytes) -> str:
        """Upload `data` as a blob of `repository` (skipped if present); returns its digest."""
        http_ = self._client()
        digest = digest_of(data)
        headers = self._headers(repository)
        head = http_.head(f"{self.url}/v2/{repository}/blobs/{digest}", headers=headers)
        if head.status_code == 200:
            return digest
        start = http_.post(f"{self.url}/v2/{repository}/blobs/uploads/", headers=headers)
        _check(start, 202)
        location = urllib.parse.urljoin(self.url, start.headers["Location"])
        separator = "&" if "?" in location else "?"
        put = http_.put(
            f"{location}{separator}digest={digest}",
            content=data,
            headers={**headers, "Content-Type": "application/octet-stream"},
        )
        _check(put, 201)
        return digest

    def push_manifest(self, repository: str, reference: str, body: bytes, media_type: str) -> str:
        """PUT a manifest (or index) under a tag or digest; returns its digest."""
        response = self._client().put(
            f"{self.url}/v2/{repository}/manifests/{reference}",
            content=body,
            headers={**self._headers(repository), "Content-Type": media_type},
        )
        _check(response, 201)
        return digest_of(body)

    def push_image(
        self,
        repository: str,
        *,
        tags: Sequence[str],
        created: str | dt.datetime | None = None,
        platforms: Sequence[str] = ("linux/amd64",),
        index: bool | None = None,
        docker: bool = False,
        annotate_created: str | None = None,
        platform_created: Mapping[str, str] | None = None,
    ) -> PushedImage:
        """Push a tiny image under every tag in `tags`.

        One platform gives a single manifest; several (or `index=True`) an index whose
        children differ per platform (`platform_created` can give each its own `created`).
        `docker=True` uses Docker's media types; `annotate_created` puts the
        `org.opencontainers.image.created` annotation on the top manifest or index.
        """
        when = _created_text(created)
        multi = len(platforms) > 1 if index is None else index
        children: dict[str, str] = {}
        descriptors = []
        for platform in platforms:
            os_name, _, arch = platform.partition("/")
            child_created = (platform_created or {}).get(platform, when)
            body, media = self._image_manifest(
                repository,
                os_name,
                arch,
                child_created,
                docker=docker,
                annotation=None if multi else annotate_created,
            )
            if multi:
                digest = self.push_manifest(repository, digest_of(body), body, media)
                children[platform] = digest
                descriptors.append(
                    {
                        "mediaType": media,
                        "digest": digest,
                        "size": len(body),
                        "platform": {"os": os_name, "architecture": arch},
                    }
                )
        if multi:
            media = DOCKER_LIST if docker else OCI_INDEX
            doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": media, "manifests": descriptors}
            if annotate_created:
                doc["annotations"] = {CREATED_ANNOTATION: annotate_created}
            body = canonical_json(doc)
        for tag in tags:
            self.push_manifest(repository, tag, body, media)
        if not tags:
            self.push_manifest(repository, digest_of(body), body, media)
        return PushedImage(digest=digest_of(body), media_type=media, children=children)

    def _image_manifest(
        self,
        repository: str,
        os_name: str,
        arch: str,
        created: str,
        *,
        docker: bool,
        annotation: str | None,
    ) -> tuple[bytes, str]:
        layer = f"layer {repository} {os_name}/{arch} {created}".encode()
        config = canonical_json(
            {
                "architecture": arch,
                "os": os_name,
                "created": created,
                "config": {},
                "rootfs": {"type": "layers", "diff_ids": [digest_of(layer)]},
            }
        )
        config_digest = self.push_blob(repository, config)
        layer_digest = self.push_blob(repository, layer)
        media = DOCKER_MANIFEST if docker else OCI_MANIFEST
        doc: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": media,
            "config": {
                "mediaType": DOCKER_CONFIG if docker else OCI_CONFIG,
                "digest": config_digest,
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": DOCKER_LAYER if docker else OCI_LAYER,
                    "digest": layer_digest,
                    "size": len(layer),
                }
            ],
        }
        if annotation:
            doc["annotations"] = {CREATED_ANNOTATION: annotation}
        return canonical_json(doc), media

    # writing into the storage tree ------------------------------------------------------------

    def _repo_dir(self, repository: str) -> Path:
        return self.storage / "docker/registry/v2/repositories" / repository

    def seed_tags(self, repository: str, tags: Sequence[str], digest: str) -> None:
        """Point every tag in `tags` at the already pushed manifest `digest`, via the storage tree.

        Only `current/link` is written (listing and pulling by tag read nothing else; the
        `index/` links matter only to tag deletion). About 2 s for 10,000 tags against 16 to
        30 s through the API; the registry lists them at once (2.8 keeps no tag cache).
        """
        algorithm, _, hex_ = digest.partition(":")
        link = digest.encode()
        root = self._repo_dir(repository) / "_manifests/tags"
        if not (self._repo_dir(repository) / f"_manifests/revisions/{algorithm}/{hex_}").exists():
            raise ValueError(f"{digest} was not pushed to {repository}; push_image first")
        for tag in tags:
            tag_dir = root / tag
            (tag_dir / "current").mkdir(parents=True, exist_ok=True)
            (tag_dir / "current/link").write_bytes(link)

    def remove_all_tags(self, repository: str) -> None:
        """Delete every tag of `repository` in storage (the registry then lists `tags: null`)."""
        root = self._repo_dir(repository) / "_manifests/tags"
        for tag_dir in list(root.iterdir()) if root.exists() else []:
            _rmtree(tag_dir)

    def blob_path(self, digest: str) -> Path:
        """Where the registry keeps blob `digest` on disk."""
        algorithm, _, hex_ = digest.partition(":")
        return self.storage / f"docker/registry/v2/blobs/{algorithm}/{hex_[:2]}/{hex_}/data"


def _rmtree(path: Path) -> None:
    for child in path.iterdir():
        if child.is_dir() and not child.is_symlink():
            _rmtree(child)
        else:
            child.unlink()
    path.rmdir()


def _created_text(created: str | dt.datetime | None) -> str:
    if created is None:
        created = dt.datetime.now(dt.UTC)
    if isinstance(created, dt.datetime):
        return created.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    return created


def _check(response: httpx.Response, expected: int) -> None:
    if response.status_code != expected:
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path} answered "
            f"{response.status_code}: {response.text[:500]}"
        )


@contextlib.contextmanager
def serve(base_dir: Path | None = None, **kwargs: Any) -> Iterator[RegistryServer]:
    """`with serve() as reg:` starts a registry (see RegistryServer) and always stops it."""
    with RegistryServer(base_dir, **kwargs) as server:
        yield server


def start(base_dir: Path, **kwargs: Any) -> RegistryServer:
    """Start a registry in `base_dir`; the caller stops it."""
    return RegistryServer(base_dir, **kwargs).start()


class PortBusy(RuntimeError):
    """A fixed port a test needs (443) is held by another process."""


@contextlib.contextmanager
def claim_port(port: int, *, wait: float = 600.0) -> Iterator[None]:
    """Hold `port` on 127.0.0.1 for the block: one test run at a time, and the port is free.

    Test runs from several worktrees may share the machine, so a lock file serialises them
    (waiting up to `wait` seconds); then the port must be bindable, else `PortBusy` says so.
    """
    lock_path = Path(tempfile.gettempdir()) / f"imagepromoter-port-{port}.lock"
    with open(lock_path, "a+b") as lock:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise PortBusy(
                        f"another test run has held port {port} for {wait:.0f} s (lock {lock_path})"
                    ) from None
                time.sleep(0.2)
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError as exc:
                    raise PortBusy(
                        f"port {port} on 127.0.0.1 is not free ({exc.strerror}); these tests "
                        f"start a registry on it: stop what listens there (ss -ltnp "
                        f"'sport = :{port}'), or run them as root if that is the error"
                    ) from None
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# ---------------------------------------------------------------------------------------------
# Proxies in front of the registry.


@dataclass
class SeenRequest:
    """One request a proxy saw: method, path with query, and whether it carried credentials."""

    method: str
    path: str
    authorized: bool
    accept: str = ""
    secure: bool = False  # came over TLS
    accept_encoding: str = ""
    at: float = field(default_factory=time.time)  # when it arrived (the wall clock)


_HOP_HEADERS = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "upgrade"}
)


class _Proxy(_ThreadedServer):
    """Forwards every request to `upstream` (plain HTTP) and records what it saw."""

    def __init__(
        self, upstream: str, *, tls: TlsFiles | None = None, dual_tls: TlsFiles | None = None
    ) -> None:
        self.upstream = urllib.parse.urlsplit(upstream)
        self.requests: list[SeenRequest] = []
        self.in_flight = 0
        self.max_in_flight = 0  # the most requests it was answering at once
        self._lock = threading.Lock()
        super().__init__(tls, dual_tls=dual_tls)

    def seen(self, pattern: str = "") -> list[SeenRequest]:
        """Requests whose path matches the regex `pattern`."""
        with self._lock:
            return [r for r in self.requests if re.search(pattern, r.path)]

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()

    def handle(self, request: _Handler) -> None:
        with self._lock:
            self.requests.append(
                SeenRequest(
                    request.command,
                    request.path,
                    "Authorization" in request.headers,
                    request.headers.get("Accept", ""),
                    request.secure,
                    request.headers.get("Accept-Encoding", ""),
                )
            )
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            self.serve(request)
        finally:
            with self._lock:
                self.in_flight -= 1

    def serve(self, request: _Handler) -> None:
        status, headers, body = self.forward(request)
        request.reply(status, body, headers, content_type=None)

    def forward(
        self, request: _Handler, path: str | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        """Send the request upstream; returns status, end-to-end headers and the whole body."""
        body = request.body()
        connection = http.client.HTTPConnection(
            self.upstream.hostname or "127.0.0.1", self.upstream.port, timeout=30
        )
        try:
            headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
            connection.request(request.command, path or request.path, body or None, headers)
            response = connection.getresponse()
            data = response.read()
            out = {k: v for k, v in response.getheaders() if k.lower() not in _HOP_HEADERS}
            return response.status, out, data
        finally:
            connection.close()


class CountingProxy(_Proxy):
    """A plain pass-through that records every request (`seen`, `max_in_flight`)."""


class PaginatingProxy(_Proxy):
    """ghcr.io-style `tags/list` paging in front of a registry that returns every tag at once.

    Pages hold `page_size` tags (the default when `n` is absent); an `n` above `max_n` is
    answered 400 when `reject_large_n` (as Quay does), else capped. `Link` URLs are relative
    or absolute (`absolute_links`). `shuffle` serves the tags in a scrambled (but stable) order.
    Like ghcr.io, a manifest request whose Accept lacks the OCI index type gets a 404
    (`require_index_accept`).
    """

    def __init__(
        self,
        upstream: str,
        *,
        page_size: int = 100,
        max_n: int = 100,
        reject_large_n: bool = False,
        absolute_links: bool = False,
        shuffle: bool = False,
        require_index_accept: bool = True,
        cache_upstream: bool = False,
    ) -> None:
        self.require_index_accept = require_index_accept
        self.cache_upstream = cache_upstream  # bench: fetch the full list from upstream once
        self._cached: dict[str, tuple[int, dict[str, str], bytes]] = {}
        self.page_size = page_size
        self.max_n = max_n
        self.reject_large_n = reject_large_n
        self.absolute_links = absolute_links
        self.shuffle = shuffle
        super().__init__(upstream)

    def serve(self, request: _Handler) -> None:
        parsed = urllib.parse.urlsplit(request.path)
        accept = request.headers.get("Accept", "")
        if "/manifests/" in parsed.path and self.require_index_accept and OCI_INDEX not in accept:
            request.reply(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"unknown"}]}')
            return
        if request.command != "GET" or not parsed.path.endswith("/tags/list"):
            super().serve(request)
            return
        query = urllib.parse.parse_qs(parsed.query)
        n = self.page_size
        if "n" in query:
            asked = int(query["n"][0])
            if asked > self.max_n and self.reject_large_n:
                request.reply(
                    400,
                    json.dumps(
                        {
                            "errors": [
                                {
                                    "code": "PAGINATION_NUMBER_INVALID",
                                    "message": f"n must be at most {self.max_n}",
                                }
                            ]
                        }
                    ).encode(),
                )
                return
            n = max(1, min(asked, self.max_n))
        if self.cache_upstream and parsed.path in self._cached:
            request.body()
            status, headers, body = self._cached[parsed.path]
        else:
            status, headers, body = self.forward(request, parsed.path)
            if self.cache_upstream and status == 200:
                self._cached[parsed.path] = (status, headers, body)
        if status != 200:
            request.reply(status, body, headers, content_type=None)
            return
        doc = json.loads(body)
        tags = list(doc.get("tags") or [])
        if self.shuffle:
            tags.sort(key=lambda t: hashlib.sha256(t.encode()).digest())
        start = 0
        if "last" in query:
            start = tags.index(query["last"][0]) + 1 if query["last"][0] in tags else len(tags)
        page = tags[start : start + n]
        out = {"name": doc.get("name"), "tags": page}
        headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
        if start + n < len(tags):
            next_query = urllib.parse.urlencode({"n": n, "last": page[-1]})
            link = f"{parsed.path}?{next_query}"
            if self.absolute_links:
                link = f"{self.url}{link}"
            headers["Link"] = f'<{link}>; rel="next"'
        request.reply(200, json.dumps(out).encode(), headers)


class CompressingProxy(_Proxy):
    """nginx's `gzip on` in front of the registry: JSON and manifest bodies leave gzipped.

    A GET whose answer is JSON-ish (`application/json`, `*+json`, manifests) is compressed when
    the request's Accept-Encoding names gzip; with `force` it is compressed even when the client
    asked for identity (misconfigured proxies and some CDNs do). The body the client then gets
    differs byte for byte from the manifest, so a digest over the raw bytes cannot match.
    `compressed` lists the paths it sent gzipped.
    """

    def __init__(self, upstream: str, *, force: bool = False) -> None:
        self.force = force
        self.compressed: list[str] = []
        super().__init__(upstream)

    def serve(self, request: _Handler) -> None:
        status, headers, body = self.forward(request)
        kind = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
        wants = "gzip" in request.headers.get("Accept-Encoding", "").lower()
        jsonish = "json" in kind or "manifest" in kind
        if request.command == "GET" and body and jsonish and (wants or self.force):
            body = gzip.compress(body)
            headers["Content-Encoding"] = "gzip"
            headers["Vary"] = "Accept-Encoding"
            with self._lock:
                self.compressed.append(request.path)
        request.reply(status, body, headers, content_type=None)


class HostilePagingProxy(_Proxy):
    """A `tags/list` that never ends, in front of the registry: the first page is the real one.

    `mode="empty"`: every later page is `{"tags": []}` with a `Link` to a fresh URL (a new
    `nonce` each time), the loop seen in the wild. `mode="one_new"`: every later page holds one
    invented tag (`9.0.<k>`) and links on. It stops linking after `give_up_after` pages, so a
    client without bounds still ends (with thousands of requests) instead of hanging the test.
    `pages` counts the tag-list pages it served.
    """

    def __init__(self, upstream: str, *, mode: str = "empty", give_up_after: int = 3000) -> None:
        if mode not in ("empty", "one_new"):
            raise ValueError(f"mode must be 'empty' or 'one_new', not {mode!r}")
        self.mode = mode
        self.give_up_after = give_up_after
        self.pages = 0
        super().__init__(upstream)

    def serve(self, request: _Handler) -> None:
        parsed = urllib.parse.urlsplit(request.path)
        if request.command != "GET" or not parsed.path.endswith("/tags/list"):
            super().serve(request)
            return
        with self._lock:
            self.pages += 1
            page = self.pages
        if page == 1:
            status, headers, body = self.forward(request, parsed.path)
            if status != 200:
                request.reply(status, body, headers, content_type=None)
                return
            doc = json.loads(body)
        else:
            request.body()
            headers = {}
            tags = [] if self.mode == "empty" else [f"9.0.{page}"]
            doc = {"name": parsed.path.split("/v2/", 1)[-1].rsplit("/tags/", 1)[0], "tags": tags}
        headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
        if page < self.give_up_after:
            query = urllib.parse.urlencode({"n": 100, "nonce": page})
            headers["Link"] = f'<{parsed.path}?{query}>; rel="next"'
        request.reply(200, json.dumps(doc).encode(), headers)


@dataclass
class Fault:
    """What `FaultProxy` does instead of (or to) the upstream answer, `times` times."""

    kind: str  # status | stall | truncate | oversize | invalid_json | redirect_blob | delay
    #            | redirect_blob_http | gather
    path: str = ""  # regex on the request path (with query)
    times: int = 1
    status: int = 503
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    size: int = 0  # oversize: how many bytes to stream
    declare_length: bool = True  # oversize: send Content-Length (else read until close)
    seconds: float = 0.0  # delay: wait this long, then forward
    count: int = 0  # gather: hold requests until this many are in flight at once, then forward


class FaultProxy(_Proxy):
    """Passes requests to the registry, except those matching a queued `Fault`.

    `redirect_blob` answers blob GETs with a 307 to `self.storage`, a separate server (another
    host:port) that serves the blob from the registry's storage tree and records whether an
    Authorization header reached it. `redirect_blob_http` (with `dual_tls`, so this proxy
    answers HTTPS and plain HTTP on one port) redirects an HTTPS blob GET to the same host:port
    over `http://` with a `signed=` query, and serves that plain request from the storage tree
    itself: a downgrade on the same host, where the client must drop its credentials.
    """

    def __init__(
        self,
        upstream: str,
        registry: RegistryServer | None = None,
        *,
        dual_tls: TlsFiles | None = None,
    ) -> None:
        self.faults: list[Fault] = []
        self._arrived = threading.Condition()
        self.registry = registry
        self.storage: BlobStorage | None = BlobStorage(registry) if registry else None
        super().__init__(upstream, dual_tls=dual_tls)

    def add(self, kind: str, path: str = "", **options: Any) -> Fault:
        fault = Fault(kind=kind, path=path, **options)
        with self._lock:
            self.faults.append(fault)
        return fault

    def stop(self) -> None:
        if self.storage is not None:
            self.storage.stop()
        super().stop()

    def _take(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.times > 0 and re.search(fault.path, path):
                    fault.times -= 1
                    return fault
        return None

    def serve(self, request: _Handler) -> None:
        with self._arrived:  # every arrival may complete a gather
            self._arrived.notify_all()
        if not request.secure and self.dual_tls is not None and "signed=" in request.path:
            assert self.registry is not None, "FaultProxy(registry=...) serves signed blobs"
            request.body()
            digest = urllib.parse.urlsplit(request.path).path.rsplit("/", 1)[-1]
            path = self.registry.blob_path(digest)
            if not path.exists():
                request.reply(404, b"no such blob", content_type="text/plain")
            else:
                request.reply(200, path.read_bytes(), content_type="application/octet-stream")
            return
        fault = self._take(request.path)
        if fault is None:
            super().serve(request)
            return
        if fault.kind == "delay":
            self.stopping.wait(fault.seconds)
            super().serve(request)
        elif fault.kind == "gather":  # a barrier, not a timing window (30 s only as a backstop)
            with self._arrived:
                self._arrived.wait_for(lambda: self.in_flight >= fault.count, timeout=30)
            super().serve(request)
        elif fault.kind == "status":
            request.reply(fault.status, fault.body, fault.headers)
        elif fault.kind == "invalid_json":
            request.reply(200, fault.body or b'{"name": "x", "tags": ["1.0",', fault.headers)
        elif fault.kind == "stall":
            request.send_response(200)
            request.send_header("Content-Type", "application/json")
            request.send_header("Content-Length", "1000")
            request.end_headers()
            request.wfile.write(b'{"tags": [')
            request.wfile.flush()
            self.stopping.wait(60)
            request.close_connection = True
        elif fault.kind == "truncate":
            status, headers, body = self.forward(request)
            request.send_response(status)
            for name, value in headers.items():
                request.send_header(name, value)
            request.send_header("Content-Length", str(len(body)))
            request.end_headers()
            request.wfile.write(body[: len(body) // 2])
            request.wfile.flush()
            request.close_connection = True
        elif fault.kind == "oversize":
            request.send_response(200)
            request.send_header("Content-Type", "application/json")
            if fault.declare_length:
                request.send_header("Content-Length", str(fault.size))
            else:
                request.send_header("Connection", "close")
            request.end_headers()
            chunk = b" " * 65536
            sent = 0
            with contextlib.suppress(OSError):
                while sent < fault.size and not self.stopping.is_set():
                    piece = chunk[: fault.size - sent]
                    request.wfile.write(piece)
                    sent += len(piece)
            request.close_connection = True
        elif fault.kind == "redirect_blob":
            assert self.storage is not None, "FaultProxy(registry=...) is needed for redirects"
            digest = request.path.rsplit("/", 1)[-1].split("?")[0]
            request.reply(307, b"", {"Location": f"{self.storage.url}/blobs/{digest}"})
        elif fault.kind == "redirect_blob_http":
            path = urllib.parse.urlsplit(request.path).path
            request.body()
            location = f"http://{self.host}{path}?signed={secrets.token_hex(8)}"
            request.reply(307, b"", {"Location": location})
        else:
            raise ValueError(f"unknown fault kind {fault.kind!r}")


class BlobStorage(_ThreadedServer):
    """Object storage stand-in: serves `/blobs/<digest>` from a registry's storage tree."""

    def __init__(self, registry: RegistryServer) -> None:
        self.registry = registry
        self.requests: list[SeenRequest] = []
        super().__init__()

    def handle(self, request: _Handler) -> None:
        self.requests.append(
            SeenRequest(request.command, request.path, "Authorization" in request.headers)
        )
        digest = request.path.rsplit("/", 1)[-1]
        path = self.registry.blob_path(digest)
        if not path.exists():
            request.reply(404, b"no such blob", content_type="text/plain")
            return
        request.reply(200, path.read_bytes(), content_type="application/octet-stream")


# ---------------------------------------------------------------------------------------------
# TLS: a self-signed certificate for the registry and the fake token realm.


@dataclass(frozen=True)
class TlsFiles:
    """A self-signed certificate (also its own CA) for 127.0.0.1 and localhost, as PEM files.

    docker-registry reads them from `http.tls.certificate/key`; a client trusts the server only
    by loading `certificate` as its CA (e.g. `SSL_CERT_FILE`), which is what the tests of
    `insecure` need: an unverifiable certificate unless the client is told about it.
    """

    certificate: Path
    key: Path

    @classmethod
    def self_signed(cls, directory: Path) -> TlsFiles:
        """Write a fresh key and certificate (valid from yesterday for 30 days) to `directory`."""
        directory.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        # A unique name: OpenSSL finds a trust anchor by subject, so two alike would collide.
        common_name = f"imagepromoter test {secrets.token_hex(4)}"
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = dt.datetime.now(dt.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                        x509.DNSName("localhost"),
                    ]
                ),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        files = cls(directory / "cert.pem", directory / "key.pem")
        files.certificate.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        files.key.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        files.key.chmod(0o600)
        return files

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.certificate, self.key)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts exactly this certificate."""
        return ssl.create_default_context(cafile=str(self.certificate))


# ---------------------------------------------------------------------------------------------
# A token realm of our own choosing, to see where credentials go.


@dataclass
class RealmRequest:
    """One request `FakeRealm` received: path with query and the Basic account, if any."""

    path: str
    authorized: bool
    account: str | None = None


class FakeRealm(_ThreadedServer):
    """A token service stand-in (HTTP or, with `tls`, HTTPS) that records who sent what.

    `forward_to` (a realm URL such as `TokenServer.realm`): token requests are passed there with
    their Authorization header and the answer comes back, so a registry trusts the tokens while
    the credentials visibly pass through this host. `redirect_to`: every request is answered
    307 to that URL (a client must not follow it with the credentials). Neither: a 200 with a
    token no registry accepts, so the server also serves as a "third host" that counts visits.
    The password is never recorded.
    """

    def __init__(
        self,
        *,
        tls: TlsFiles | None = None,
        forward_to: str | None = None,
        redirect_to: str | None = None,
    ) -> None:
        self.forward_to = forward_to
        self.redirect_to = redirect_to
        self.tls_files = tls
        self.requests: list[RealmRequest] = []
        self._lock = threading.Lock()
        super().__init__(tls)

    @property
    def realm(self) -> str:
        return f"{self.url}/token"

    def seen(self) -> list[RealmRequest]:
        with self._lock:
            return list(self.requests)

    def handle(self, request: _Handler) -> None:
        request.body()
        header = request.headers.get("Authorization", "")
        account = None
        if header.startswith("Basic "):
            with contextlib.suppress(ValueError):
                account = base64.b64decode(header[6:]).decode().partition(":")[0]
        with self._lock:
            self.requests.append(RealmRequest(request.path, bool(header), account))
        if self.redirect_to is not None:
            request.reply(307, b"", {"Location": self.redirect_to})
            return
        if self.forward_to is None:
            request.reply(200, b'{"token": "not-a-token-any-registry-accepts"}')
            return
        query = urllib.parse.urlsplit(request.path).query
        headers = {"Authorization": header} if header else {}
        with httpx.Client(timeout=30) as upstream:
            answer = upstream.get(f"{self.forward_to}?{query}", headers=headers)
        request.reply(answer.status_code, answer.content)
