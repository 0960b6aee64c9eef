"""Local recoding for k-anonymity: top-down partitioning over generalisation hierarchies.

This is Mondrian (LeFevre, DeWitt and Ramakrishnan, "Mondrian multidimensional k-anonymity",
ICDE 2006) in the form ARX and sdcMicro use for categorical data: every quasi-identifier has a
hierarchy (period: all -> year -> quarter -> month), all records start in one partition at the
top of every hierarchy, and a partition is split one step down one hierarchy whenever every part
keeps at least k records. Parts are split again until nothing more can be split; each final
partition is one equivalence class, every record in it shown at the partition's levels. So
detail is kept where the data are dense (a busy area's months) and given up only where they are
sparse (a quiet area's postcode districts), instead of coarsening a field for every row.

Which split first: the one with the highest weight for the step it takes, scaled by the share of
the partition it specialises. The weights say what the file is for (``extract.HIERARCHIES``).

Strictly, a split needs every child to hold k records. Two relaxations keep more detail:

- **Blocks first, small ones sent up.** In a first phase only the fields the file is mostly
  for are split (for the extract: area, then year, then quarter). A child smaller than k is not
  forced on a sibling: it goes back up the tree, and the small children that meet at a node
  become one block shown at that node's levels (an area's quiet quarters of one year together
  as that year; what is left of an area as the area with period ``*``). Fewer than k left at the
  very top join the block that loses least by taking them in. Big children keep their detail.
- **Then the rest of the fields, within each block**, with the children smaller than k kept
  together as one "rest" part at the parent's level (the relaxed Mondrian of the same paper);
  the rest must hold k records (if it does not, the smallest child big enough joins it), and it
  is never split again on that field. A step that all of a part's records share is always taken:
  it costs nothing and reveals nothing the part does not already share.

Ties are broken by label, never by input order, so the same data give the same file.

Pure functions over plain tuples: no database and no Flask, so they are tested on their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# One record's value for one quasi-identifier at every level, coarsest first:
# ("*", "2025", "2025-Q3", "2025-08"). Every record's tuple for a field has the same length.
Path = tuple[str, ...]


@dataclass(frozen=True)
class EquivalenceClass:
    """Records shown alike: ``members`` are indexes into the input, ``depths`` the level of each
    quasi-identifier (0 = the top, "*")."""

    members: tuple[int, ...]
    depths: tuple[int, ...]

    def __repr__(self) -> str:
        return f"<EquivalenceClass of {len(self.members)} at {self.depths}>"


def _plan(
    groups: dict[str, list[int]], k: int, *, pooling: bool
) -> list[tuple[list[list[int]], list[int], bool]]:
    """The ways to split a partition into the given children: (parts of k or more, the rest,
    whether the rest goes to the pool). Empty if no split keeps k in every part. Ties are broken
    by label, so the same data always give the same file (two extracts of the same request must
    not differ, or they could be intersected)."""
    ordered = sorted(groups.items(), key=lambda kv: (len(kv[1]), kv[0]))
    big = [members for _, members in ordered if len(members) >= k]
    rest = [i for _, members in ordered if len(members) < k for i in members]
    if not big:
        return []
    if not rest or len(rest) >= k:
        return [(big, rest, False)] if len(big) + (1 if rest else 0) >= 2 else []
    if pooling:  # the small ones go back up, to meet others like them higher in the tree
        return [(big, rest, True)]
    if len(big) >= 2:  # the smallest child big enough joins the small ones
        return [(big[1:], big[0] + rest, False)]
    return []


@dataclass(frozen=True)
class _Setup:
    paths: Sequence[Sequence[Path]]
    weights: Sequence[Sequence[float]]
    k: int
    limits: Sequence[int]  # how deep each field may go in this phase
    pooling: bool


def _free_steps(members: list[int], depths: list[int], setup: _Setup) -> list[int]:
    """Steps that every member shares cost nothing (and reveal nothing the class does not
    already share): take them all, on every field, within the phase's limits."""
    depths = list(depths)
    moved = True
    while moved:
        moved = False
        for q, limit in enumerate(setup.limits):
            if depths[q] < limit:
                first = setup.paths[members[0]][q][depths[q] + 1]
                if all(setup.paths[i][q][depths[q] + 1] == first for i in members):
                    depths[q] += 1
                    moved = True
    return depths


