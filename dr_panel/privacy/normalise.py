"""Text as a reader sees it, so that look-alike spellings cannot slip an identifier past the
detector, with a map back to what the user typed so a finding still points at their words.

Each character is read on its own: NFKC (full-width and styled letters and digits become plain
ones, odd spaces become spaces); accents dropped (as ``identity.fold`` drops them); format
characters removed (zero-width spaces and joiners, soft hyphens, bidi marks, the BOM); letters of
other scripts that look like Latin ones (Cyrillic "а", Greek "Ο") folded to the Latin letter they
imitate, from the Unicode confusables table as the maintained ``confusable_homoglyphs`` package
ships it; digits of any script become ASCII digits. Case is kept: titles and capitals matter.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from confusable_homoglyphs import confusables


@dataclass(frozen=True)
class Normalised:
    """``text`` is the normalised text; normalised character ``j`` came from the original
    characters ``starts[j]`` to ``ends[j]`` (exclusive)."""

    text: str
    starts: tuple[int, ...]
    ends: tuple[int, ...]
    original_length: int

    def __repr__(self) -> str:  # the text may hold identifiers
        return f"<Normalised {len(self.text)} characters>"

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The original span behind the normalised span ``start..end``."""
        if not self.text or end <= start:
            pos = self.starts[start] if start < len(self.starts) else self.original_length
            return pos, pos
        return self.starts[start], self.ends[end - 1]


@lru_cache(maxsize=4096)
def _char(ch: str) -> str:
    """What one character reads as (possibly nothing, possibly several characters)."""
    if ch.isascii():
        return ch
    category = unicodedata.category(ch)
    if category == "Cf":  # zero-width, soft hyphen, bidi controls, BOM, word joiner
        return ""
    if category == "Nd":
        return str(unicodedata.decimal(ch))
    out = []
    for c in unicodedata.normalize("NFKC", ch):
        for d in unicodedata.normalize("NFD", c):
            if unicodedata.combining(d) or unicodedata.category(d) in ("Mn", "Cf"):
                continue
            out.append(_latin(d))
    return "".join(out)


def _latin(ch: str) -> str:
    """A non-Latin letter that looks like a Latin one, as that Latin letter."""
    if ch.isascii() or not ch.isalpha():
        return ch
    for homoglyph in confusables.confusables_data.get(ch, ()):
        c = homoglyph["c"]
        if c.isascii() and c.isalpha():
            # The confusables skeleton writes capital I as "l"; a capital stays a capital.
            return "I" if ch.isupper() and c == "l" else c
    return ch


def normalise(text: str) -> Normalised:
    """``text`` as the detector reads it, with the map back to ``text``'s offsets."""
    if text.isascii():
        n = len(text)
        return Normalised(text, tuple(range(n)), tuple(range(1, n + 1)), n)
    parts: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    for i, ch in enumerate(text):
        mapped = _char(ch)
        parts.append(mapped)
        starts.extend([i] * len(mapped))
        ends.extend([i + 1] * len(mapped))
    return Normalised("".join(parts), tuple(starts), tuple(ends), len(text))
