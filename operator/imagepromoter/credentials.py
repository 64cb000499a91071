"""Credentials as the adapters need them, parsed from Secret data without any I/O.

The kube layer (or the CLI) fetches Secret `data`; these functions decode it into small frozen
objects whose `repr` never shows a secret, so a stray log line cannot leak one.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from imagepromoter import bounded, errors


@dataclass(frozen=True)
class BasicCredentials:
    """A username and password (or token); used for registries and HTTPS git."""

    username: str
    password: str = field(repr=False)

    def __repr__(self) -> str:
        return f"BasicCredentials(username={self.username!r}, password=<redacted>)"


@dataclass(frozen=True)
class SshCredentials:
    """A private key and the known_hosts lines that pin the server's host key."""

    identity: str = field(repr=False)
    known_hosts: str

    def __repr__(self) -> str:
        return "SshCredentials(identity=<redacted>, known_hosts=...)"


GitCredentials = BasicCredentials | SshCredentials

_DOCKER_HUB_KEYS = (
    "https://index.docker.io/v1/",
    "index.docker.io",
    "docker.io",
    "registry-1.docker.io",
    "https://registry-1.docker.io",
)


def decode_data(
    data: Mapping[str, str] | None, string_data: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Merge a Secret's base64 `data` and plain `stringData` into text values.

    As the API server does, line breaks inside base64 are ignored (manifests wrap long values)
    and a null value is empty; a `stringData` value that YAML read as a number or boolean is an
    error asking for quotes, since its text (`0123`, `1e3`) may already be lost.
    """
    out: dict[str, str] = {}
    for key, value in (data or {}).items():
        if value is None:
            out[key] = ""
            continue
        try:
            if not isinstance(value, str):
                raise TypeError
            out[key] = base64.b64decode(re.sub(r"[\r\n]", "", value), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError, ValueError, TypeError):
            raise errors.InvalidSpec(
                f"Secret key {key}", "is not valid base64-encoded UTF-8"
            ) from None
    for key, value in (string_data or {}).items():
        if value is None:
            out[key] = ""
        elif isinstance(value, str):
            out[key] = value
        else:
            raise errors.InvalidSpec(
                f"Secret key {key}", "in stringData must be a string; quote the value in YAML"
            )
    return out


def git_credentials(secret_name: str, values: Mapping[str, str]) -> GitCredentials:
    """`username`+`password` for HTTPS, or `identity`+`known_hosts` for SSH.

    Trailing line breaks are dropped from `username` and `password` (a token saved with `echo`
    and loaded with --from-file would otherwise fail to authenticate), and a private key gets the
    final newline OpenSSH requires.
    """
    identity = values.get("identity", "")
    if identity.strip():
        if not values.get("known_hosts", "").strip():
            raise errors.InvalidSpec(
                "spec.git.secretRef",
                f"Secret {secret_name} has `identity` but no `known_hosts`; add the server's host "
                "key line (ssh-keyscan output) so the host can be verified",
            )
        if not identity.endswith("\n"):
            identity += "\n"
        return SshCredentials(identity=identity, known_hosts=values["known_hosts"])
    password = values.get("password", "").rstrip("\r\n")
    if password:
        username = values.get("username", "").rstrip("\r\n")
        return BasicCredentials(username=username or "x-access-token", password=password)
    raise errors.InvalidSpec(
        "spec.git.secretRef",
        f"Secret {secret_name} needs `username` and `password` (a token is a password) for HTTPS, "
        "or `identity` and `known_hosts` for SSH",
    )


def registry_credentials(
    secret_name: str, values: Mapping[str, str], host: str
) -> BasicCredentials | None:
    """Credentials for `host` from a dockerconfigjson or username/password Secret.

    Returns None when a dockerconfigjson has no entry for the host (the image may be public).
    """
    if ".dockerconfigjson" in values or ".dockercfg" in values:
        raw = values.get(".dockerconfigjson") or values.get(".dockercfg", "")
        try:
            doc = bounded.loads_json(raw, max_bytes=1 << 20, max_depth=16)
        except ValueError as exc:
            limit = f" ({exc})" if isinstance(exc, bounded.LimitError) else ""
            raise errors.InvalidSpec(
                "spec.imagePullSecret",
                f"Secret {secret_name} has a .dockerconfigjson that is not JSON{limit}",
            ) from None
        auths = doc.get("auths", doc) if isinstance(doc, dict) else {}
        if not isinstance(auths, dict):
            return None
        entry = _find_auth_entry(auths, host)
        if entry is None:
            return None
        return _entry_credentials(secret_name, entry)
    username = values.get("username", "").rstrip("\r\n")
    password = values.get("password", "").rstrip("\r\n")
    if username and password:
        return BasicCredentials(username=username, password=password)
    raise errors.InvalidSpec(
        "spec.imagePullSecret",
        f"Secret {secret_name} needs a .dockerconfigjson (kubectl create secret docker-registry) "
        "or `username` and `password` keys",
    )


def _find_auth_entry(auths: Mapping[str, object], host: str) -> Mapping[str, object] | None:
    host = host.lower()
    candidates = _DOCKER_HUB_KEYS if host in _DOCKER_HUB_KEYS else (host,)
    for key, entry in auths.items():
        lowered = key.lower()
        normal = lowered.removeprefix("https://").removeprefix("http://").split("/", 1)[0]
        if (lowered in candidates or normal in candidates) and isinstance(entry, Mapping):
            return entry
    return None


def _entry_credentials(secret_name: str, entry: Mapping[str, object]) -> BasicCredentials:
    user, password = entry.get("username"), entry.get("password")
    if isinstance(user, str) and isinstance(password, str) and user and password:
        return BasicCredentials(username=user, password=password)
    auth = entry.get("auth")
    if isinstance(auth, str) and auth:
        try:
            user_s, _, password_s = base64.b64decode(auth, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            user_s = password_s = ""
        if user_s and password_s:
            return BasicCredentials(username=user_s, password=password_s)
        raise errors.InvalidSpec(
            "spec.imagePullSecret",
            f"Secret {secret_name}: the `auth` of the entry for this registry is not "
            "base64 of username:password; recreate it with kubectl create secret docker-registry",
        )
    if entry.get("identitytoken"):
        raise errors.InvalidSpec(
            "spec.imagePullSecret",
            f"Secret {secret_name}: the entry for this registry holds only an identity token "
            "(docker login with OAuth), which imagepromoter cannot use; give it a username and "
            "password or access token",
        )
    raise errors.InvalidSpec(
        "spec.imagePullSecret",
        f"Secret {secret_name}: the entry for this registry has neither `auth` "
        "nor `username`/`password`",
    )
