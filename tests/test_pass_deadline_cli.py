"""`--pass-deadline` on the command line: `promote` against a registry that never answers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imagepromoter import cli
from tests.servers import git_http

pytestmark = pytest.mark.servers

CR = """\
apiVersion: imagepromoter.dev/v1alpha1
kind: ImagePromotion
metadata: {{name: app, namespace: gitops}}
spec:
  image: 127.0.0.1:{port}/myorg/app
  insecure: true
  tagRegex: '^\\d+\\.\\d+\\.\\d+$'
  git: {{url: 'http://127.0.0.1:1/gitops.git', branch: main}}
  targets: [{{path: values.yaml, key: image.tag}}]
"""


def test_promote_ends_at_the_pass_deadline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with git_http.StallingProxy(None, mode="silent") as silent:
        manifest = tmp_path / "cr.yaml"
        manifest.write_text(CR.format(port=silent.port))
        code = cli.main(
            ["promote", str(manifest), "--pass-deadline", "0.5", "-o", "json",
             "--workdir", str(tmp_path / "w")]
        )  # fmt: skip
        assert silent.accepted >= 1
    assert code == cli.EXIT_NOT_READY
    (entry,) = json.loads(capsys.readouterr().out)
    ready = entry["status"]["conditions"][0]
    assert ready["reason"] == "RegistryError"
    assert "deadline (0.5s)" in ready["message"] and f"127.0.0.1:{silent.port}" in ready["message"]


def test_run_refuses_an_unhealthy_after_below_the_deadline(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = cli.main(["run", "--pass-deadline", "120", "--unhealthy-after", "60"])
    assert code == cli.EXIT_USAGE
    assert "must exceed the pass deadline" in capsys.readouterr().err
