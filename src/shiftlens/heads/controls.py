"""Control words for the sound heads test: general verbs matched in English frequency to the instruction verbs.

A word's pair count in a head grows with how common the word is, so instruction verbs (mostly frequent)
are compared with control words of the same frequency rather than with every general verb. Frequency is
`wordfreq`'s English Zipf value (log10 of occurrences per billion words, unrounded).
"""

from __future__ import annotations

import math
from functools import cache

CONTROLS_PER_WORD = 5


@cache
def zipf(word: str) -> float:
    """English Zipf frequency of a word (0 for a word wordfreq does not know)."""
    from wordfreq import word_frequency

    frequency = word_frequency(word, "en")
    return math.log10(frequency) + 9 if frequency > 0 else 0.0


def matched_controls(targets: list[str], pool: list[str], per_word: int = CONTROLS_PER_WORD) -> list[str]:
    """For each target (most frequent first), the ``per_word`` unused pool words nearest in Zipf frequency.

    Greedy without replacement; ties in distance go to the alphabetically first word. Stops early when
    the pool runs out, so the result may be shorter than ``per_word × len(targets)``.
    """
    available = sorted(set(pool) - set(targets))
    chosen: list[str] = []
    for target in sorted(targets, key=lambda w: (-zipf(w), w)):
        nearest = sorted(available, key=lambda w: (abs(zipf(w) - zipf(target)), w))[:per_word]
        chosen += nearest
        taken = set(nearest)
        available = [w for w in available if w not in taken]
    return chosen
