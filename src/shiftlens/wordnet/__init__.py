"""The one WordNet 3.0 reader: synsets, index entries and exception lists, from packaged data or a directory.

The package ships the parts of WordNet 3.0 that shiftlens reads (``assets/``, derived by
``scripts/build_wordnet_data.py``; Princeton's licence in ``assets/LICENSE``), so nothing is needed from
the OS. ``SHIFTLENS_WORDNET=DIR`` (or ``WordNet(DIR)``) reads a full WordNet 3.0 ``dict`` directory
instead. Both are in WordNet's ``wndb`` line format (https://wordnet.princeton.edu/documentation/wndb5wn):
``offset lex_filenum ss_type w_cnt (word lex_id)... p_cnt (pointer)... | gloss``.
"""

from __future__ import annotations

import lzma
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path

from shiftlens.errors import ShiftlensError

ENV = "SHIFTLENS_WORDNET"
ASSETS = Path(__file__).resolve().parent / "assets"
PACKAGED = "packaged WordNet 3.0 (shiftlens/wordnet/assets)"
FILE_POS = {"noun": "n", "verb": "v", "adj": "a", "adv": "r"}  # file name → part-of-speech letter
REQUIRED = tuple(f"{kind}.{name}" for name in FILE_POS for kind in ("data", "index")) + tuple(
    f"{name}.exc" for name in FILE_POS
)
_QUOTED = re.compile(r'"([^"]+)"')
_VERSION = re.compile(r"WordNet (\d+\.\d+)")


class WordNetError(ShiftlensError):
    """WordNet data that is missing, not version 3.0, or not in the wndb format; the message names the file."""


@dataclass(frozen=True)
class Synset:
    """One data line: offset, lexicographer file number, synset type, words as stored, antonyms, gloss."""

    offset: str
    lex_filenum: int
    ss_type: str  # n, v, a, s (adjective satellite) or r
    words: tuple[str, ...]  # underscores for spaces, adjective markers such as "(a)" kept
    antonyms: tuple[tuple[int, str, str, int], ...]  # (source word number, target pos, offset, target word number)
    gloss: str

    @property
    def examples(self) -> tuple[str, ...]:
        """The quoted example sentences of the gloss, stripped."""
        return tuple(e.strip() for e in _QUOTED.findall(self.gloss))

    @property
    def definition(self) -> str:
        """The gloss before its first example, without the trailing semicolon."""
        return self.gloss.split('"')[0].strip().rstrip(";").strip()


@dataclass(frozen=True)
class IndexEntry:
    """One lemma under one part of speech: its tagged sense count and synset offsets, most frequent first."""

    tagged: int
    offsets: tuple[str, ...]


def clean_word(raw: str) -> str:
    """A stored word without its adjective marker, underscores as spaces."""
    return re.sub(r"\((a|p|ip)\)$", "", raw).replace("_", " ")


def parse_data_line(line: str, where: str) -> Synset:
    """The synset of one data line; a malformed line raises a WordNetError naming ``where`` (FILE:LINE)."""
    try:
        head, _, gloss = line.partition(" | ")
        fields = head.split()
        count = int(fields[3], 16)
        words = tuple(fields[4 + 2 * i] for i in range(count))
        at = 4 + 2 * count
        antonyms = []
        for i in range(int(fields[at])):
            symbol, target, target_pos, source_target = fields[at + 1 + 4 * i : at + 5 + 4 * i]
            if symbol == "!":
                antonyms.append((int(source_target[:2], 16), target_pos, target, int(source_target[2:], 16)))
        return Synset(fields[0], int(fields[1]), fields[2], words, tuple(antonyms), gloss.strip())
    except (IndexError, ValueError) as exc:
        raise WordNetError(f"{where}: not a WordNet data line ({exc})") from exc


def parse_index_line(line: str, where: str) -> tuple[str, IndexEntry]:
    """(lemma, entry) of one index line; a malformed line raises a WordNetError naming ``where``."""
    fields = line.split()
    try:
        synset_cnt, p_cnt = int(fields[2]), int(fields[3])
        tagged = int(fields[5 + p_cnt])
        offsets = tuple(fields[6 + p_cnt : 6 + p_cnt + synset_cnt])
        if len(offsets) != synset_cnt:
            raise ValueError(f"{synset_cnt} synsets announced, {len(offsets)} given")
    except (IndexError, ValueError) as exc:
        raise WordNetError(f"{where}: not a WordNet index line ({exc})") from exc
    return fields[0], IndexEntry(tagged, offsets)


