"""imagepromoter: promote new container image tags into GitOps repositories.

The public surface is small: `imagepromoter.policy` (choose a tag), `imagepromoter.values`
(edit a Helm values file byte-faithfully) and the `imagepromoter` command (`cli`). Everything
else is the operator's inside; see docs/architecture.md for the layers.
"""

__version__ = "0.1.0"
