"""reference.parse: `spec.image` as `docker pull` reads it, without a tag or digest."""

from __future__ import annotations

import pytest

from imagepromoter import errors, reference


@pytest.mark.parametrize(
    ("image", "host", "repository"),
    [
        ("nginx", "registry-1.docker.io", "library/nginx"),
        ("library/nginx", "registry-1.docker.io", "library/nginx"),
        ("bitnami/redis", "registry-1.docker.io", "bitnami/redis"),
        ("docker.io/nginx", "registry-1.docker.io", "library/nginx"),
        ("docker.io/bitnami/redis", "registry-1.docker.io", "bitnami/redis"),
        ("index.docker.io/library/nginx", "registry-1.docker.io", "library/nginx"),
        ("registry-1.docker.io/bitnami/redis", "registry-1.docker.io", "bitnami/redis"),
        ("DOCKER.IO/nginx", "registry-1.docker.io", "library/nginx"),
        ("ghcr.io/myorg/myapp", "ghcr.io", "myorg/myapp"),
        ("ghcr.io/myorg/team/sub/app", "ghcr.io", "myorg/team/sub/app"),
        ("quay.io/prometheus/node-exporter", "quay.io", "prometheus/node-exporter"),
        ("localhost/app", "localhost", "app"),
        ("localhost:5000/a/b", "localhost:5000", "a/b"),
        ("registry.local:5000/app", "registry.local:5000", "app"),
        ("10.0.0.1:5000/app", "10.0.0.1:5000", "app"),
        ("[::1]:5000/app", "[::1]:5000", "app"),
        ("  ghcr.io/org/app \n", "ghcr.io", "org/app"),
        ("ghcr.io/org/a__b", "ghcr.io", "org/a__b"),
        ("ghcr.io/org/a--b", "ghcr.io", "org/a--b"),
        ("ghcr.io/org/a.b_c-d", "ghcr.io", "org/a.b_c-d"),
        ("my-registry.example.com/app", "my-registry.example.com", "app"),
        ("ghcr.io", "registry-1.docker.io", "library/ghcr.io"),
    ],
    ids=[
        "docker-hub-official",
        "docker-hub-library",
        "docker-hub-user",
        "docker-io-official",
        "docker-io-user",
        "index-docker-io",
        "registry-1-docker-io",
        "docker-io-uppercase-host",
        "ghcr",
        "deep-path",
        "quay",
        "localhost-no-port",
        "localhost-port",
        "host-port",
        "ipv4-port",
        "ipv6-port",
        "whitespace-stripped",
        "double-underscore",
        "dashes",
        "mixed-separators",
        "dashed-host",
        "dotted-name-alone-is-docker-hub-like-docker",
    ],
)
def test_parse(image: str, host: str, repository: str) -> None:
    parsed = reference.parse(image)
    assert parsed == reference.ImageReference(host, repository)
    assert str(parsed) == f"{host}/{repository}"
    assert parsed.is_docker_hub == (host == "registry-1.docker.io")


@pytest.mark.parametrize(
    ("image", "fragment"),
    [
        ("", "must name an image"),
        ("   ", "must name an image"),
        ("https://ghcr.io/org/app", "URL scheme"),
        ("ghcr.io/org/app@sha256:" + "a" * 64, "pins a digest"),
        ("ghcr.io/org/app:1.0", "write 'ghcr.io/org/app'"),
        ("nginx:latest", "write 'nginx'"),
        ("docker.io/nginx:1", "write 'nginx'"),
        ("localhost:5000/app:v1", "write 'localhost:5000/app'"),
        ("localhost:5000", "names a registry but no repository"),
        ("ghcr.io:443", "names a registry but no repository"),
        ("ghcr.io/", "empty path component"),
        ("ghcr.io//app", "empty path component"),
        ("ghcr.io/org/app/", "empty path component"),
        ("ghcr.io:abc/app", "not a valid registry host"),
        ("-bad.io/app", "not a valid registry host"),
        ("bad-.io/app", "not a valid registry host"),
        ("my_registry:5000/app", "not a valid registry host"),
        ("ghcr.io/Org/app", "'Org'"),
        ("ghcr.io/org/a___b", "not a valid repository name component"),
        ("ghcr.io/org/a.-b", "not a valid repository name component"),
        ("ghcr.io/org/-app", "not a valid repository name component"),
        ("ghcr.io/org/app_", "not a valid repository name component"),
        ("ghcr.io/org/my app", "not a valid repository name component"),
        ("ghcr.io/" + "a" * 260, "longer than 255"),
    ],
    ids=[
        "empty",
        "blank",
        "scheme",
        "digest",
        "tag",
        "docker-hub-tag",
        "docker-io-tag",
        "port-and-tag",
        "registry-only-with-port",
        "registry-only-dotted-with-port",
        "trailing-slash-after-host",
        "double-slash",
        "trailing-slash",
        "non-numeric-port",
        "host-leading-dash",
        "host-trailing-dash",
        "host-underscore",
        "uppercase-component",
        "triple-underscore",
        "dot-dash",
        "leading-dash",
        "trailing-underscore",
        "space",
        "too-long",
    ],
)
def test_parse_rejects_with_a_fix(image: str, fragment: str) -> None:
    with pytest.raises(errors.InvalidSpec) as caught:
        reference.parse(image)
    assert caught.value.field == "spec.image"
    assert fragment in caught.value.problem


def test_registry_access_defaults() -> None:
    access = reference.RegistryAccess(image=reference.parse("ghcr.io/org/app"))
    assert access.credentials is None and access.secret_name is None and not access.insecure
