"""Derive the packaged WordNet 3.0 data (``src/shiftlens/wordnet/assets/``) from a WordNet 3.0 directory.

Keeps exactly what shiftlens reads, in WordNet's own ``wndb`` line format so one parser reads both the
packaged files and a full WordNet directory: data lines with every pointer but antonyms (``!``) dropped
and the licence header removed, index lines with their pointer symbols dropped, and the morphological
exception lists whole. Each file is xz-compressed. The licence notice is shipped beside them.
Run: ``.venv/bin/python scripts/build_wordnet_data.py --wordnet DIR`` (e.g. Debian's wordnet-base files).
"""

from __future__ import annotations

import argparse
import hashlib
import lzma
from pathlib import Path

from shiftlens.storage import atomic_write_bytes, atomic_write_text
from shiftlens.wordnet import ASSETS, FILE_POS, WordNet

LICENSE_LINES = range(1, 30)  # the numbered licence header of every data.* file


def trim_data_line(line: str) -> str:
    """A data line with only its antonym pointers (and no verb frames); the gloss kept verbatim."""
    head, _, gloss = line.partition(" | ")
    fields = head.split()
    at = 4 + 2 * int(fields[3], 16)
    pointers = [fields[at + 1 + 4 * i : at + 5 + 4 * i] for i in range(int(fields[at]))]
    antonyms = [p for p in pointers if p[0] == "!"]
    kept = fields[:at] + [f"{len(antonyms):03d}"] + [token for p in antonyms for token in p]
    return " ".join(kept) + " | " + gloss.strip()


def trim_index_line(line: str) -> str:
    """An index line without its pointer symbols (p_cnt set to 0); counts and synset offsets kept."""
    fields = line.split()
    p_cnt = int(fields[3])
    return " ".join(fields[:3] + ["0"] + fields[4 + p_cnt :])


def derived_files(source: WordNet) -> dict[str, str]:
    """File name → trimmed text of every file the packaged data holds."""
    files = {}
    for name in FILE_POS:
        files[f"data.{name}"] = "".join(trim_data_line(line) + "\n" for _, line in source.lines(f"data.{name}"))
        files[f"index.{name}"] = "".join(trim_index_line(line) + "\n" for _, line in source.lines(f"index.{name}"))
        files[f"{name}.exc"] = "".join(line + "\n" for _, line in source.lines(f"{name}.exc"))
    return files


def main() -> None:
    """Write the xz files, the licence notice and a provenance note with checksums."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--wordnet", type=Path, required=True, help="a WordNet 3.0 dict directory")
    args = parser.parse_args()
    source = WordNet(args.wordnet)
    notice = "".join(
        line.split(" ", 3)[-1].rstrip() + "\n" for number, line in source.header("data.noun") if number in LICENSE_LINES
    )
    atomic_write_text(ASSETS / "LICENSE", notice)
    rows = []
    for name, text in derived_files(source).items():
        data = text.encode("utf-8")
        packed = lzma.compress(data, preset=9 | lzma.PRESET_EXTREME)
        atomic_write_bytes(ASSETS / f"{name}.xz", packed)
        original = (args.wordnet / name).read_bytes()
        rows.append(f"| {name} | {hashlib.sha256(original).hexdigest()[:16]} | {len(data):,} | {len(packed):,} |")
    provenance = (
        "# Packaged WordNet 3.0: provenance\n\n"
        f"Derived by `scripts/build_wordnet_data.py --wordnet {args.wordnet}` from the WordNet 3.0 database\n"
        "(Princeton University; licence in `LICENSE` beside this file, which must travel with these files).\n"
        "Data lines keep offsets, lexicographer file, synset type, words and antonym pointers and the gloss\n"
        "verbatim; index lines keep counts and synset offsets; exception lists are whole.\n\n"
        "| file | sha256 of the source file (16 hex) | trimmed bytes | xz bytes |\n| --- | --- | --- | --- |\n"
        + "\n".join(rows)
        + "\n"
    )
    atomic_write_text(ASSETS / "PROVENANCE.md", provenance)
    print(f"wrote {len(rows)} files to {ASSETS}")


if __name__ == "__main__":
    main()
