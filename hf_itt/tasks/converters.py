"""Python escape hatches for tasks a declarative spec cannot describe (``converter:`` in the YAML).

A converter is ``fn(spec, role, lang, data_files)``. For answer_retrieval tasks it returns
``(queries, candidates)`` as lists of canonical rows (see ``schema.py``); for any other type it returns a
list of canonical rows, which ``load_split`` still validates and maps to label ids by name.

Local formats:
  * LAReQA: XQuAD-R JSON per language (``xquad-r/<lang>.json``): SQuAD JSON whose paragraphs carry
    ``sentence_breaks`` ([start, end] character offsets). Pass a directory or a ``{lang}`` path template.
  * Mewsli-X: the files written by ``get-mewsli-x.sh`` (google-research dense_representations_for_entity_
    retrieval/mel): ``wikinews_mentions-{dev,test}.jsonl`` (one article + its mentions per line),
    ``candidate_set_entities.jsonl`` (one entity per line), ``wikipedia_pairs-{train,dev}.jsonl`` (one
    mention-entity pair per line). Pass the directory, or a dict with the roles and ``candidates``.
"""

from __future__ import annotations

import re
from collections import defaultdict

from hf_itt.errors import DataError, TaskError
from hf_itt.task_types.answer_retrieval import split_sentences
from hf_itt.tasks import formats
from hf_itt.tasks.hub_source import load_hub_split


def get_converter(name: str):
    if name not in CONVERTERS:
        raise TaskError(f"unknown converter {name!r}; available: {', '.join(sorted(CONVERTERS))}")
    return CONVERTERS[name]


# ------------------------------------------------------------------------------------------------ LAReQA


def lareqa(spec, role, lang, data_files):
    """XQuAD-R as in XTREME-R's utils_lareqa: candidates are the sentences of every paragraph of every
    language (id ``<lang>_<paragraph#>_<sentence#>``); a question's gold set is its answer sentence in every
    language (questions share their id across languages)."""
    candidates, gold, questions = [], defaultdict(list), []
    for code in spec.languages:
        data = _lareqa_local(spec, role, code, data_files) if data_files is not None else _lareqa_hub(spec, role, code)
        for number, paragraph in enumerate((p for a in data["data"] for p in a["paragraphs"]), start=1):
            context = paragraph["context"]
            breaks = [tuple(b) for b in paragraph.get("sentence_breaks") or split_sentences(context)]
            if paragraph["qas"]:
                candidates += [
                    {"candidate_id": f"{code}_{number}_{pos}", "text": context[start:end], "context": context}
                    for pos, (start, end) in enumerate(breaks)
                ]
            for qa in paragraph["qas"]:
                start = qa["answers"][0]["answer_start"]
                pos = next((i for i, (s, e) in enumerate(breaks) if s <= start < e), None)
                if pos is None:  # XTREME skips answers that fall outside every sentence
                    continue
                gold[qa["id"]].append(f"{code}_{number}_{pos}")
                if code == lang:
                    questions.append((qa["id"], qa["question"]))
    queries = [
        {"query_id": f"{xling_id}_{lang}", "query": question, "gold_ids": gold[xling_id]}
        for xling_id, question in questions
    ]
    return queries, candidates


def _lareqa_local(spec, role, code, data_files):
    paths = formats.resolve_paths(spec, role, code, data_files)
    if len(paths) != 1:
        raise DataError(
            f"task {spec.name}: expected one XQuAD-R file for {code!r}, found {[str(p) for p in paths]}; "
            "pass a path template with {lang}, e.g. xquad-r/{lang}.json"
        )
    data = formats.read_json(spec, paths[0])
    if not formats.is_squad(data):
        raise DataError(f"task {spec.name}: {paths[0]} is not SQuAD-style JSON (data -> paragraphs -> qas)")
    return data


