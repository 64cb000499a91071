r"""Key paths in a parsed values file: find the one scalar a key names, or say why not.

A key is dotted segments (`image.tag`); a numeric segment indexes a list (`containers.0.image`);
`\.` is a dot inside a key and `\\` a backslash; `[field=value]` picks the one list item whose
field holds that value (grammar in `_selectors`; a leading one picks the document). `locate`
walks the nodes `_yamlscan` found and applies the rules that keep an edit to one path of the data:

- in a multi-document file the key must exist in exactly one document;
- the path may not run through or end at an alias (`*name`), and may not pass a key that is
  written twice in one mapping;
- a key that exists only through a merge key (`<<: *base`) is not found here: it lives in the
  anchored mapping, and the message says which;
- `refuse_shared` (for edits, not reads): the target, or a collection holding it, may not carry
  an anchor that a later alias copies.

Every problem is a TargetError that names the key, says what was found instead, and suggests
the nearest existing key (difflib over every key path that leads to a single value). Messages
name keys and line numbers only, never a value from the file: values files can hold secrets.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from dataclasses import dataclass

from imagepromoter import _selectors as selectors
from imagepromoter import _yamlscan as yamlscan
from imagepromoter import errors


def split_key(key: str) -> tuple[selectors.Step, ...]:
    r"""Split a key path into names and `[field=value]` selectors; TargetError if malformed."""
    return selectors.parse(key)


def join_key(segments: tuple[selectors.Step, ...] | list[selectors.Step]) -> str:
    r"""The text of key segments, escaping `\`, `.`, `[` and `]` inside names."""
    return selectors.render(segments)


@dataclass(frozen=True)
class Found:
    """The node a key path leads to, the nodes above it and the path's segments."""

    node: yamlscan.Node
    chain: tuple[yamlscan.Node, ...]  # from the document root down to the node's parent
    segments: tuple[selectors.Step, ...]
    document: int

    @property
    def in_flow(self) -> bool:
        """True when the node sits inside a flow mapping or sequence."""
        parent = self.chain[-1] if self.chain else None
        return isinstance(parent, yamlscan.Mapping | yamlscan.Sequence) and parent.flow


@dataclass(frozen=True)
class _Walk:
    """How far a key path got in one document: found, or the reason it stopped."""

    depth: int
    found: Found | None
    problem: str


def locate(stream: yamlscan.Stream, key: str, *, document: int | None = None) -> Found:
    """The scalar at `key`, following the multi-document rule (or in `document` only)."""
    segments = split_key(key)
    if not stream.documents:
        raise errors.TargetError(f"key {key} not found: the file holds no YAML document")
    walks = [
        _walk(stream, root, segments, key, n)
        for n, root in enumerate(stream.documents)
        if document is None or n == document
    ]
    complete = [n for n, w in enumerate(walks) if w.depth == len(segments)]
    if len(complete) > 1:
        numbers = " and ".join(str(n + 1) for n in complete)
        raise errors.TargetError(
            f"key {key} is in documents {numbers} of this multi-document file, but a key must "
            "name exactly one value: split the file, or use a regex target to edit several"
        )
    best = walks[complete[0]] if complete else max(walks, key=lambda w: w.depth)
    if best.problem:
        raise errors.TargetError(best.problem)
    assert best.found is not None
    return best.found


def _walk(
    stream: yamlscan.Stream,
    root: yamlscan.Node,
    segments: tuple[selectors.Step, ...],
    key: str,
    document: int,
) -> _Walk:
    """Follow `segments` down from a document root."""
    node, chain, line = root, [], 0
    for depth, segment in enumerate(segments):
        where = join_key(segments[:depth]) if depth else "the document root"
        problem = ""
        child: yamlscan.Node | None = None
        if isinstance(segment, selectors.Select):
            if depth and isinstance(segments[depth - 1], selectors.Select):
                continue  # consumed with the selector before it: [a=1][b=2] is one choice
            picked = _pick(stream, node, segments, depth, where, key, document)
            if isinstance(picked, str):
                return _Walk(depth, None, picked)
            child, line = picked, picked.line
        elif isinstance(node, yamlscan.Mapping):
            matches = [
                (k, v)
                for k, v in node.pairs
                if isinstance(k, yamlscan.Scalar) and k.value == segment
            ]
            if len(matches) > 1:
                lines = " and ".join(str(k.line) for k, _ in matches)
                return _Walk(
                    depth + 1,
                    None,
                    f"key {key} is ambiguous: {where} has the key {segment!r} more than once "
                    f"(lines {lines}); remove the duplicate from the file",
                )
            if matches:
                child, line = matches[0][1], matches[0][0].line
            elif any(isinstance(k, yamlscan.Scalar) and k.value == "<<" for k, _ in node.pairs):
                return _Walk(
                    depth,
                    None,
                    f"key {key} not found: {where} (line {line or node.line}) has no key "
                    f"{segment!r} of its own, and any it gets from a merge key (<<) lives in the "
                    f"anchored mapping it merges{_anchor_hint(stream, node)}: edit the key there, "
                    f"or add {segment!r} under {where}",
                )
            else:
                problem = f"key {key} not found: {where} has no key {segment!r}"
        elif isinstance(node, yamlscan.Sequence):
            count = len(node.items)
            if segment.isdigit() and segment.isascii() and int(segment) < count:
                child = node.items[int(segment)]
                line = getattr(child, "line", node.line)
            else:
                span = f"0 to {count - 1}" if count else "none, it is empty"
                problem = (
                    f"key {key} not found: {where} is a list (line {node.line}), so {segment!r} "
                    f"must be an item index ({span})"
                )
        elif isinstance(node, yamlscan.Alias):
            return _Walk(depth, None, _alias_problem(stream, node, key, where, segments[depth:]))
        else:
            problem = (
                f"key {key} not found: {where} holds a single value (line {node.line}), not a "
                f"mapping or list, so it has no {segment!r}"
            )
        if child is None:
            return _Walk(
                depth,
                None,
                f"{problem}{_nearest(stream, key)}; fix the target's key or add it to the file",
            )
        chain.append(node)
        node = child
    found = Found(node, tuple(chain), segments, document)
    if isinstance(node, yamlscan.Scalar):
        return _Walk(len(segments), found, "")
    if isinstance(node, yamlscan.Alias):
        return _Walk(len(segments), None, _alias_problem(stream, node, key, key, ()))
    if isinstance(node, yamlscan.Mapping):
        what, hint = f"a mapping (line {line})", "name one of its values"
    else:
        what = f"a list of {len(node.items)} item(s) (line {line})"
        hint = "add an item index"
    return _Walk(
        len(segments),
        None,
        f"key {key} holds {what}, not a single value: {hint}{_nearest(stream, key, under=key)}",
    )


def _alias_problem(
    stream: yamlscan.Stream,
    alias: yamlscan.Alias,
    key: str,
    where: str,
    rest: tuple[selectors.Step, ...],
) -> str:
    """The message for a key that runs into `*name`."""
    anchored = _anchor_paths(stream).get(alias.name)
    there = f": {join_key([*split_key(anchored), *rest])}" if anchored else ""
    return (
        f"key {key}: {where} is an alias (*{alias.name}, line {alias.line}) of a value anchored "
        "elsewhere; editing through it would change every copy. Edit the anchored value "
        f"instead{there}"
    )


def _anchor_hint(stream: yamlscan.Stream, mapping: yamlscan.Mapping) -> str:
    """` (path)` of the anchored mappings that `mapping` merges, when they can be named."""
    names: list[str] = []
    for k, v in mapping.pairs:
        if isinstance(k, yamlscan.Scalar) and k.value == "<<":
            items = v.items if isinstance(v, yamlscan.Sequence) else (v,)
            names += [i.name for i in items if isinstance(i, yamlscan.Alias)]
    paths = _anchor_paths(stream)
    known = [paths[n] for n in names if n in paths]
    return f" ({', '.join(known)})" if known else ""


def refuse_shared(stream: yamlscan.Stream, found: Found, key: str) -> None:
    """Raise when the target, or a collection holding it, is anchored and copied by an alias."""
    for node in (*found.chain, found.node):
        anchor = getattr(node, "anchor", None)
        if anchor is None:
            continue
        assert isinstance(node, yamlscan.Scalar | yamlscan.Mapping | yamlscan.Sequence)
        for index in range(node.event + 1, len(stream.events)):
            event = stream.events[index]
            if event[0] in {"S", "M", "Q"} and event[1] == anchor:
                break  # the anchor is redefined; later aliases refer to the new one
            if event[0] == "A" and event[1] == anchor:
                line = _alias_lines(stream).get(index, 0)
                what = (
                    "its value"
                    if node is found.node
                    else f"a collection holding it (line {node.line})"
                )
                raise errors.TargetError(
                    f"key {key}: {what} is anchored (&{anchor}) and copied by the alias *{anchor} "
                    f"at line {line}, so changing it would change that copy too; remove the "
                    "anchor/alias pair from the file, or use a regex target if every copy "
                    "should change"
                )


def _nearest(stream: yamlscan.Stream, key: str, *, under: str | None = None) -> str:
    """`; the nearest existing key is X` (or an example key under `under`), or ''."""
    leaves = list(_leaf_paths(stream))
    if under is not None:
        inside = [leaf for leaf in leaves if leaf.startswith(f"{under}.")]
        return f", e.g. {inside[0]}" if inside else ""
    close = difflib.get_close_matches(key, leaves, n=1, cutoff=0.6)
    if close:
        return f"; the nearest existing key is {close[0]}"
    if leaves:
        return f"; no similar key exists (the file has e.g. {', '.join(leaves[:3])})"
    return "; the file has no keys with single values"


def _leaf_paths(stream: yamlscan.Stream) -> Iterator[str]:
    """Every key path in the file that leads to a scalar, in file order, without duplicates."""
    seen: set[str] = set()
    for root in stream.documents:
        for path, node in descend(root, ()):
            if (
                isinstance(node, yamlscan.Scalar)
                and path
                and (joined := join_key(path)) not in seen
            ):
                seen.add(joined)
                yield joined


def _anchor_paths(stream: yamlscan.Stream) -> dict[str, str]:
    """Anchor name -> key path of the node that defines it (the first definition)."""
    paths: dict[str, str] = {}
    for root in stream.documents:
        for path, node in descend(root, ()):
            anchor = getattr(node, "anchor", None)
            if anchor is not None and path:
                paths.setdefault(anchor, join_key(path))
    return paths


def _alias_lines(stream: yamlscan.Stream) -> dict[int, int]:
    """Event index -> line of every alias."""
    return {
        node.event: node.line
        for root in stream.documents
        for _, node in descend(root, ())
        if isinstance(node, yamlscan.Alias)
    }


def descend(
    node: yamlscan.Node, path: tuple[str, ...]
) -> Iterator[tuple[tuple[str, ...], yamlscan.Node]]:
    """Every node below `node` (itself included) with its key path; skips non-scalar keys."""
    yield path, node
    if isinstance(node, yamlscan.Mapping):
        for k, v in node.pairs:
            if isinstance(k, yamlscan.Scalar):  # a collection as a key cannot be named by a path
                yield from descend(v, (*path, k.value))
    elif isinstance(node, yamlscan.Sequence):
        for index, item in enumerate(node.items):
            yield from descend(item, (*path, str(index)))


# --- list selectors: [field=value] ------------------------------------------------------------


def _pick(
    stream: yamlscan.Stream,
    node: yamlscan.Node,
    segments: tuple[selectors.Step, ...],
    depth: int,
    where: str,
    key: str,
    document: int,
) -> yamlscan.Mapping | str:
    """The one item the selectors at `depth` (and right after it) choose, or the message why not.

    On a list they choose among its items; on a document root that is a mapping, they test the
    document itself, so `[kind=Deployment].spec...` picks the document of a multi-document file.
    """
    chosen: list[selectors.Select] = []
    for step in segments[depth:]:
        if not isinstance(step, selectors.Select):
            break
        chosen.append(step)
    wanted = "".join(str(s) for s in chosen)
    if isinstance(node, yamlscan.Mapping) and depth == 0:
        if all(_holds(node, s) for s in chosen):
            return node
        roots = stream.documents
        found = _described(roots, chosen[0].field)
        what = "the document" if len(roots) == 1 else f"none of the {len(roots)} documents"
        return (
            f"key {key} not found: {what} matches {wanted} (documents have "
            f"{selectors.render(chosen[0].field)}: {found}); fix the selector or the file"
        )
    if isinstance(node, yamlscan.Alias):
        return _alias_problem(stream, node, key, where, segments[depth:])
    if not isinstance(node, yamlscan.Sequence):
        kind = "a mapping" if isinstance(node, yamlscan.Mapping) else "a single value"
        return (
            f"key {key} not found: {where} holds {kind} (line {node.line}), not a list, so "
            f"{wanted} has no items to choose from; a selector picks an item of a list"
        )
    matches = [
        (index, item)
        for index, item in enumerate(node.items)
        if isinstance(item, yamlscan.Mapping) and all(_holds(item, s) for s in chosen)
    ]
    if len(matches) == 1:
        return matches[0][1]
    if matches:
        items = " and ".join(str(index) for index, _ in matches)
        lines = " and ".join(str(item.line) for _, item in matches)
        return (
            f"key {key} is ambiguous: {where} (line {node.line}) has {len(matches)} items "
            f"matching {wanted} (items {items}, lines {lines}); a selector must pick exactly "
            "one: add another [field=value] or make the values unique in the file"
        )
    found = _described(node.items, chosen[0].field)
    return (
        f"key {key} not found: {where} (line {node.line}) has no item matching {wanted}; its "
        f"{len(node.items)} item(s) have {selectors.render(chosen[0].field)}: {found}; fix the "
        "selector or the file"
    )


def _holds(item: yamlscan.Mapping, select: selectors.Select) -> bool:
    """True when `item`'s dotted field is a scalar whose text is the selector's value."""
    scalar = _field(item, select.field)
    return scalar is not None and scalar.value == select.value


def _field(item: yamlscan.Node, field: tuple[str, ...]) -> yamlscan.Scalar | None:
    """The scalar at the dotted `field` inside `item`, or None."""
    node: yamlscan.Node = item
    for part in field:
        if not isinstance(node, yamlscan.Mapping):
            return None
        values = [v for k, v in node.pairs if isinstance(k, yamlscan.Scalar) and k.value == part]
        if not values:
            return None
        node = values[0]
    return node if isinstance(node, yamlscan.Scalar) else None


def _described(items: tuple[yamlscan.Node, ...], field: tuple[str, ...]) -> str:
    """`'web', 'sidecar' (1 without it)`: the values of `field` the items hold, for messages.

    The one place a message shows values from the file: a selector's field names items (a
    container's name, a document's kind), and the user needs the names to fix the selector.
    """
    shown: list[str] = []
    missing = 0
    for item in items:
        scalar = _field(item, field)
        if scalar is None:
            missing += 1
        elif len(shown) < 10:
            text = scalar.value if len(scalar.value) <= 60 else scalar.value[:57] + "..."
            shown.append(repr(text))
    more = len(items) - missing - len(shown)
    parts = [", ".join(shown)] if shown else []
    if more:
        parts.append(f"and {more} more")
    if missing:
        parts.append(f"({missing} without it)")
    return " ".join(parts) if parts else "none"
