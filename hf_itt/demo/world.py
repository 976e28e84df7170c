"""The offline demo's synthetic multilingual world: task files in the Hub's row schemas.

One small underlying language (people, verbs, counted colored objects, object categories; ``lexicon``)
is rendered in English and three synthetic languages. From it ``build_world`` writes:

- ``mlm``:           a multilingual plain-text corpus (one sentence a line; some lines word-level
                     code-switched, some an English sentence next to its translation) for the MLM
                     warm-up that lets the languages share representations;
- ``mnli``:          a large English NLI task, rows of ``nyu-mll/glue`` mnli (RELATED to ``xnli``);
- ``commonsenseqa``: an English multiple-choice task about object categories, rows of
                     ``tau/commonsense_qa`` (UNRELATED to ``xnli``);
- ``xnli``:          the classification target: a SMALL English train set, parallel validation/test
                     sets in every language, rows of ``facebook/xnli``;
- ``tatoeba``:       the retrieval target: ``tatoeba.<xxx>-eng.<xxx>`` / ``.eng`` line-aligned files.

NLI rule: the premise states a count ("Mei buys 4 yellow cars", or "some" for an unknown count, maybe
next to an unrelated fact about someone else) and the hypothesis claims "at least N" of the same
thing: entailment if N <= the count, contradiction if N > the count, neutral if the count is
unknown. Digits and names are spelled alike in every language; all other words are relabeled. So
the skill is language-neutral (compare two digits), but a tiny model needs a few hundred updates on
thousands of examples to pick it up, which the 300-row English target set cannot give it and the
large English mnli set can. Every file is deterministic given the seed; each file draws from its
own random stream, so changing one size leaves the other files unchanged.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from hf_itt.demo.lexicon import (
    CATEGORIES,
    COLORS,
    LANGUAGES,
    NOUNS,
    NUMBERS,
    PERSONS,
    VERBS,
    Fact,
    Lexicon,
)
from hf_itt.fileio import atomic_write_text

NLI_LABELS = ["entailment", "neutral", "contradiction"]  # ids 0/1/2, as in glue mnli and xnli
CHOICE_LABELS = ["A", "B", "C", "D", "E"]
INDEX_FILE = "world.json"

DEFAULT_SIZES = {
    "mlm_per_language": 3000,  # monolingual corpus lines per language
    "mlm_code_switched": 3000,  # extra code-switched lines (all languages together)
    "mlm_parallel": 3000,  # extra lines holding a sentence and its translation (English + one other)
    "mnli_train": 8000,
    "mnli_validation": 500,
    "commonsenseqa_train": 4000,
    "commonsenseqa_validation": 300,
    "xnli_train": 300,  # English only, small on purpose: ITT has room to help
    "xnli_validation": 300,  # per language, parallel across languages
    "xnli_test": 300,
    "tatoeba": 200,  # pairs per non-English language
}
CODE_SWITCH_RATE = 0.3  # share of words written in another language in a code-switched line
MNLI_DISTRACTOR, XNLI_DISTRACTOR = 0.5, 0.25  # share of premises with an extra, unrelated fact


# ----------------------------------------------------------------------------------- generators


def random_fact(rng: random.Random, at_least: bool = False) -> Fact:
    """A fact with a random count: "a" (1), a digit 2-9, or "some" (unknown)."""
    count = rng.choice([1, 1, None] + [int(n) for n in NUMBERS])
    if at_least and count in (1, None):
        count = int(rng.choice(NUMBERS))
    return Fact(rng.choice(PERSONS), rng.choice(VERBS), count, rng.choice(COLORS), rng.choice(NOUNS), at_least)


def distinct_facts(rng: random.Random, n: int) -> list[Fact]:
    """``n`` facts about pairwise different persons."""
    facts: dict[str, Fact] = {}
    while len(facts) < n:
        fact = random_fact(rng)
        facts.setdefault(fact.person, fact)
    return list(facts.values())


def nli_label(premise: Fact, hypothesis: Fact) -> int:
    """The world's NLI rule for "P has N things" vs "P has at least M things" (same person and noun)."""
    if premise.count is None:
        return NLI_LABELS.index("neutral")
    return NLI_LABELS.index("entailment" if hypothesis.count <= premise.count else "contradiction")