def _lareqa_hub(spec, role, code):
    """Rebuild SQuAD nesting from the Hub's flat rows: one paragraph per distinct context, in order."""
    source = next((s for s in spec.sources if role in s.splits and s.serves(code)), None)
    if source is None:
        raise DataError(f"task {spec.name} has no {role!r} split on the Hub; pass `data_files:`")
    paragraphs = {}
    for split_name in source.splits[role]:
        for row in load_hub_split(spec, source, code, split_name):
            paragraph = paragraphs.setdefault(row["context"], {"context": row["context"], "qas": []})
            answers = [
                {"text": t, "answer_start": s} for t, s in zip(row["answers"]["text"], row["answers"]["answer_start"])
            ]
            paragraph["qas"].append({"id": row["id"], "question": row["question"], "answers": answers})
    return {"data": [{"paragraphs": list(paragraphs.values())}]}


# ---------------------------------------------------------------------------------------------- Mewsli-X

_MARKED = re.compile(r"\{(.*?)\}")


def _normalise_space(text: str) -> str:
    return " ".join(text.splitlines()).replace("  ", " ").strip()


def mention_query(spec, context: dict, mention: dict, where: str) -> str:
    """XTREME-R's baseline mention text: ``mention: left { mention } right`` over the mention's sentence."""
    text, span = context["text"], mention["mention_span"]
    start, end = span["start"], span["end"]
    if text[start:end] != span["text"]:
        raise DataError(
            f"task {spec.name}: {where}: mention {span['text']!r} does not match the article text at "
            f"{start}:{end}; the *_no_text files need get-mewsli-x.sh to fill in the article text"
        )
    sentence = next((s for s in context["sentence_spans"] if s["start"] <= start < s["end"] and end <= s["end"]), None)
    if sentence is None:
        raise DataError(f"task {spec.name}: {where}: mention {span['text']!r} crosses a sentence boundary")
    left = _MARKED.sub(r"(\1)", text[sentence["start"] : start])
    right = _MARKED.sub(r"(\1)", text[end : sentence["end"]])
    return _normalise_space(f"{span['text']}: {left} {{ {span['text']} }} {right}")


def entity_candidate(entity: dict) -> dict:
    description = entity["description"]
    sentences = " ".join(description[s["start"] : s["end"]] for s in entity["sentence_spans"])
    return {"candidate_id": entity["entity_id"], "text": _normalise_space(sentences), "context": ""}


def _mewsli_paths(spec, role, lang, data_files):
    if data_files is None:
        raise DataError(
            f"task {spec.name} has no Hub copy: build it with get-mewsli-x.sh (google-research "
            "dense_representations_for_entity_retrieval/mel) and pass its output directory as data_files"
        )
    return formats.resolve_paths(spec, role, lang, data_files)


def mewsli_x(spec, role, lang, data_files):
    """WikiNews mentions in ``lang`` (queries, one gold entity each) against the fixed candidate entity set."""
    queries = []
    for path in _mewsli_paths(spec, role, lang, data_files):
        for number, record in enumerate(formats.read_jsonl(spec, path), start=1):
            if record["context"]["language"] != lang:
                continue
            for mention in record["mentions"]:
                query = mention_query(spec, record["context"], mention, f"{path} line {number}")
                queries.append({"query_id": mention["example_id"], "query": query, "gold_ids": [mention["entity_id"]]})
    candidates = [
        entity_candidate(entity)
        for path in _mewsli_paths(spec, "candidates", lang, data_files)
        for entity in formats.read_jsonl(spec, path)
    ]
    return queries, candidates


def mewsli_x_wikipedia(spec, role, lang, data_files):
    """Wikipedia mention-entity pairs (Mewsli-X's English training data); candidates = the paired entities."""
    queries, candidates, seen = [], [], set()
    for path in _mewsli_paths(spec, role, lang, data_files):
        for number, pair in enumerate(formats.read_jsonl(spec, path), start=1):
            mention, entity = pair["contextual_mention"], pair["entity"]
            query = mention_query(spec, mention["context"], mention["mention"], f"{path} line {number}")
            queries.append(
                {"query_id": mention["mention"]["example_id"], "query": query, "gold_ids": [entity["entity_id"]]}
            )
            if entity["entity_id"] not in seen:
                seen.add(entity["entity_id"])
                candidates.append(entity_candidate(entity))
    return queries, candidates


CONVERTERS = {"lareqa": lareqa, "mewsli_x": mewsli_x, "mewsli_x_wikipedia": mewsli_x_wikipedia}
