"""The command line: `imagepromoter promote` (no cluster) and `imagepromoter run` (the operator).

This is the wiring layer: the only module that builds the real adapters (the registry client and
the git writer) and hands them to `reconcile` or to the Kopf handlers. `promote` runs every CR
concurrently and writes through one `pipeline.batches.Batches` in barrier mode: once every pass
has reached its write (or finished), each repository and branch is written in one batch, one
commit per CR and one push.

Exit codes: 0 when every CR ends Ready=True, 1 when any ends Ready=False, 2 on usage errors.
`import` exits 0 when every translation is exact, 3 when any is not, 2 on usage errors.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import difflib
import gc
import json
import logging
import os
import ssl
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from imagepromoter import bounded, manifests, reconcile, redact, sanitise, scans, shards, stages
from imagepromoter.pipeline import batches

EXIT_READY, EXIT_NOT_READY, EXIT_USAGE = 0, 1, 2
EXIT_INEXACT = 3


def default_workdir() -> Path:
    """Where git workspaces are kept between runs."""
    env = os.environ.get("IMAGEPROMOTER_WORKDIR")
    if env:
        return Path(env)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "imagepromoter"


def _version() -> str:
    """The installed distribution's version (what `pip install` put there)."""
    from importlib import metadata

    try:
        return metadata.version("imagepromoter")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="imagepromoter",
        description="Promote new container image tags into GitOps repositories.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    promote = sub.add_parser(
        "promote",
        help="scan and promote the ImagePromotions in FILEs once, without a cluster",
        description="Read ImagePromotion (and Secret) manifests from files, do one scan and "
        "promotion for each, and print the resulting status.",
    )
    promote.add_argument("files", nargs="+", metavar="FILE", help="manifest files ('-' for stdin)")
    promote.add_argument(
        "--secrets", action="append", default=[], metavar="FILE", help="Secret manifests"
    )
    promote.add_argument(
        "--dry-run", action="store_true", help="change nothing; print the diff it would commit"
    )
    promote.add_argument("--output", "-o", choices=("text", "json"), default="text")
    promote.add_argument(
        "--workdir", type=Path, default=None, help="git workspace cache (default ~/.cache/...)"
    )
    _deadline_argument(promote)

    run = sub.add_parser(
        "run",
        help="run the operator in the cluster of the current kubeconfig (or in-cluster)",
        description="Watch ImagePromotions and promote on their interval.",
    )
    run.add_argument("--namespace", "-n", action="append", default=[], help="watch only these")
    run.add_argument(
        "--selector",
        action="append",
        default=[],
        metavar="LABEL=VALUE",
        help="serve only ImagePromotions with this label (LABEL alone: with the label); one "
        "Deployment per shard, e.g. imagepromoter.dev/shard=0, each with its own --peering",
    )
    run.add_argument("--workdir", type=Path, default=None)
    run.add_argument("--metrics-port", type=int, default=8080)
    run.add_argument("--liveness", default="http://0.0.0.0:8081/healthz")
    run.add_argument("--peering", default=None, help="Kopf peering name for HA (two replicas)")
    run.add_argument("--standalone", action="store_true", help="no peering (single replica)")
    run.add_argument(
        "--webhook-port",
        type=int,
        default=9443,
        help="serve ImageWebhooks on this port (0: no webhook receiver)",
    )
    run.add_argument("--webhook-tls-cert", type=Path, default=None, help="PEM certificate (TLS)")
    run.add_argument("--webhook-tls-key", type=Path, default=None, help="PEM private key (TLS)")
    _deadline_argument(run)
    run.add_argument(
        "--batch-window",
        type=_duration,
        default=batches.DEFAULT_WINDOW,
        metavar="SECONDS",
        help="how long promotions into one repository and branch are gathered into one push "
        f"(default {batches.DEFAULT_WINDOW:g}s; 2, 2s or 500ms; 0: only what is already waiting)",
    )
    run.add_argument(
        "--unhealthy-after",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="/healthz fails when a due pass could not start for this long (default 300; "
        "must exceed --pass-deadline); it also fails when the event loop is blocked for 10 s",
    )
    _add_import_parser(sub)
    return parser


# Libraries that log request or protocol details at DEBUG: hpack's "Encoded header block" is the
# Authorization header, decodable to the Basic credentials. They never log below INFO.
QUIET_LOGGERS = ("hpack", "h2", "httpcore", "httpx", "dulwich", "urllib3", "kubernetes", "aiohttp")
LOG_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
              "error": logging.ERROR}  # fmt: skip
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RedactingFormatter(logging.Formatter):
    """Another formatter's output without known secrets and with control characters shown."""

    redactor = redact.Redactor()  # `promote` sets the Secrets' values once it has read them

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return sanitise.terminal(RedactingFormatter.redactor(self.inner.format(record)))


