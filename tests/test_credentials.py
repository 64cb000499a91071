"""credentials: Secret data -> credential objects, with secrets kept out of repr and messages."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from imagepromoter import credentials, errors
from imagepromoter.credentials import BasicCredentials, SshCredentials

SECRET = "s3cr3t-Value"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def dockerconfig(auths: dict[str, Any], *, wrap: bool = True) -> dict[str, str]:
    return {".dockerconfigjson": json.dumps({"auths": auths} if wrap else auths)}


@pytest.mark.parametrize(
    ("data", "string_data", "expected"),
    [
        ({"a": b64("x")}, None, {"a": "x"}),
        (None, None, {}),
        ({}, {"b": "y"}, {"b": "y"}),
        ({"a": b64("x")}, {"a": "override"}, {"a": "override"}),
        ({"a": ""}, None, {"a": ""}),
        ({"a": None}, None, {"a": ""}),
        ({"a": b64("é ünï")}, None, {"a": "é ünï"}),
        ({"a": b64("x" * 100)[:60] + "\n" + b64("x" * 100)[60:] + "\n"}, None, {"a": "x" * 100}),
        ({"a": b64("line\n")}, None, {"a": "line\n"}),
        ({}, {"b": None}, {"b": ""}),
    ],
    ids=[
        "data",
        "nothing",
        "string-data",
        "string-data-wins",
        "empty",
        "null-is-empty",
        "utf8",
        "wrapped-base64",
        "newline-inside-value-kept",
        "null-string-data",
    ],
)
def test_decode_data(
    data: dict[str, Any] | None, string_data: dict[str, Any] | None, expected: dict[str, str]
) -> None:
    assert credentials.decode_data(data, string_data) == expected


@pytest.mark.parametrize(
    ("data", "string_data", "fragment"),
    [
        ({"password": "not base64!"}, None, "not valid base64"),
        ({"password": base64.b64encode(b"\xff\xfe").decode()}, None, "UTF-8"),
        ({"password": 12}, None, "not valid base64"),
        (None, {"password": 123456}, "quote the value"),
        (None, {"insecure": True}, "quote the value"),
    ],
    ids=["not-base64", "not-utf8", "number-in-data", "number-in-string-data", "bool"],
)
def test_decode_data_rejects(
    data: dict[str, Any] | None, string_data: dict[str, Any] | None, fragment: str
) -> None:
    with pytest.raises(errors.InvalidSpec) as caught:
        credentials.decode_data(data, string_data)
    assert fragment in str(caught.value)
    assert "123456" not in str(caught.value)


KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n"
HOSTS = "git.example.com ssh-ed25519 AAAAC3Nza\n"


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"username": "bot", "password": SECRET}, BasicCredentials("bot", SECRET)),
        ({"password": SECRET}, BasicCredentials("x-access-token", SECRET)),
        ({"username": "", "password": SECRET}, BasicCredentials("x-access-token", SECRET)),
        ({"username": "bot\n", "password": SECRET + "\n"}, BasicCredentials("bot", SECRET)),
        ({"username": "bot", "password": SECRET + "\r\n"}, BasicCredentials("bot", SECRET)),
        ({"username": "bot", "password": " pad "}, BasicCredentials("bot", " pad ")),
        ({"identity": KEY, "known_hosts": HOSTS}, SshCredentials(KEY, HOSTS)),
        ({"identity": KEY.rstrip("\n"), "known_hosts": HOSTS}, SshCredentials(KEY, HOSTS)),
        (
            {"identity": KEY, "known_hosts": HOSTS, "username": "u", "password": "p"},
            SshCredentials(KEY, HOSTS),
        ),
        (
            {"identity": "", "known_hosts": HOSTS, "username": "u", "password": "p"},
            BasicCredentials("u", "p"),
        ),
    ],
    ids=[
        "username-password",
        "token-only",
        "empty-username",
        "trailing-newlines-dropped",
        "crlf-dropped",
        "spaces-kept",
        "ssh",
        "key-gets-final-newline",
        "ssh-wins-over-basic",
        "empty-identity-is-absent",
    ],
)
def test_git_credentials(values: dict[str, str], expected: credentials.GitCredentials) -> None:
    assert credentials.git_credentials("gitops-write", values) == expected


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        ({}, "needs `username` and `password`"),
        ({"username": "bot"}, "needs `username` and `password`"),
        ({"username": "bot", "password": "\n"}, "needs `username` and `password`"),
        ({"identity": KEY}, "no `known_hosts`"),
        ({"identity": KEY, "known_hosts": "  "}, "no `known_hosts`"),
        ({"identity": "   ", "known_hosts": HOSTS}, "needs `username` and `password`"),
    ],
    ids=[
        "empty",
        "username-only",
        "newline-password",
        "key-without-known-hosts",
        "blank-known-hosts",
        "blank-identity",
    ],
)
def test_git_credentials_rejects(values: dict[str, str], fragment: str) -> None:
    with pytest.raises(errors.InvalidSpec) as caught:
        credentials.git_credentials("gitops-write", values)
    assert caught.value.field == "spec.git.secretRef"
    assert "gitops-write" in str(caught.value)
    assert fragment in str(caught.value)


@pytest.mark.parametrize(
    ("values", "host", "expected"),
    [
        (dockerconfig({"ghcr.io": {"auth": b64(f"u:{SECRET}")}}), "ghcr.io", ("u", SECRET)),
        (
            dockerconfig({"ghcr.io": {"username": "u", "password": SECRET}}),
            "ghcr.io",
            ("u", SECRET),
        ),
        (dockerconfig({"https://ghcr.io": {"auth": b64("u:p")}}), "ghcr.io", ("u", "p")),
        (dockerconfig({"GHCR.IO": {"auth": b64("u:p")}}), "ghcr.io", ("u", "p")),
        (dockerconfig({"ghcr.io": {"auth": b64("u:p")}}), "GHCR.io", ("u", "p")),
        (
            dockerconfig({"ghcr.io": {"auth": b64("u:p:with:colons")}}),
            "ghcr.io",
            ("u", "p:with:colons"),
        ),
        (
            dockerconfig({"https://index.docker.io/v1/": {"auth": b64("u:p")}}),
            "registry-1.docker.io",
            ("u", "p"),
        ),
        (dockerconfig({"docker.io": {"auth": b64("u:p")}}), "registry-1.docker.io", ("u", "p")),
        (
            dockerconfig({"http://localhost:5000/v2/": {"username": "u", "password": "p"}}),
            "localhost:5000",
            ("u", "p"),
        ),
        (
            {".dockercfg": json.dumps({"ghcr.io": {"auth": b64("u:p")}})},
            "ghcr.io",
            ("u", "p"),
        ),
        (
            dockerconfig({"quay.io": {"auth": b64("q:q")}, "ghcr.io": {"auth": b64("g:g")}}),
            "ghcr.io",
            ("g", "g"),
        ),
        (
            dockerconfig({"ghcr.io": {"username": "", "password": "", "auth": b64("u:p")}}),
            "ghcr.io",
            ("u", "p"),
        ),
        ({"username": "robot", "password": SECRET}, "ghcr.io", ("robot", SECRET)),
        ({"username": "robot\n", "password": SECRET + "\n"}, "ghcr.io", ("robot", SECRET)),
        (dockerconfig({"ghcr.io": {"auth": b64("u:p")}}), "quay.io", None),
        (dockerconfig({"ghcr.io.evil.example": {"auth": b64("u:p")}}), "ghcr.io", None),
        (dockerconfig({"ghcr.io": {"auth": b64("u:p")}}), "registry-1.docker.io", None),
        (dockerconfig({"ghcr.io": "junk"}), "ghcr.io", None),
        ({".dockerconfigjson": json.dumps({"auths": []})}, "ghcr.io", None),
        ({".dockerconfigjson": json.dumps(["x"])}, "ghcr.io", None),
    ],
    ids=[
        "auth-field",
        "username-password-fields",
        "https-key",
        "key-case-insensitive",
        "host-case-insensitive",
        "password-with-colons",
        "docker-hub-legacy-key",
        "docker-hub-short-key",
        "http-key-with-path",
        "legacy-dockercfg",
        "picks-the-right-host",
        "empty-fields-fall-back-to-auth",
        "plain-username-password",
        "plain-trailing-newlines",
        "no-entry-for-host-means-anonymous",
        "suffix-is-not-a-match",
        "other-host-not-docker-hub",
        "entry-not-a-mapping",
        "auths-not-a-mapping",
        "document-not-a-mapping",
    ],
)
def test_registry_credentials(
    values: dict[str, str], host: str, expected: tuple[str, str] | None
) -> None:
    got = credentials.registry_credentials("ghcr-pull", values, host)
    assert got == (None if expected is None else BasicCredentials(*expected))


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        ({".dockerconfigjson": "{not json"}, "not JSON"),
        ({".dockerconfigjson": ""}, "not JSON"),
        ({".dockerconfigjson": '{"auths": ' + "[" * 10_000 + "]" * 10_000 + "}"}, "nests deeper"),
        (dockerconfig({"ghcr.io": {}}), "neither `auth` nor"),
        (dockerconfig({"ghcr.io": {"auth": "!!notbase64"}}), "not base64 of username:password"),
        (dockerconfig({"ghcr.io": {"auth": b64(SECRET)}}), "not base64 of username:password"),
        (dockerconfig({"ghcr.io": {"identitytoken": SECRET}}), "identity token"),
        ({"username": "robot"}, "needs a .dockerconfigjson"),
        ({"password": SECRET}, "needs a .dockerconfigjson"),
        ({}, "needs a .dockerconfigjson"),
    ],
    ids=[
        "bad-json",
        "empty-json",
        "deep-json",
        "empty-entry",
        "auth-not-base64",
        "auth-without-colon",
        "identity-token",
        "username-only",
        "password-only",
        "empty-secret",
    ],
)
def test_registry_credentials_rejects(values: dict[str, str], fragment: str) -> None:
    with pytest.raises(errors.InvalidSpec) as caught:
        credentials.registry_credentials("ghcr-pull", values, "ghcr.io")
    assert caught.value.field == "spec.imagePullSecret"
    assert "ghcr-pull" in str(caught.value)
    assert fragment in str(caught.value)
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize(
    "creds",
    [BasicCredentials("bot", SECRET), SshCredentials(SECRET, HOSTS)],
    ids=["basic", "ssh"],
)
def test_repr_never_shows_the_secret(creds: object) -> None:
    assert SECRET not in repr(creds)
    assert SECRET not in str(creds)
    assert SECRET not in repr([creds])
