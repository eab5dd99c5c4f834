"""Build ``src/shiftlens/heads/assets/general_verbs.tsv``: the general verbs that Table 3 compares against.

The first lemma of each WordNet 3.0 verb synset whose gloss has a quoted example sentence, single
alphabetic words only, ranked by `wordfreq` English frequency; instruction verbs and stopwords removed;
the 3,000 most frequent kept. Run: ``.venv/bin/python scripts/build_general_verbs.py``.
"""

from __future__ import annotations

import argparse
from importlib import metadata
from pathlib import Path

from wordfreq import word_frequency

from shiftlens.analysis.heads import INSTRUCTION_VERBS
from shiftlens.storage import atomic_write_text
from shiftlens.wordnet import WordNet

DATA = Path(__file__).resolve().parents[1] / "src" / "shiftlens" / "heads" / "assets"

# English function words (auxiliaries, modals, pronouns, determiners, ...): verbs among them say nothing.
STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be been before being below between both
    but by can could did do does doing done down during each few for from further get gets got had has have
    having he her here hers him his how i if in into is it its itself just let lets may me might more most
    must my no nor not now of off on once only or other ought our out over own same shall she should so
    some such than that the their them then there these they this those through to too under until up very
    was we were what when where which while who whom why will with would you your""".split()
)


def general_verbs(source: WordNet, size: int) -> list[tuple[str, float]]:
    """(verb, wordfreq frequency) of the ``size`` most frequent qualifying WordNet verbs."""
    excluded = set(INSTRUCTION_VERBS) | STOPWORDS
    verbs = set()
    for synset in source.synsets("verb"):
        lemma = synset.words[0].lower()
        if synset.examples and lemma.isalpha() and lemma not in excluded:
            verbs.add(lemma)
    ranked = sorted(((v, word_frequency(v, "en")) for v in verbs), key=lambda item: (-item[1], item[0]))
    return [(v, f) for v, f in ranked if f > 0][:size]


def main() -> None:
    """Write the TSV and its provenance note."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--wordnet", type=Path, help="a WordNet 3.0 directory (default: the packaged data)")
    parser.add_argument("--size", type=int, default=3000)
    args = parser.parse_args()
    source = WordNet(args.wordnet)
    verbs = general_verbs(source, args.size)
    atomic_write_text(DATA / "general_verbs.tsv", "".join(f"{v}\t{f:.6g}\n" for v, f in verbs))
    provenance = f"""# general_verbs.tsv: provenance

Built by `scripts/build_general_verbs.py` (rerun it to rebuild). {len(verbs)} verbs, `verb<TAB>frequency`.

- Source: WordNet 3.0 `data.verb` ({source.source}), Princeton University,
  WordNet licence (permissive; the notice ships in `shiftlens/wordnet/assets/LICENSE`).
- Selection: the first lemma of every verb synset whose gloss contains a quoted example sentence
  (`"..."` in the gloss; `sents.vrb` frame sentences are not used), single alphabetic words only,
  lower-cased, deduplicated.
- Ranking: English frequency from `wordfreq` {metadata.version("wordfreq")} (`word_frequency(w, "en")`),
  highest first; words of frequency 0 dropped.
- Removed: the {len(INSTRUCTION_VERBS)} instruction verbs (`shiftlens.analysis.heads.INSTRUCTION_VERBS`) and
  {len(STOPWORDS)} English function words (the `STOPWORDS` set in the script).
- Kept: the {args.size} most frequent.
"""
    atomic_write_text(DATA / "general_verbs.PROVENANCE.md", provenance)
    print(f"wrote {len(verbs)} verbs to {DATA / 'general_verbs.tsv'}")


if __name__ == "__main__":
    main()
