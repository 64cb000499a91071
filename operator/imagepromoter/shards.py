"""`imagepromoter run --selector`: which ImagePromotions one operator process (a shard) serves.

One process watches every ImagePromotion; past a few thousand, or to spread the work over
several pods, run one Deployment per shard, each with `--selector imagepromoter.dev/shard=N`
(docs/operator.md, "Sharding"). A selector is a set of label requirements joined by "and":
`key=value` (the label has that value) or `key` alone (the label is present, any value), the
forms Kopf's `labels=` handler filter can express. Kubernetes' label syntax is checked here, so
a typo is a usage error at start rather than a shard that silently serves nothing. Pure: the
Kopf side (kube/sharding.py) turns a `Selector` into handler filters.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

SHARD_LABEL = "imagepromoter.dev/shard"
_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?")
_PREFIX = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*")


class SelectorError(ValueError):
    """A `--selector` that is not a label requirement; the message names it and the form."""


@dataclass(frozen=True)
class Selector:
    """Label requirements: key -> value, or None for "the label is present"."""

    labels: Mapping[str, str | None] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.labels)

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        """Whether an object with these labels belongs to this shard."""
        have = labels or {}
        for key, value in self.labels.items():
            if key not in have or (value is not None and have[key] != value):
                return False
        return True

    def __str__(self) -> str:
        return ",".join(k if v is None else f"{k}={v}" for k, v in sorted(self.labels.items()))


def parse(texts: Iterable[str]) -> Selector:
    """`["imagepromoter.dev/shard=0", "team"]` -> Selector; raises SelectorError."""
    labels: dict[str, str | None] = {}
    for text in texts:
        for part in text.split(","):  # `a=1,b=2` as kubectl writes it, or the flag repeated
            key, value = _requirement(part.strip(), text)
            if key in labels and labels[key] != value:
                raise SelectorError(
                    f"--selector {text!r}: label {key} is required twice with different values; "
                    "an ImagePromotion has one value per label"
                )
            labels[key] = value
    return Selector(labels)


def _requirement(part: str, text: str) -> tuple[str, str | None]:
    if not part or "!" in part or part.count("=") > 1 or "==" in part:
        raise SelectorError(
            f"--selector {text!r} is not a label requirement; use LABEL=VALUE "
            "(e.g. imagepromoter.dev/shard=0) or LABEL alone for 'has the label'"
        )
    key, equals, value = part.partition("=")
    _check_key(key.strip(), text)
    if not equals:
        return key.strip(), None
    value = value.strip()
    if value and not _NAME.fullmatch(value):
        raise SelectorError(
            f"--selector {text!r}: {value!r} is not a label value (at most 63 letters, digits, "
            "'-', '_' or '.', starting and ending with a letter or digit)"
        )
    return key.strip(), value


def _check_key(key: str, text: str) -> None:
    prefix, slash, name = key.rpartition("/")
    if (slash and not (len(prefix) <= 253 and _PREFIX.fullmatch(prefix))) or not _NAME.fullmatch(
        name
    ):
        raise SelectorError(
            f"--selector {text!r}: {key!r} is not a label name (an optional DNS prefix and '/', "
            "then at most 63 letters, digits, '-', '_' or '.')"
        )
