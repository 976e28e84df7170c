"""Canonical rows (hf_itt.tasks.schema) of the real samples in ../shared/data, through hf_itt's loaders.

XQuAD (12 languages' QA), XCOPA (11 languages, 2 choices), UD POS (en de zh hi ar), Tatoeba pairs
(13 languages <-> English, as sentence-pair classification rows: a PAWS-X-shaped workload) and an
"MNLI-like" set: each premise is a real English XQuAD context sentence, each hypothesis a real English
Tatoeba sentence. Real MNLI has premises of ~22 and hypotheses of ~11 words on average; these have
~24 and ~7 (English word counts of the samples), so the length distribution is MNLI-like, not MNLI's.
"""

from __future__ import annotations

from pathlib import Path

UD_FILES = {  # language -> (file under ud/, role)
    "en": ("UD_English-EWT/en_ewt-ud-dev.first300.conllu", "validation"),
    "de": ("UD_German-GSD/de_gsd-ud-test.first200.conllu", "test"),
    "zh": ("UD_Chinese-GSD/zh_gsd-ud-test.first200.conllu", "test"),
    "hi": ("UD_Hindi-PUD/hi_pud-ud-test.first200.conllu", "test"),
    "ar": ("UD_Arabic-PUD/ar_pud-ud-test.first200.conllu", "test"),
}


def _cap(dataset, limit: int | None):
    return dataset if limit is None else dataset.select(range(min(limit, len(dataset))))


def xquad(data: Path, languages=None, limit: int | None = None) -> dict:
    """language -> QA rows (XTREME's 11 XQuAD languages)."""
    from hf_itt.tasks.loading import load_split
    from hf_itt.tasks.registry import get_task

    spec = get_task("xquad")
    return {
        lang: _cap(load_split(spec, "validation", lang=lang, data_files=str(data / "xquad")), limit)
        for lang in languages or spec.languages
    }


def xcopa(data: Path, languages=None, limit: int | None = None, split: str = "test") -> dict:
    from hf_itt.tasks.loading import load_split
    from hf_itt.tasks.registry import get_task

    spec = get_task("xcopa")
    return {
        lang: _cap(load_split(spec, split, lang=lang, data_files=str(data / "xcopa" / "data")), limit)
        for lang in languages or spec.languages
    }


def udpos(data: Path, languages=None, limit: int | None = None) -> dict:
    from hf_itt.tasks.loading import load_split
    from hf_itt.tasks.registry import get_task

    spec = get_task("udpos")
    return {
        lang: _cap(
            load_split(spec, UD_FILES[lang][1], lang=lang, data_files=str(data / "ud" / UD_FILES[lang][0])), limit
        )
        for lang in languages or UD_FILES
    }


def tatoeba(data: Path, languages=None, limit: int | None = None) -> dict:
    """language -> retrieval rows of the Tatoeba pairs present in the samples."""
    from hf_itt.tasks.loading import load_split
    from hf_itt.tasks.registry import get_task

    spec = get_task("tatoeba")
    present = {path.name.split(".")[1].split("-")[0] for path in (data / "tatoeba").glob("tatoeba.*-eng.eng")}
    langs = languages or [lang for lang, code in spec.lang_codes.items() if code in present and lang in spec.languages]
    return {
        lang: _cap(load_split(spec, "validation", lang=lang, data_files=str(data / "tatoeba")), limit) for lang in langs
    }


def tatoeba_pairs(data: Path, languages=None, limit: int | None = None):
    """Tatoeba translation pairs as classification rows (text_a foreign, text_b English, label 1)."""
    from datasets import Dataset

    rows = [
        {"text_a": row["source_sentence"], "text_b": row["target_sentence"], "label": 1}
        for dataset in tatoeba(data, languages, limit).values()
        for row in dataset
    ]
    return Dataset.from_list(rows)


def mnli_like(data: Path, limit: int | None = None):
    """Real English sentences in MNLI's shape: (XQuAD context sentence, Tatoeba English sentence)."""
    from datasets import Dataset

    from hf_itt.tasks.converters import split_sentences

    contexts = xquad(data, ["en"])["en"].unique("context")
    premises = [context[start:end] for context in contexts for start, end in split_sentences(context)]
    hypotheses = [row["target_sentence"] for dataset in tatoeba(data).values() for row in dataset]
    count = min(len(premises), len(hypotheses), limit or len(premises))
    return Dataset.from_list(
        [
            {"text_a": premises[i], "text_b": hypotheses[(i * 7919) % len(hypotheses)], "label": i % 3}
            for i in range(count)
        ]
    )


def concat(datasets: dict):
    from datasets import concatenate_datasets

    return concatenate_datasets(list(datasets.values()))
