"""The webhook parts of the deploy manifests: the Service, the port, the CRD installed."""

from __future__ import annotations

from tests.test_deploy_manifests import BY_KIND, CONTAINER, DEPLOYMENT, RUN_ARGS, one


def test_webhooks_service_reaches_the_receiver_port() -> None:
    service = one("Service", "imagepromoter-webhooks")
    [port] = service["spec"]["ports"]
    named = {p["name"]: p["containerPort"] for p in CONTAINER["ports"]}
    assert named[port["targetPort"]] == RUN_ARGS.webhook_port == 9443
    labels = DEPLOYMENT["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"] and service["spec"]["selector"].items() <= labels.items()
    assert RUN_ARGS.webhook_tls_cert is None, "plain HTTP behind an Ingress by default"


def test_the_image_webhook_crd_is_installed() -> None:
    names = {d["metadata"]["name"] for d in BY_KIND["CustomResourceDefinition"]}
    assert "imagewebhooks.imagepromoter.dev" in names
