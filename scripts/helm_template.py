"""`make chart`: `helm lint` and `helm template` of charts/imagepromoter without a helm binary.

Helm's own Go library through helm-python-sdk (a test extra). Prints the lint report to stderr
(exit 1 on errors) and the rendered CRDs and templates to stdout, as `helm template` would for
release `imagepromoter` in namespace `imagepromoter-system`. An optional argument names a values
file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import helm_python as helm
import yaml

CHART = Path(__file__).resolve().parent.parent / "charts" / "imagepromoter"


def main(argv: list[str]) -> int:
    values = yaml.safe_load(Path(argv[0]).read_text()) if argv else None
    report = helm.lint(CHART, values, strict=True, namespace="imagepromoter-system")
    print(json.dumps(report, indent=1), file=sys.stderr)
    if report["errors"]:
        return 1
    chart = helm.Chart.load(CHART)
    rendered = chart.render(
        values, name="imagepromoter", namespace="imagepromoter-system", is_install=True
    )
    files = [(crd["name"], crd["data"]) for crd in chart.crds] + sorted(rendered.items())
    for name, text in files:
        if name.endswith(".yaml") and text.strip():
            print(f"---\n# Source: {name}\n{text.strip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
