"""The demo world's one underlying language and its surface forms in every demo language.

A sentence is first built as a *meaning*: a list of concept ids (``"person:Anna"``, ``"verb:has"``,
``"color:red"`` ...) in a canonical role order. ``Lexicon.render`` turns it into text in one language:
each concept becomes that language's word for it (a consistent relabeling, one word per concept) and
the words are put in that language's order. English uses real English words; the synthetic languages
use pseudo-words drawn from their own syllable inventories. Person names and digits are written the
same in every language, as they largely are across real languages: they are the shared anchors.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

# Demo languages: English plus three synthetic ones. ISO 639 reserves qaa-qtz for local use, so the
# codes cannot be mistaken for real languages. Value: the three-letter code Tatoeba file names use.
LANGUAGES = {"en": "eng", "qa": "qaa", "qb": "qab", "qc": "qac"}

PERSONS = [
    "Anna",
    "Omar",
    "Lena",
    "Ravi",
    "Mia",
    "Kofi",
    "Sara",
    "Ivan",
    "Yuki",
    "Nora",
    "Tariq",
    "Elena",
    "Jonas",
    "Aisha",
    "Pedro",
    "Mei",
    "Hugo",
    "Zara",
    "Leo",
    "Ines",
]
VERBS = ["has", "sees", "buys", "sells", "wants", "finds"]
COLORS = ["red", "blue", "green", "black", "white", "yellow", "brown", "grey"]
# Noun categories: the unrelated intermediate task asks which noun belongs to a category.
CATEGORIES = {
    "animal": ["dog", "cat", "horse", "bird", "fish"],
    "vehicle": ["car", "bike", "boat", "train", "truck"],
    "clothing": ["hat", "coat", "shirt", "shoe", "scarf"],
    "furniture": ["chair", "table", "bed", "lamp", "desk"],
    "fruit": ["apple", "pear", "lemon", "plum", "melon"],
}
NOUNS = [noun for nouns in CATEGORIES.values() for noun in nouns]
NUMBERS = [str(n) for n in range(2, 10)]  # counts; digits are written alike everywhere (anchors)
# Function words; "?" and "." are punctuation kept as-is in every language.
FUNCTION_WORDS = ["a", "some", "at", "least", "and", "the", "is", "kind", "of", "which", "thing"]
PUNCTUATION = [".", "?"]

# Synthetic languages: syllable inventories (onsets x vowels, optional coda) and word order.
SYLLABLES = {
    "qa": ("k l m n t v", "a i o u", ""),
    "qb": ("b d g r s z", "e i o y", "k"),
    "qc": ("p f h j w x", "a e u", "n"),
}
# Order of a fact's roles: P person, V verb, Q quantity ("a", "some", "at least 3", "5"), C color, N noun.
FACT_ORDER = {"en": "PVQCN", "qa": "PVQCN", "qb": "PVQNC", "qc": "PQCNV"}


def concepts() -> list[str]:
    """Every concept id of the world, in a fixed order."""
    return (
        [f"person:{p}" for p in PERSONS]
        + [f"verb:{v}" for v in VERBS]
        + [f"color:{c}" for c in COLORS]
        + [f"noun:{n}" for n in NOUNS]
        + [f"plural:{n}" for n in NOUNS]
        + [f"num:{n}" for n in NUMBERS]
        + [f"category:{c}" for c in CATEGORIES]
        + [f"fn:{w}" for w in FUNCTION_WORDS]
        + [f"punct:{p}" for p in PUNCTUATION]
    )


def is_anchor(concept: str) -> bool:
    """Anchors are spelled identically in every language (names, digits, punctuation)."""
    return concept.startswith(("person:", "num:", "punct:"))


def english_plural(noun: str) -> str:
    return noun if noun == "fish" else noun + "s"


@dataclass(frozen=True)
class Fact:
    """``person verb quantity [color] noun``.

    ``count``: a number 2-9, 1 (written "a"), or None ("some": an unknown number). ``at_least`` turns
    the quantity into "at least <count>" (hypotheses). A missing color means "of any color".
    """

    person: str
    verb: str
    count: int | None
    color: str | None
    noun: str
    at_least: bool = False

    def roles(self) -> dict[str, list[str]]:
        if self.count == 1:
            quantity = ["fn:a"]
        else:
            quantity = ["fn:some"] if self.count is None else [f"num:{self.count}"]
        if self.at_least:
            quantity = ["fn:at", "fn:least"] + quantity
        noun = f"noun:{self.noun}" if self.count == 1 else f"plural:{self.noun}"
        return {
            "P": [f"person:{self.person}"],
            "V": [f"verb:{self.verb}"],
            "Q": quantity,
            "C": [f"color:{self.color}"] if self.color else [],
            "N": [noun],
        }


class Lexicon:
    """Word forms of every concept in every demo language; deterministic given the seed."""

    def __init__(self, seed: int = 0):
        rng = random.Random(f"hf_itt-demo-lexicon-{seed}")
        english = {c: c.split(":", 1)[1] for c in concepts()}
        english.update({c: english_plural(c.split(":", 1)[1]) for c in concepts() if c.startswith("plural:")})
        self.words: dict[str, dict[str, str]] = {"en": english}
        taken = set(english.values())
        for lang in SYLLABLES:
            words = {c: self._word(c, lang, rng, taken) for c in concepts()}
            words.update({c: words["noun:" + c.split(":", 1)[1]] for c in concepts() if c.startswith("plural:")})
            self.words[lang] = words

    @staticmethod
    def _word(concept: str, lang: str, rng: random.Random, taken: set[str]) -> str:
        if is_anchor(concept):
            return concept.split(":", 1)[1]
        if concept.startswith("plural:"):
            return ""  # filled in by __init__: synthetic languages do not mark the plural
        onsets, vowels, coda = (part.split() for part in SYLLABLES[lang])
        n_syllables = 1 if concept.startswith("fn:") else rng.choice([2, 2, 3])
        while True:
            word = "".join(rng.choice(onsets) + rng.choice(vowels) for _ in range(n_syllables))
            word += rng.choice(coda + [""]) if coda else ""
            if word not in taken:
                taken.add(word)
                return word

    def word(self, concept: str, lang: str) -> str:
        return self.words[lang][concept]

    def fact_concepts(self, fact: Fact, lang: str) -> list[str]:
        roles = fact.roles()
        return [concept for role in FACT_ORDER[lang] for concept in roles[role]]

    def sentence_concepts(self, facts: list[Fact], lang: str) -> list[str]:
        """Facts joined by "and", ending with "."."""
        out: list[str] = []
        for i, fact in enumerate(facts):
            out += (["fn:and"] if i else []) + self.fact_concepts(fact, lang)
        return out + ["punct:."]

    def render(self, concept_ids: list[str], lang: str) -> str:
        return " ".join(self.word(c, lang) for c in concept_ids)

    def sentence(self, facts: list[Fact], lang: str) -> str:
        return self.render(self.sentence_concepts(facts, lang), lang)

    def category_statement(self, noun: str, category: str, lang: str) -> list[str]:
        """'the dog is a kind of animal' (verb-final in qc)."""
        body = ["fn:the", f"noun:{noun}", "fn:is", "fn:a", "fn:kind", "fn:of", f"category:{category}"]
        if FACT_ORDER[lang].endswith("V"):
            body = body[:2] + body[3:] + body[2:3]
        return body + ["punct:."]

    def category_question(self, category: str, lang: str) -> list[str]:
        """'which thing is a kind of animal ?'"""
        body = ["fn:which", "fn:thing", "fn:is", "fn:a", "fn:kind", "fn:of", f"category:{category}"]
        if FACT_ORDER[lang].endswith("V"):
            body = body[:2] + body[3:] + body[2:3]
        return body + ["punct:?"]