def check_directory(directory: Path, origin: str) -> None:
    """Refuse a directory that is missing, lacks the database files, or holds another WordNet version."""
    expected = "a WordNet 3.0 dict directory holding data.noun, index.noun, ... (or unset it for the packaged data)"
    if not directory.is_dir():
        raise WordNetError(f"{origin} {directory} is not a directory: expected {expected}")
    missing = [name for name in REQUIRED if not (directory / name).is_file()]
    if missing:
        raise WordNetError(f"{origin} {directory} is not WordNet: {', '.join(missing)} missing; expected {expected}")
    with (directory / "data.noun").open(encoding="utf-8", errors="replace") as handle:
        header = "".join(line for _, line in zip(range(40), handle) if line.startswith("  "))
    version = _VERSION.search(header)
    if version is None or version.group(1) != "3.0":
        found = f"WordNet {version.group(1)}" if version else "no version in its licence header"
        raise WordNetError(f"{origin} {directory} is not WordNet 3.0 (data.noun says {found}); expected {expected}")


class WordNet:
    """WordNet 3.0 from a directory, ``$SHIFTLENS_WORDNET``, or (by default) the packaged data."""

    def __init__(self, directory: str | Path | None = None) -> None:
        origin = "WordNet directory"
        if directory is None and os.environ.get(ENV):
            directory, origin = os.environ[ENV], ENV
        self.directory = None if directory is None else Path(directory)
        if self.directory is not None:
            check_directory(self.directory, origin)
        self.source = PACKAGED if self.directory is None else str(self.directory)

    def _text(self, name: str) -> tuple[str, str]:
        """(path shown in messages, whole text) of one database file."""
        if self.directory is None:
            path = ASSETS / f"{name}.xz"
            if not path.is_file():
                raise WordNetError(f"packaged WordNet file {path} is missing: reinstall shiftlens")
            return str(path), lzma.decompress(path.read_bytes()).decode("utf-8")
        path = self.directory / name
        if not path.is_file():
            raise WordNetError(f"WordNet file {path} not found")
        return str(path), path.read_text(encoding="utf-8", errors="replace")

    def lines(self, name: str) -> Iterator[tuple[str, str]]:
        """(FILE:LINE, line) of each record of one file (``data.noun``, ``index.verb``, ``adj.exc``, ...)."""
        path, text = self._text(name)
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip() and not line.startswith("  "):  # licence header lines start with two spaces
                yield f"{path}:{number}", line

    def header(self, name: str) -> Iterator[tuple[int, str]]:
        """(number, line) of the numbered licence header of a file in a directory."""
        _, text = self._text(name)
        for line in text.splitlines():
            if line.startswith("  ") and line.split(" ", 3)[2].isdigit():
                yield int(line.split()[0]), line

    def synsets(self, name: str) -> Iterator[Synset]:
        """Each synset of one part of speech (``noun``, ``verb``, ``adj``, ``adv``), in file order."""
        for where, line in self.lines(f"data.{name}"):
            yield parse_data_line(line, where)

    @cached_property
    def synset_table(self) -> dict[tuple[str, str], Synset]:
        """Every synset keyed by (file part of speech n/v/a/r, offset); adjective satellites live under "a"."""
        return {(FILE_POS[name], s.offset): s for name in FILE_POS for s in self.synsets(name)}

    @cached_property
    def index_table(self) -> dict[str, dict[str, IndexEntry]]:
        """Per part of speech (``noun``, ...): lemma → its index entry."""
        return {
            name: dict(parse_index_line(line, where) for where, line in self.lines(f"index.{name}"))
            for name in FILE_POS
        }

    @cached_property
    def exception_table(self) -> dict[str, dict[str, str]]:
        """Per part of speech: irregular form → its first base form, from the exception lists."""
        return {
            name: {line.split()[0]: line.split()[1] for _, line in self.lines(f"{name}.exc") if len(line.split()) > 1}
            for name in FILE_POS
        }

    def glosses(self) -> Iterator[str]:
        """Every gloss of every part of speech (noun, verb, adjective, adverb)."""
        for name in FILE_POS:
            for synset in self.synsets(name):
                yield synset.gloss


@cache
def _wordnet(variable: str | None) -> WordNet:
    """One WordNet per value of the variable (the argument keys the cache; `WordNet` reads the variable)."""
    return WordNet()


def wordnet() -> WordNet:
    """The process's WordNet: ``$SHIFTLENS_WORDNET`` when set, else the packaged data (read once)."""
    return _wordnet(os.environ.get(ENV) or None)
