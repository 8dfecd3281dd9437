"""Near-duplicate answers between students: word 5-gram containment, with the passage they share.

The measure: each text becomes the set of its word 5-grams (lower-case words; for code, Python
tokens, comments dropped), minus the 5-grams of the course's own text for it (the discussion
template, so prompts a student left in do not count). Two answers are flagged when the shared
5-grams are at least ``THRESHOLD`` of the smaller set (containment, so a copied paragraph inside a
longer answer is caught too) and they share at least ``MIN_SHARED`` 5-grams (two short answers
agreeing on one phrase are not). A 5-gram that more than ``MAX_SHARERS`` students' answers hold counts
as common too (MOSS's ``-m``: the one natural way to write ``conv_base.trainable = False`` flags nobody,
and a class of 200 is not 19,900 flags). The evidence is the longest run of words they have in common
outside the template.
"""
from __future__ import annotations

import collections
import dataclasses
import difflib
import io
import itertools
import re
import tokenize

N = 5
THRESHOLD = 0.5
MIN_SHARED = 3
MAX_SHARERS = 10  # a 5-gram in more answers than this is common ground, not copying (MOSS's default -m)
PASSAGE_WORDS = 60  # words of the shared passage shown
WORD = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*", re.UNICODE)


@dataclasses.dataclass(frozen=True)
class Match:
    """Two students whose answers to ``item`` are near-duplicates: containment ``score`` and a shared passage."""

    item: str
    first: str
    second: str
    score: float
    passage: str


def words(text: str) -> list[str]:
    """The lower-case words of a text."""
    return [w.lower() for w in WORD.findall(text or "")]


def code_tokens(source: str) -> list[str]:
    """The Python tokens of a solution, comments and layout dropped (words when it does not tokenize)."""
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER}
    try:
        return [t.string for t in tokenize.generate_tokens(io.StringIO(source or "").readline) if t.type not in skip]
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return words(source)


def grams(tokens: list[str]) -> set[tuple[str, ...]]:
    """The token ``N``-grams of a sequence."""
    return {tuple(tokens[i:i + N]) for i in range(len(tokens) - N + 1)}


def own_tokens(tokens: list[str], common: set[tuple[str, ...]], side: str) -> list:
    """``tokens`` with each one inside an ``N``-gram of ``common`` (the template) replaced by a marker
    that no other sequence holds, so that a shared passage is never the prompts both students kept."""
    covered = {j for i in range(len(tokens) - N + 1) if tuple(tokens[i:i + N]) in common for j in range(i, i + N)}
    return [(side, i) if i in covered else token for i, token in enumerate(tokens)]


def passage(a: list, b: list) -> str:
    """The longest run of tokens two sequences share (cut to ``PASSAGE_WORDS``)."""
    match = difflib.SequenceMatcher(None, a, b, autojunk=False).find_longest_match(0, len(a), 0, len(b))
    shared = a[match.a:match.a + match.size]
    return " ".join(shared[:PASSAGE_WORDS]) + (" ..." if len(shared) > PASSAGE_WORDS else "")


def near_duplicates(item: str, answers: dict[str, list[str]], template: list[str] = ()) -> list[Match]:
    """Every pair of students whose token sequences (``answers``: student -> tokens) are near-duplicates."""
    common = grams(list(template))
    counts = collections.Counter(gram for tokens in answers.values() for gram in grams(tokens))
    common |= {gram for gram, count in counts.items() if count > MAX_SHARERS}
    sets = {name: grams(tokens) - common for name, tokens in answers.items()}
    found = []
    for first, second in itertools.combinations(sorted(answers), 2):
        a, b = sets[first], sets[second]
        shared = len(a & b)
        if not a or not b or shared < MIN_SHARED:
            continue
        score = shared / min(len(a), len(b))
        if score >= THRESHOLD:
            shown = passage(own_tokens(answers[first], common, "a"), own_tokens(answers[second], common, "b"))
            found.append(Match(item, first, second, round(score, 2), shown))
    return found


def describe() -> str:
    """The measure and threshold in one sentence (shown beside the flags)."""
    return (f"word {N}-gram containment (shared {N}-grams / those of the shorter answer, the course's template "
            f"left out, and any {N}-gram more than {MAX_SHARERS} students wrote) of at least {THRESHOLD:g}, "
            f"with at least {MIN_SHARED} shared {N}-grams")