class JsonFormatter(logging.Formatter):
    """One JSON object per line (time, level, logger, message), for log collectors."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        ref = getattr(record, "k8s_ref", None)  # Kopf's per-object loggers name the object
        if isinstance(ref, dict) and ref.get("name"):
            entry["object"] = "/".join(str(ref[k]) for k in ("namespace", "name") if ref.get(k))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(
    verbose: int, environ: Mapping[str, str], logger: logging.Logger | None = None
) -> None:
    """-v/-vv, else IMAGEPROMOTER_LOG_LEVEL; IMAGEPROMOTER_LOG_FORMAT text (default) or json."""
    named = environ.get("IMAGEPROMOTER_LOG_LEVEL", "warning").lower()
    form = environ.get("IMAGEPROMOTER_LOG_FORMAT", "text").lower()
    if named not in LOG_LEVELS:
        raise ValueError(f"IMAGEPROMOTER_LOG_LEVEL is {named!r}; use {'|'.join(LOG_LEVELS)}")
    if form not in ("text", "json"):
        raise ValueError(f"IMAGEPROMOTER_LOG_FORMAT is {form!r}; use text or json")
    root = logger or logging.getLogger()
    level = logging.WARNING - 10 * min(verbose, 2) if verbose else LOG_LEVELS[named]
    root.setLevel(level)
    if not root.handlers:  # as logging.basicConfig: a host that configured logging keeps it
        handler = logging.StreamHandler()
        inner = JsonFormatter() if form == "json" else logging.Formatter(TEXT_FORMAT)
        handler.setFormatter(RedactingFormatter(inner))
        root.addHandler(handler)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(level, logging.INFO))


def _deadline_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pass-deadline",
        type=float,
        default=reconcile.DEFAULT_DEADLINE,
        metavar="SECONDS",
        help="total time one pass may wait on the registry, git and the Kubernetes API "
        f"(default {reconcile.DEFAULT_DEADLINE:g})",
    )


def _duration(text: str) -> float:
    """Seconds from `2`, `2s`, `1.5s` or `500ms` (argparse type)."""
    raw = text.strip().lower()
    scale = 1.0
    if raw.endswith("ms"):
        raw, scale = raw[:-2], 0.001
    elif raw.endswith("s"):
        raw = raw[:-1]
    try:
        seconds = float(raw) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration (2, 2s or 500ms)") from None
    if not seconds >= 0 or seconds == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: give a duration of 0 or more seconds")
    return seconds


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        configure_logging(args.verbose, os.environ)
    except ValueError as exc:
        print(f"imagepromoter: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.command == "promote":
        return _promote(args)
    if args.command == "import":
        return _import(args)
    return _run(args)


def _known_secrets(loaded: manifests.Manifests) -> redact.Redactor:
    """A redactor for every secret value in the Secret files (usernames and host keys aside)."""
    values: list[str] = []
    pairs: list[tuple[str, str]] = []
    for data in loaded.secrets.values():
        for key, value in data.items():
            if key not in {"username", "known_hosts", ".dockerconfigjson", ".dockercfg"}:
                values += redact.pieces(value)  # a dockerconfig's secrets: _docker_pairs
        if data.get("password"):
            pairs.append((data.get("username", "").rstrip("\r\n"), data["password"].rstrip("\r\n")))
        pairs += _docker_pairs(data)
    return redact.Redactor(values, pairs)


def _redacted(data: Any, secrets: redact.Redactor) -> Any:
    """`data` with every string (keys too) redacted, so the JSON made of it stays valid.

    Each distinct string is redacted once, and all of them in one search (`Redactor.many`):
    1,000 entries repeat the same keys, and hold a few thousand distinct strings. The walk knows
    only what `json.dumps` writes (dict, list, tuple): an isinstance check against the Mapping
    ABC cost more than all the redaction.
    """
    found: dict[str, None] = {}
    _strings(data, found)
    texts = list(found)
    done = dict(zip(texts, secrets.many(texts), strict=True))
    return _replaced(data, done)


def _strings(data: Any, found: dict[str, None]) -> None:
    if isinstance(data, str):
        found[data] = None
    elif isinstance(data, dict):
        for key, value in data.items():
            found[str(key)] = None
            _strings(value, found)
    elif isinstance(data, list | tuple):
        for value in data:
            _strings(value, found)


def _replaced(data: Any, done: Mapping[str, str]) -> Any:
    if isinstance(data, str):
        return done[data]
    if isinstance(data, dict):
        return {done[str(k)]: _replaced(v, done) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_replaced(v, done) for v in data]
    return data


def _docker_pairs(data: Mapping[str, str]) -> list[tuple[str, str]]:
    """(username, password) of every entry of a .dockerconfigjson, for redaction."""
    raw = data.get(".dockerconfigjson") or data.get(".dockercfg")
    try:
        doc = bounded.loads_json(raw) if raw else None
    except ValueError:
        return []
    auths = doc.get("auths", doc) if isinstance(doc, dict) else {}
    pairs: list[tuple[str, str]] = []
    for entry in auths.values() if isinstance(auths, dict) else ():
        if not isinstance(entry, dict):
            continue
        user, password = entry.get("username"), entry.get("password")
        if isinstance(user, str) and isinstance(password, str):
            pairs.append((user, password))
        auth = entry.get("auth")
        if isinstance(auth, str):
            pairs.append(("", auth))
            try:
                user_s, _, password_s = base64.b64decode(auth).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                continue
            pairs.append((user_s, password_s))
    return pairs


class FileSecrets:
    """Secrets read from manifest files, looked up like the cluster would (namespace, name)."""

    def __init__(self, secrets: Mapping[tuple[str, str], dict[str, str]]) -> None:
        self._secrets = secrets

    async def read(self, namespace: str, name: str) -> dict[str, str] | None:
        found = self._secrets.get((namespace, name))
        return dict(found) if found is not None else None


PROMOTE_GC_THRESHOLD = 20_000  # allocations between young collections in a `promote` run
OPERATOR_GC_THRESHOLD = 3_000  # the same in `imagepromoter run`


@contextlib.contextmanager
def _startup_heap_frozen(young: int) -> Iterator[None]:
    """Keep the garbage collector off the long-lived heap, and collect less often (restored
    after the run: tests call `main` in their own process).

    The modules (and, for `promote`, the parsed manifests) are built before the work starts and
    never freed, yet every full collection scans them again: `gc.freeze` sets them aside.
    Python's default of a young collection every 700 allocations also makes a full collection
    every hundred of them, and in the operator those scan the CRs' bodies and everything else
    that stays: with a thousand CRs, full collections were a large share of the operator's CPU
    (bench/scale.py measured with gc.callbacks; the figures are in issue 11's note). `young`
    allocations between young collections make them, and so the full ones, that much rarer, but
    leave cyclic garbage for longer: the operator's 3,000 halved its collections' time and kept
    its peak RSS where the default had it, where 10,000 cut more and peaked some 5 to 10 MB
    higher. A `promote` run is a batch that ends, so it waits longer still: the process exit
    frees its garbage anyway.
    """
    threshold = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(young, *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()


def _usage(problem: str) -> int:
    """Print one line for a usage error; exit code 2."""
    print(f"imagepromoter: {sanitise.one_line(problem, 1000)}", file=sys.stderr)
    return EXIT_USAGE


def _promote(args: argparse.Namespace) -> int:
    try:
        loaded = manifests.load(_read_sources([*args.files, *args.secrets]))
    except manifests.ManifestError as exc:
        return _usage(str(exc))
    except OSError as exc:
        return _usage(f"{exc.filename or 'input'}: cannot be read ({exc.strerror or exc})")
    if not loaded.promotions:
        return _usage("no ImagePromotion found in the files given")
    secrets = _known_secrets(loaded)
    RedactingFormatter.redactor = secrets
    with _startup_heap_frozen(PROMOTE_GC_THRESHOLD):
        results = asyncio.run(
            _promote_all(
                loaded,
                workdir=args.workdir or default_workdir(),
                dry_run=args.dry_run,
                deadline=args.pass_deadline,
            )
        )
    if args.output == "json":
        entries = _redacted([_json_entry(r) for r in results], secrets)  # strings, then JSON
        print(json.dumps(entries, indent=2))
    else:
        for resource, result in results:
            print(sanitise.terminal(secrets(_text_entry(resource, result, show_diff=args.dry_run))))
    return EXIT_READY if all(r.outcome.ready for _, r in results) else EXIT_NOT_READY


def _read_sources(paths: Sequence[str]) -> dict[str, bytes]:
    """Each file's bytes (at most the manifest limit and one byte, so a huge file is refused)."""
    limit = bounded.MANIFESTS.max_bytes + 1
    sources: dict[str, bytes] = {}
    for path in paths:
        if path == "-":
            sources[path] = sys.stdin.buffer.read(limit)
            continue
        with Path(path).open("rb") as handle:
            sources[path] = handle.read(limit)
    return sources


async def _promote_all(
    loaded: manifests.Manifests,
    *,
    workdir: Path,
    dry_run: bool,
    deadline: float | None = reconcile.DEFAULT_DEADLINE,
) -> list[tuple[reconcile.Resource, reconcile.Result]]:
    from imagepromoter.git import history, writer
    from imagepromoter.registry import client

    registry = scans.SharedScans(client.RegistryClient())  # CRs on one image: one scan
    started = time.time()  # every CR takes a scan made during this run: one per image
    git = writer.GitWriter(workdir)
    batched = batches.Batches(git, window=None)  # one push per repository and branch per wave
    secrets = FileSecrets(loaded.secrets)
    resources = [_resource(doc) for doc in loaded.promotions]
    # spec.from reads the other CRs given: each upstream runs before its followers
    upstreams = stages.Known({(r.namespace, r.name): _body(r) for r in resources})
    results: dict[int, reconcile.Result] = {}
    members = [(r.namespace, r.name, stages.upstream_of(_body(r))) for r in resources]

    async def one(resource: reconcile.Resource) -> reconcile.Result:
        try:
            return await reconcile.reconcile(
                resource,
                registry=registry,
                git=batched,
                secrets=secrets,
                now=_now,
                dry_run=dry_run,
                history=history.History(git),
                upstreams=upstreams,
                deadline=deadline,
                not_before=started,
            )
        finally:
            batched.leave()

    try:
        for wave in stages.waves(members):
            batched.participants(len(wave))
            done = await asyncio.gather(*(one(resources[i]) for i in wave))
            for i, result in zip(wave, done, strict=True):
                results[i] = result
                upstreams.update_status(resources[i].namespace, resources[i].name, result.status)
    finally:
        await registry.aclose()
    return [(resource, results[i]) for i, resource in enumerate(resources)]


def _body(resource: reconcile.Resource) -> dict[str, Any]:
    return {"spec": resource.spec, "status": resource.status}


def _resource(doc: Mapping[str, Any]) -> reconcile.Resource:
    meta = doc.get("metadata") or {}
    status, generation = doc.get("status"), meta.get("generation")
    annotations = meta.get("annotations")
    annotations = annotations if isinstance(annotations, Mapping) else {}
    return reconcile.Resource(
        name=str(meta.get("name")),
        namespace=str(meta.get("namespace") or manifests.DEFAULT_NAMESPACE),
        spec=doc.get("spec") or {},
        status=_previous_status(status),
        generation=generation if type(generation) is int else None,
        annotations={str(k): str(v) for k, v in annotations.items()},
    )


def _previous_status(raw: object) -> dict[str, Any]:
    """A manifest's `status` as given, with `conditions` made a list of mappings (or dropped)."""
    if not isinstance(raw, Mapping):
        return {}
    kept = {str(k): v for k, v in raw.items()}
    conditions = kept.pop("conditions", None)
    if isinstance(conditions, list):
        kept["conditions"] = [dict(c) for c in conditions if isinstance(c, Mapping)]
    for key in ("observedGeneration", "tagsScanned"):
        if key in kept and type(kept[key]) is not int:
            del kept[key]
    return kept


def _now() -> datetime:
    return datetime.now(UTC)


def _json_entry(pair: tuple[reconcile.Resource, reconcile.Result]) -> dict[str, Any]:
    resource, result = pair
    return {"name": resource.name, "namespace": resource.namespace, "status": result.status}


def _text_entry(resource: reconcile.Resource, result: reconcile.Result, *, show_diff: bool) -> str:
    outcome = result.outcome
    st = result.status
    lines = [
        f"{resource.namespace}/{resource.name}: Ready={'True' if outcome.ready else 'False'} "
        f"{outcome.reason}",
        f"  {sanitise.one_line(outcome.message)}",
    ]
    for label, key in (
        ("latest", "latestTag"),
        ("promoted", "promotedTag"),
        ("commit", "lastCommit"),
        ("waiting", "waitingUntil"),  # minAge or from.after: when it moves (docs/holds.md)
    ):
        if st.get(key):
            lines.append(f"  {label + ':':<10}{st[key]}")
    if show_diff and result.write is not None:
        for change in result.write.changeset.changes:
            lines.append(_diff(change.path, change.before, change.after))
    return "\n".join(lines)


def _diff(path: str, before: bytes, after: bytes) -> str:
    old = before.decode("utf-8", "replace").splitlines(keepends=True)
    new = after.decode("utf-8", "replace").splitlines(keepends=True)
    body = "".join(difflib.unified_diff(old, new, fromfile=f"a/{path}", tofile=f"b/{path}"))
    return body.rstrip("\n")


def _run(args: argparse.Namespace) -> int:
    from imagepromoter.git import writer
    from imagepromoter.kube import handlers, metrics
    from imagepromoter.registry import client

    def shared_registry() -> scans.SharedScans:
        """One client for the operator; CRs naming the same image share its scans."""
        return scans.SharedScans(client.RegistryClient(on_request=metrics.on_request))

    try:
        selector = shards.parse(args.selector)
        options = handlers.Options(
            webhook_port=args.webhook_port or None,
            webhook_ssl=_webhook_tls(args.webhook_tls_cert, args.webhook_tls_key),
            webhook_namespaces=tuple(args.namespace),
            pass_deadline=args.pass_deadline,
            start_after=args.unhealthy_after,
            batch_window=args.batch_window,
        )
    except ValueError as exc:
        print(f"imagepromoter: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from imagepromoter.git import history

    git_writer = writer.GitWriter(args.workdir or default_workdir())
    handlers.configure(
        registry_factory=shared_registry, git=git_writer, history=history.History(git_writer)
    )
    with _startup_heap_frozen(OPERATOR_GC_THRESHOLD):
        return handlers.run_operator(
            namespaces=args.namespace,
            metrics_port=args.metrics_port,
            liveness=args.liveness,
            peering=args.peering,
            standalone=args.standalone,
            options=options,
            selector=selector,
        )


def _webhook_tls(cert: Path | None, key: Path | None) -> ssl.SSLContext | None:
    """TLS for the webhook port from a certificate and key (a mounted Secret), or None."""
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise SystemExit("imagepromoter: --webhook-tls-cert and --webhook-tls-key go together")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context


# --- imagepromoter import ------------------------------------------------------------------


def _add_import_parser(sub: Any) -> None:
    command = sub.add_parser(
        "import",
        help="translate Flux or Argo CD Image Updater objects into ImagePromotion manifests",
        description="Read Flux ImageRepository/ImagePolicy/ImageUpdateAutomation/GitRepository "
        "objects, Argo CD Image Updater ImageUpdater CRs and annotated Argo CD Applications "
        "from FILEs and print equivalent ImagePromotion manifests, with a NOTE comment on "
        "every setting that does not map exactly. Exit 0: every translation is exact; "
        "3: at least one is not (read the NOTEs); 2: usage error.",
    )
    command.add_argument("files", nargs="+", metavar="FILE", help="YAML files ('-' for stdin)")
    command.add_argument("--output", "-o", type=Path, default=None, help="write here, not stdout")


def _import(args: argparse.Namespace) -> int:
    import yaml

    from imagepromoter.imports import render, translate

    docs: list[Any] = []
    try:
        for path, data in _read_sources(args.files).items():
            try:  # the manifest bounds of `promote` (size, depth, aliases)
                text = bounded.decode(data, path, max_bytes=bounded.MANIFESTS.max_bytes)
                docs += [d for d in bounded.yaml_documents(text, path) if isinstance(d, dict)]
            except (bounded.LimitError, yaml.YAMLError) as exc:
                print(f"imagepromoter: {path} is not YAML we read: {exc}", file=sys.stderr)
                return EXIT_USAGE
    except OSError as exc:
        print(f"imagepromoter: {exc}", file=sys.stderr)
        return EXIT_USAGE
    docs += [i for d in docs if d.get("kind") == "List" for i in d.get("items") or []]
    translations = translate.translate([d for d in docs if translate.relevant(d)])
    if not translations:
        print(
            "imagepromoter: no Flux ImagePolicy, Argo CD Image Updater ImageUpdater or annotated "
            "Application found in the files given",
            file=sys.stderr,
        )
        return EXIT_USAGE
    text = render(translations)
    if args.output is not None:
        args.output.write_text(text, "utf-8")
    else:
        sys.stdout.write(text)
    inexact = [t for t in translations if not t.exact]
    for t in inexact:
        print(f"imagepromoter: {t.namespace}/{t.name}: {len(t.notes)} setting(s) do not map "
              "exactly (see the NOTE comments)", file=sys.stderr)  # fmt: skip
    return EXIT_INEXACT if inexact else EXIT_READY
