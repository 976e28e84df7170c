"""`prepare:` hook of run_scripts/real_cpu.yaml: the real base encoder and the study's data files.

``model.name_or_path`` names ``<root>/e5-small``: the hook builds multilingual-e5-small there
(``hf-itt build-base``, reused when present) and writes the study's data under ``<root>/data`` from the
real samples in ../shared/data (``HF_ITT_SHARED_DATA`` elsewhere), which stay where they are:

- ``xquad/xquad.<lang>.json``: XQuAD's evaluation articles (every 12th article, from the 6th: 4 of 48,
  104 questions) in all 12 languages; ``squad_en/train.json``: every 4th of the 44 remaining
  English articles (11 articles, QUESTIONS questions; a CPU budget), the English QA training set. The split
  is by article, so no evaluated paragraph is seen in training in any language; ``split.json`` lists
  the titles.
- ``ud/en_ewt-ud-train.conllu``: the whole UD English-EWT dev file (2,001 of the 4,078 sentences in
  ../shared/data; a CPU budget), the English POS training set; ``ud/UD_<treebank>`` links to the de / zh / hi / ar test samples.
- ``xcopa/train.en.jsonl``: 500 English rows, XCOPA's machine-translated *test* items (data-gmt;
  item i translated from the (i mod 10)-th source language), the English training set;
  ``xcopa/<lang>`` links to the 11 languages' *validation* items (100 each, disjoint from test).
- ``tatoeba``: the first 200 pairs of each of the 13 Tatoeba language pairs (line-aligned files).

Everything is rewritten only when missing, so a second run starts at once.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from hf_itt.bases import build_base
from hf_itt.errors import ConfigError, DataError
from hf_itt.fileio import atomic_write_text

BASE_NAME = "e5-small"
XQUAD_LANGUAGES = ("ar", "de", "el", "en", "es", "hi", "ro", "ru", "th", "tr", "vi", "zh")
EVAL_EVERY, EVAL_OFFSET = 12, 5  # evaluation articles: index % 12 == 5
TRAIN_EVERY = 4  # English training articles: every 4th of the others (a CPU budget)
TATOEBA_PAIRS = 200
UD_TEST = ("UD_German-GSD", "UD_Chinese-GSD", "UD_Hindi-PUD", "UD_Arabic-PUD")
EWT_FILES = ("en_ewt-ud-dev.conllu",)  # the test file too (4,078 sentences) doubles the POS training time
XCOPA_MT_LANGUAGES = ("et", "ht", "id", "it", "sw", "ta", "th", "tr", "vi", "zh")


def prepare(config) -> Path:
    base = Path(config.resolve_path(config.model.name_or_path))
    if base.name != BASE_NAME:
        raise ConfigError(
            f"real_cpu: model.name_or_path must end in /{BASE_NAME} (the data go next to it), "
            f"got {config.model.name_or_path!r}"
        )
    shared = shared_data()
    print(f"real_cpu: base encoder {base} (built once, about a minute) and data in {base.parent / 'data'}", flush=True)
    build_base(BASE_NAME, base)
    write_study_data(shared, base.parent / "data")
    return base


def shared_data() -> Path:
    default = Path(__file__).resolve().parents[2].parent / "shared" / "data"
    folder = Path(os.environ.get("HF_ITT_SHARED_DATA", default))
    if not (folder / "xquad").is_dir():
        raise DataError(
            f"real_cpu: the real data samples are not at {folder}; set HF_ITT_SHARED_DATA to the folder "
            "holding xquad/, ud/, xcopa/ and tatoeba/"
        )
    return folder


def write_study_data(shared: Path, out: Path) -> None:
    write_xquad_split(shared / "xquad", out)
    write_ud(shared / "ud", out / "ud")
    write_xcopa(shared / "xcopa", out / "xcopa")
    write_tatoeba(shared / "tatoeba", out / "tatoeba")


def write_xquad_split(xquad: Path, out: Path) -> None:
    if (out / "split.json").is_file():
        return
    english = read_json(xquad / "xquad.en.json")["data"]
    evaluated = [i for i in range(len(english)) if i % EVAL_EVERY == EVAL_OFFSET]
    trained = [i for i in range(len(english)) if i not in evaluated][::TRAIN_EVERY]
    for lang in XQUAD_LANGUAGES:
        articles = read_json(xquad / f"xquad.{lang}.json")["data"]
        if [question_ids(a) for a in articles] != [question_ids(a) for a in english]:
            raise DataError(f"{xquad}/xquad.{lang}.json is not parallel to xquad.en.json (other article order)")
        write_json(out / "xquad" / f"xquad.{lang}.json", {"version": "1.1", "data": [articles[i] for i in evaluated]})
    write_json(out / "squad_en" / "train.json", {"version": "1.1", "data": [english[i] for i in trained]})
    count = lambda indices: sum(len(question_ids(english[i])) for i in indices)  # noqa: E731
    write_json(
        out / "split.json",
        {
            "rule": f"evaluation articles: index % {EVAL_EVERY} == {EVAL_OFFSET} in xquad.en.json",
            "evaluation": {"titles": [english[i]["title"] for i in evaluated], "questions": count(evaluated)},
            "training": {"titles": [english[i]["title"] for i in trained], "questions": count(trained)},
        },
    )


def write_ud(ud: Path, out: Path) -> None:
    train = out / "en_ewt-ud-train.conllu"
    if not train.is_file():
        parts = [(ud / "UD_English-EWT" / name).read_text(encoding="utf-8") for name in EWT_FILES]
        atomic_write_text(
            train, "".join(part if part.endswith("\n\n") else part.rstrip("\n") + "\n\n" for part in parts)
        )
    for treebank in UD_TEST:
        link(ud / treebank, out / treebank)


def write_xcopa(xcopa: Path, out: Path) -> None:
    train = out / "train.en.jsonl"
    if not train.is_file():
        translations = {
            lang: read_jsonl(xcopa / "data-gmt" / lang / f"test.{lang}.jsonl") for lang in XCOPA_MT_LANGUAGES
        }
        items = range(len(translations[XCOPA_MT_LANGUAGES[0]]))
        rows = [translations[XCOPA_MT_LANGUAGES[item % len(XCOPA_MT_LANGUAGES)]][item] for item in items]
        atomic_write_text(train, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    for lang_dir in sorted((xcopa / "data").iterdir()):
        link(lang_dir, out / lang_dir.name)


def write_tatoeba(tatoeba: Path, out: Path) -> None:
    if out.is_symlink():  # never write through a link into the shared samples
        out.unlink()
    for path in sorted(tatoeba.glob("tatoeba.*-eng.*")):
        target = out / path.name
        if not target.is_file():
            lines = path.read_text(encoding="utf-8").split("\n")[:TATOEBA_PAIRS]
            atomic_write_text(target, "\n".join(lines) + "\n")


def question_ids(article: dict) -> list[str]:
    return [qa["id"] for paragraph in article["paragraphs"] for qa in paragraph["qas"]]


def link(source: Path, target: Path) -> None:
    """A symlink to the shared sample (nothing copied); replaced if it points elsewhere."""
    if target.is_symlink() and Path(os.readlink(target)) == source.resolve():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_symlink():
        target.unlink()
    target.symlink_to(source.resolve(), target_is_directory=source.is_dir())


def read_json(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def write_json(path: Path, value) -> None:
    atomic_write_text(path, json.dumps(value, ensure_ascii=False))
