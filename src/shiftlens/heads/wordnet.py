"""Read WordNet's ``data.*`` files: each synset's lemmas and gloss (definition plus quoted examples).

Used for the offline co-occurrence corpus (the glosses) and to build the general-verb list.
Format: https://wordnet.princeton.edu/documentation/wndb5wn (``offset lex ss_type w_cnt words ... | gloss``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from shiftlens.errors import ShiftlensError

WORDNET_DIR = Path("/usr/share/wordnet")
_QUOTED = re.compile(r'"([^"]+)"')


class WordNetError(ShiftlensError, FileNotFoundError):
    """WordNet's data files are missing or malformed."""


@dataclass(frozen=True)
class Synset:
    """One synset: its lemmas (underscores for spaces, as stored) and its gloss."""

    lemmas: tuple[str, ...]
    gloss: str

    @property
    def examples(self) -> list[str]:
        """The quoted example sentences of the gloss."""
        return _QUOTED.findall(self.gloss)


def iter_synsets(path: str | Path) -> Iterator[Synset]:
    """Each synset of one ``data.<pos>`` file (licence header lines, which start with spaces, skipped)."""
    path = Path(path)
    if not path.exists():
        raise WordNetError(f"WordNet data file {path} not found (Debian: apt-get install wordnet-base)")
    with path.open(encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, 1):
            if line.startswith(" ") or not line.strip():
                continue
            head, _, gloss = line.partition(" | ")
            fields = head.split()
            try:
                count = int(fields[3], 16)
                lemmas = tuple(fields[4 + 2 * i] for i in range(count))
            except (IndexError, ValueError) as exc:
                raise WordNetError(f"{path}:{number}: not a WordNet synset line") from exc
            yield Synset(lemmas, gloss.strip())


def gloss_lines(directory: str | Path = WORDNET_DIR) -> Iterator[str]:
    """Every gloss of every part of speech (noun, verb, adjective, adverb), one per line."""
    for pos in ("noun", "verb", "adj", "adv"):
        for synset in iter_synsets(Path(directory) / f"data.{pos}"):
            yield synset.gloss
