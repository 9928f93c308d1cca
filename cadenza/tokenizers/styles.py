"""The style names the symbolic tokenizer has a control token for (``Style_<name>``), one per corpus
collection group. Its own light module: the app's style list and the symbolic family's descriptor read
it without importing miditok."""

from __future__ import annotations

from dataclasses import dataclass

STYLES: tuple[str, ...] = ("irish", "scottish", "chorale", "string-quartet", "renaissance", "folk-song", "classical")


@dataclass(frozen=True)
class StyleLimits:
    """What a style's training data shows, enforced by the REMI grammar on every written note.

    ``notes_per_onset``: distinct pitches starting together (a folk tune is one line, a chorale four
    voices, a quartet may double-stop); ``notes_per_quarter``: notes per quarter note of a bar, so a bar
    of ``q`` quarters holds at most ``ceil(q * notes_per_quarter)``; ``straight``: onsets and durations on
    the sixteenth grid (no triplet subdivisions) in the styles that are played straight.
    """

    notes_per_onset: int
    notes_per_quarter: float
    straight: bool


# The 99.9th percentile over the training split of the default token cache (unique pitches per onset,
# notes per quarter in each bar), rounded up; but the single-line styles, whose onsets hold one pitch
# 99% of the time (two at p99.9: a double stop, a final chord), keep to one line, as the monophonic
# instruments that play them must; `python -m benchmarks symbolic_form` prints them again
# (``corpus_limits``) from the token cache. Straight: the jigs, reels and airs put 94-98% of their
# onsets on the sixteenth grid (the rest are triplet ornaments, which a sampled model scatters instead).
STYLE_LIMITS: dict[str, StyleLimits] = {
    "irish": StyleLimits(1, 5.0, True),
    "scottish": StyleLimits(1, 4.0, True),
    "folk-song": StyleLimits(1, 5.0, True),
    "chorale": StyleLimits(7, 10.5, False),
    "renaissance": StyleLimits(5, 7.0, False),
    "string-quartet": StyleLimits(7, 25.5, False),
    "classical": StyleLimits(8, 15.0, False),
}