def nli_example(rng: random.Random, distractor: float = 0.0) -> tuple[list[Fact], Fact, int]:
    """A premise fact (plus, with probability ``distractor``, an unrelated fact about someone else)
    and an "at least" hypothesis about the same person and noun; labels are uniform.

    The label hinges on comparing two digits (neutral: the premise says "some"), so a model needs many
    examples to learn it for every pair of counts.
    """
    label = rng.choice(NLI_LABELS)
    counts = [int(n) for n in NUMBERS]
    if label == "neutral":
        premise_count, claim = None, rng.choice(counts)
    else:
        pairs = [(p, h) for p in counts for h in counts if (h <= p) == (label == "entailment")]
        premise_count, claim = rng.choice(pairs)
    fact = Fact(rng.choice(PERSONS), rng.choice(VERBS), premise_count, rng.choice(COLORS), rng.choice(NOUNS))
    hypothesis = Fact(fact.person, fact.verb, claim, rng.choice([fact.color, None]), fact.noun, at_least=True)
    premise = [fact]
    if rng.random() < distractor:
        other = Fact(
            rng.choice([p for p in PERSONS if p != fact.person]),
            rng.choice(VERBS),
            1,
            rng.choice(COLORS),
            rng.choice(NOUNS),
        )
        premise.insert(rng.randint(0, 1), other)
    assert nli_label(fact, hypothesis) == NLI_LABELS.index(label)
    return premise, hypothesis, NLI_LABELS.index(label)


def mlm_meaning(rng: random.Random, lexicon: Lexicon, lang: str) -> list[str]:
    """Concept ids of one corpus sentence: 1-3 facts, an "at least" claim, or a category sentence."""
    draw = rng.random()
    category = rng.choice(list(CATEGORIES))
    if draw < 0.15:
        return lexicon.category_statement(rng.choice(CATEGORIES[category]), category, lang)
    if draw < 0.2:
        return lexicon.category_question(category, lang)
    if draw < 0.35:
        return lexicon.sentence_concepts([random_fact(rng, at_least=True)], lang)
    return lexicon.sentence_concepts(distinct_facts(rng, rng.randint(1, 3)), lang)


def code_switch(rng: random.Random, lexicon: Lexicon, concept_ids: list[str], lang: str) -> str:
    """Render in ``lang``'s word order, writing some words in another demo language."""
    others = [other for other in LANGUAGES if other != lang]
    return " ".join(
        lexicon.word(c, rng.choice(others) if rng.random() < CODE_SWITCH_RATE else lang) for c in concept_ids
    )


# ---------------------------------------------------------------------------------------- rows


def parallel_line(rng: random.Random, lexicon: Lexicon) -> str:
    """One meaning in English and in another demo language, side by side (in random order)."""
    facts = distinct_facts(rng, rng.randint(1, 3))
    pair = [
        lexicon.sentence(facts, "en"),
        lexicon.sentence(facts, rng.choice([lang for lang in LANGUAGES if lang != "en"])),
    ]
    rng.shuffle(pair)
    return " ".join(pair)


def mlm_lines(lexicon: Lexicon, seed: int, per_language: int, code_switched: int, parallel: int) -> list[str]:
    rng = random.Random(f"{seed}-mlm")
    lines = [lexicon.render(mlm_meaning(rng, lexicon, lang), lang) for lang in LANGUAGES for _ in range(per_language)]
    for _ in range(code_switched):
        lang = rng.choice(list(LANGUAGES))
        lines.append(code_switch(rng, lexicon, mlm_meaning(rng, lexicon, lang), lang))
    lines += [parallel_line(rng, lexicon) for _ in range(parallel)]
    rng.shuffle(lines)
    return lines


def mnli_rows(lexicon: Lexicon, seed: int, split: str, n: int) -> list[dict]:
    """glue mnli rows: premise, hypothesis, label, idx. Half the premises carry a distractor fact."""
    rng = random.Random(f"{seed}-mnli-{split}")
    rows = []
    for idx in range(n):
        premise, hypothesis, label = nli_example(rng, MNLI_DISTRACTOR)
        rows.append(
            {
                "premise": lexicon.sentence(premise, "en"),
                "hypothesis": lexicon.sentence([hypothesis], "en"),
                "label": label,
                "idx": idx,
            }
        )
    return rows


def xnli_rows(lexicon: Lexicon, seed: int, split: str, n: int, languages) -> dict[str, list[dict]]:
    """facebook/xnli rows per language: premise, hypothesis, label; row i means the same everywhere.

    Fewer distractor facts than mnli: a slightly different 'genre' of the same task.
    """
    rng = random.Random(f"{seed}-xnli-{split}")
    examples = [nli_example(rng, XNLI_DISTRACTOR) for _ in range(n)]
    return {
        lang: [
            {"premise": lexicon.sentence(p, lang), "hypothesis": lexicon.sentence([h], lang), "label": y}
            for p, h, y in examples
        ]
        for lang in languages
    }


def commonsenseqa_rows(lexicon: Lexicon, seed: int, split: str, n: int) -> list[dict]:
    """tau/commonsense_qa rows: which of five objects belongs to a category (unrelated to NLI)."""
    rng = random.Random(f"{seed}-commonsenseqa-{split}")
    rows = []
    for i in range(n):
        category = rng.choice(list(CATEGORIES))
        others = [c for c in CATEGORIES if c != category]
        choices = [rng.choice(CATEGORIES[category])] + [rng.choice(CATEGORIES[c]) for c in rng.sample(others, 4)]
        rng.shuffle(choices)
        answer = next(i for i, noun in enumerate(choices) if noun in CATEGORIES[category])
        rows.append(
            {
                "id": f"{split}-{i}",
                "question": lexicon.render(lexicon.category_question(category, "en"), "en"),
                "question_concept": category,
                "choices": {"label": CHOICE_LABELS, "text": choices},
                "answerKey": CHOICE_LABELS[answer],
            }
        )
    return rows