def _split(
    members: list[int], depths: list[int], frozen: frozenset[int], setup: _Setup
) -> tuple[list[EquivalenceClass], list[int]]:
    """Partition ``members`` top-down from ``depths``; return the classes and, when pooling,
    the records left over (fewer than k, for the caller to place)."""
    depths = _free_steps(members, depths, setup)
    best: tuple[float, int, list[list[int]], list[int], bool] | None = None
    for q, limit in enumerate(setup.limits):
        if q in frozen or depths[q] >= limit:
            continue
        groups: dict[str, list[int]] = {}
        for i in members:
            groups.setdefault(setup.paths[i][q][depths[q] + 1], []).append(i)
        for parts, rest, up in _plan(groups, setup.k, pooling=setup.pooling):
            gain = setup.weights[q][depths[q]] * (len(members) - len(rest)) / len(members)
            if best is None or gain > best[0]:
                best = (gain, q, parts, rest, up)
    if best is None:
        return [EquivalenceClass(tuple(sorted(members)), tuple(depths))], []
    _, q, parts, rest, up = best
    deeper = [*depths]
    deeper[q] += 1
    classes: list[EquivalenceClass] = []
    left: list[int] = list(rest) if up else []
    for part in parts:
        more, back = _split(part, deeper, frozen, setup)
        classes += more
        left += back
    if rest and not up:
        more, back = _split(rest, depths, frozen | {q}, setup)
        classes += more
        left += back
    if len(left) >= setup.k:  # what came back up is shown at this partition's levels
        classes.append(EquivalenceClass(tuple(sorted(left)), tuple(depths)))
        left = []
    return classes, left


def _absorb(
    classes: list[EquivalenceClass],
    pool: list[int],
    paths: Sequence[Sequence[Path]],
    weights: Sequence[Sequence[float]],
) -> list[EquivalenceClass]:
    """Fewer than k pooled records join the class that loses least by taking them in (each
    field raised to the level the class and the pooled records share)."""
    kept = [[sum(w[:d]) for d in range(len(w) + 1)] for w in weights]
    best: tuple[float, int, tuple[int, ...]] | None = None
    for c, eq in enumerate(classes):
        ref = paths[eq.members[0]]
        depths = []
        for q, depth in enumerate(eq.depths):
            while depth > 0 and any(paths[i][q][depth] != ref[q][depth] for i in pool):
                depth -= 1
            depths.append(depth)
        value = sum(kept[q][d] for q, d in enumerate(depths)) * (len(eq.members) + len(pool))
        value -= sum(kept[q][d] for q, d in enumerate(eq.depths)) * len(eq.members)
        if best is None or value > best[0]:
            best = (value, c, tuple(depths))
    assert best is not None  # there is always a class: the pool is smaller than the whole
    _, c, best_depths = best
    merged = EquivalenceClass(tuple(sorted((*classes[c].members, *pool))), best_depths)
    return [*classes[:c], merged, *classes[c + 1:]]


def partition(
    paths: Sequence[Sequence[Path]],
    weights: Sequence[Sequence[float]],
    k: int,
    first: Sequence[int] | None = None,
) -> tuple[list[EquivalenceClass], list[int]]:
    """Equivalence classes of at least ``k`` records each, and the records suppressed (all of
    them when there are fewer than ``k``: nothing smaller than k is ever released).

    ``paths[i][q]`` is record i's path in quasi-identifier q's hierarchy; ``weights[q][d]`` is
    the value of specialising q from level d to d + 1. ``first[q]``: how deep each field goes
    in the first phase (blocks), before the rest is partitioned within each block."""
    n = len(paths)
    if n == 0:
        return [], []
    if n < k:
        return [], list(range(n))
    full = [len(w) for w in weights]
    blocks: list[EquivalenceClass] = [EquivalenceClass(tuple(range(n)), tuple([0] * len(full)))]
    if first is not None:
        blocks, left = _split(list(range(n)), [0] * len(full), frozenset(),
                              _Setup(paths, weights, k, first, pooling=True))
        if left:  # fewer than k came back to the top: they join the block that loses least
            blocks = _absorb(blocks, left, paths, weights)
    setup = _Setup(paths, weights, k, full, pooling=False)
    classes: list[EquivalenceClass] = []
    for block in blocks:
        more, _ = _split(list(block.members), list(block.depths), frozenset(), setup)
        classes += more
    return classes, []
