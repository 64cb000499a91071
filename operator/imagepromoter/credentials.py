"""Credentials as the adapters need them, parsed from Secret data without any I/O.

The kube layer (or the CLI) fetches Secret `data`; these functions decode it into small frozen
objects whose `repr` never shows a secret, so a stray log line cannot leak one.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from imagepromoter import errors


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
    """Merge a Secret's base64 `data` and plain `stringData` into text values."""
    out: dict[str, str] = {}
    for key, value in (data or {}).items():
        try:
            out[key] = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise errors.InvalidSpec(
                f"Secret key {key}", "is not valid base64-encoded UTF-8"
            ) from None
    out.update(string_data or {})
    return out


def git_credentials(secret_name: str, values: Mapping[str, str]) -> GitCredentials:
    """`username`+`password` for HTTPS, or `identity`+`known_hosts` for SSH."""
    if "identity" in values:
        if not values.get("known_hosts", "").strip():
            raise errors.InvalidSpec(
                "spec.git.secretRef",
                f"Secret {secret_name} has `identity` but no `known_hosts`; add the server's host "
                "key line (ssh-keyscan output) so the host can be verified",
            )
        return SshCredentials(identity=values["identity"], known_hosts=values["known_hosts"])
    if values.get("password"):
        return BasicCredentials(
            username=values.get("username") or "x-access-token", password=values["password"]
        )
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
            doc = json.loads(raw)
        except json.JSONDecodeError:
            raise errors.InvalidSpec(
                "spec.imagePullSecret",
                f"Secret {secret_name} has a .dockerconfigjson that is not JSON",
            ) from None
        auths = doc.get("auths", doc) if isinstance(doc, dict) else {}
        if not isinstance(auths, dict):
            return None
        entry = _find_auth_entry(auths, host)
        if entry is None:
            return None
        return _entry_credentials(secret_name, entry)
    if values.get("username") and values.get("password"):
        return BasicCredentials(username=values["username"], password=values["password"])
    raise errors.InvalidSpec(
        "spec.imagePullSecret",
        f"Secret {secret_name} needs a .dockerconfigjson (kubectl create secret docker-registry) "
        "or `username` and `password` keys",
    )


def _find_auth_entry(auths: Mapping[str, object], host: str) -> Mapping[str, object] | None:
    candidates = _DOCKER_HUB_KEYS if host in _DOCKER_HUB_KEYS else (host,)
    for key, entry in auths.items():
        normal = key.removeprefix("https://").removeprefix("http://").split("/", 1)[0]
        if (key in candidates or normal in candidates) and isinstance(entry, Mapping):
            return entry
    return None


def _entry_credentials(secret_name: str, entry: Mapping[str, object]) -> BasicCredentials:
    user, password = entry.get("username"), entry.get("password")
    if isinstance(user, str) and isinstance(password, str) and user and password:
        return BasicCredentials(username=user, password=password)
    auth = entry.get("auth")
    if isinstance(auth, str):
        try:
            user_s, _, password_s = base64.b64decode(auth).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            user_s = password_s = ""
        if user_s and password_s:
            return BasicCredentials(username=user_s, password=password_s)
    raise errors.InvalidSpec(
        "spec.imagePullSecret",
        f"Secret {secret_name}: the entry for this registry has neither `auth` "
        "nor `username`/`password`",
    )