def tatoeba_pairs(lexicon: Lexicon, seed: int, lang: str, n: int) -> tuple[list[str], list[str]]:
    """``n`` distinct sentences in ``lang`` and their English translations, line-aligned."""
    rng = random.Random(f"{seed}-tatoeba-{lang}")
    meanings: dict[str, list[Fact]] = {}
    while len(meanings) < n:
        facts = distinct_facts(rng, rng.randint(1, 2))
        meanings.setdefault(lexicon.sentence(facts, "en"), facts)
    return [lexicon.sentence(f, lang) for f in meanings.values()], list(meanings)


# --------------------------------------------------------------------------------------- build


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def _write_lines(path: Path, lines: list[str]) -> None:
    atomic_write_text(path, "".join(line + "\n" for line in lines))


def build_world(out_dir: str | Path, seed: int = 0, sizes: dict | None = None) -> dict:
    """Write every task file under ``out_dir`` and ``out_dir/world.json``; return the index.

    Index: ``{"seed", "sizes", "languages": {lang2: lang3}, "tasks": {task: {role: path}}}`` where a
    multilingual role maps language -> path (``tasks.xnli.test.qb``) and paths are relative to
    ``out_dir`` (``load_world`` resolves them).
    """
    unknown = set(sizes or {}) - set(DEFAULT_SIZES)
    if unknown:
        raise ValueError(f"unknown world sizes {sorted(unknown)}; known: {sorted(DEFAULT_SIZES)}")
    sizes = {**DEFAULT_SIZES, **(sizes or {})}
    out, lexicon = Path(out_dir), Lexicon(seed)
    tasks: dict[str, dict] = {}

    _write_lines(
        out / "mlm" / "train.txt",
        mlm_lines(lexicon, seed, sizes["mlm_per_language"], sizes["mlm_code_switched"], sizes["mlm_parallel"]),
    )
    tasks["mlm"] = {"train": "mlm/train.txt"}

    tasks["mnli"] = {}
    for split, size in (("train", "mnli_train"), ("validation_matched", "mnli_validation")):
        _write_jsonl(out / "mnli" / f"{split}.jsonl", mnli_rows(lexicon, seed, split, sizes[size]))
        tasks["mnli"][split] = f"mnli/{split}.jsonl"

    tasks["commonsenseqa"] = {}
    for split in ("train", "validation"):
        _write_jsonl(
            out / "commonsenseqa" / f"{split}.jsonl",
            commonsenseqa_rows(lexicon, seed, split, sizes[f"commonsenseqa_{split}"]),
        )
        tasks["commonsenseqa"][split] = f"commonsenseqa/{split}.jsonl"

    tasks["xnli"] = {}
    for split in ("train", "validation", "test"):
        langs = ["en"] if split == "train" else list(LANGUAGES)
        per_lang = xnli_rows(lexicon, seed, split, sizes[f"xnli_{split}"], langs)
        tasks["xnli"][split] = {}
        for lang, rows in per_lang.items():
            _write_jsonl(out / "xnli" / lang / f"{split}.jsonl", rows)
            tasks["xnli"][split][lang] = f"xnli/{lang}/{split}.jsonl"

    tasks["tatoeba"] = {"validation": {}}
    for lang, lang3 in LANGUAGES.items():
        if lang == "en":
            continue
        source, english = tatoeba_pairs(lexicon, seed, lang, sizes["tatoeba"])
        stem = f"tatoeba/tatoeba.{lang3}-eng"
        _write_lines(out / f"{stem}.{lang3}", source)
        _write_lines(out / f"{stem}.eng", english)
        tasks["tatoeba"]["validation"][lang] = {"source": f"{stem}.{lang3}", "target": f"{stem}.eng"}

    index = {"seed": seed, "sizes": sizes, "languages": dict(LANGUAGES), "tasks": tasks}
    atomic_write_text(out / INDEX_FILE, json.dumps(index, indent=2) + "\n")
    return resolve(index, out)


def resolve(index: dict, root: Path) -> dict:
    """The index with every relative path made absolute under ``root``."""

    def walk(node):
        if isinstance(node, dict):
            return {key: walk(value) for key, value in node.items()}
        return str(root / node)

    return {**index, "root": str(root), "tasks": walk(index["tasks"])}


def load_world(out_dir: str | Path) -> dict:
    """The index ``build_world`` wrote to ``out_dir``, with absolute paths."""
    out = Path(out_dir)
    return resolve(json.loads((out / INDEX_FILE).read_text(encoding="utf-8")), out)
