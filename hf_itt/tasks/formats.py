"""Local data files: find them (``resolve_paths``) and read them into plain row dicts (``read_rows``).

Formats, chosen by file name:
  .jsonl                    one JSON object per line (the Hub row schema of the task)
  .json                     SQuAD-style nested JSON (data -> paragraphs -> qas), flattened to Hub QA rows;
                            or a JSON list of row objects (or {"data": [rows]})
  .csv / .tsv               a table with a header row
  .parquet                  a table
  .conllu                   CoNLL-U: one row per sentence, tokens = FORM (col 2), tags = UPOS (col 4);
                            comments and multi-word (``1-2``) / empty (``1.1``) token lines skipped
  .conll / .iob             ``token<TAB>tag`` lines, blank line between sentences (PAN-X raw files; a
                            ``xx:`` language prefix on tokens is stripped)
  .txt                      tagging tasks: ``tokens<TAB>tags`` per line (jiant CCG); mlm: one text per line
  tatoeba.<xxx>-eng.<xxx>   Tatoeba: line i of the ``.<xxx>`` file translates line i of ``.eng``
  <xx>-en.<split>.<xx>      BUCC: ``id<TAB>sentence`` files ``.<xx>`` and ``.en``; gold pairs in ``.gold``
Readers for the last five return rows already in the canonical schema (``LocalRows.canonical``).
"""

from __future__ import annotations

import csv
import glob
import json
import re
from dataclasses import dataclass
from pathlib import Path

from hf_itt.errors import DataError

TATOEBA_NAME = re.compile(r"^tatoeba\.(?P<src>[a-z]{3})-(?P<tgt>[a-z]{3})\.(?P<ext>[a-z]{3})$")
BUCC_NAME = re.compile(r"^(?P<src>[a-z]{2})-(?P<tgt>[a-z]{2})\.(?P<split>\w+)\.(?P<ext>[a-z]{2}|gold)$")
SUPPORTED = ".jsonl .json .csv .tsv .parquet .conllu .conll .iob .txt, Tatoeba and BUCC text files"
ROLE_ALIASES = {"dev": "validation", "val": "validation", "valid": "validation"}


@dataclass
class LocalRows:
    rows: list[dict]
    canonical: bool = False  # rows already use the canonical column names of the task type


# ----------------------------------------------------------------------------------------- finding files


def resolve_paths(spec, role: str, lang: str, data_files) -> list[Path]:
    """The local files for ``role``: ``data_files`` is a path (file, directory or glob) or a dict role -> path(s).

    Paths may contain ``{lang}`` / ``{code}``; a directory is searched with ``spec.file_patterns[role]``.
    """
    entry = _entry_for_role(spec, role, data_files)
    paths = []
    for item in entry if isinstance(entry, (list, tuple)) else [entry]:
        paths += _expand(spec, role, lang, str(item))
    return paths


def _entry_for_role(spec, role, data_files):
    if not isinstance(data_files, dict):
        return data_files
    by_role = {ROLE_ALIASES.get(key, key): value for key, value in data_files.items()}
    if role not in by_role:
        raise DataError(
            f"task {spec.name}: data_files has no entry for {role!r} (it has {sorted(by_role)}); "
            f"add `{role}: path/to/file` to data_files"
        )
    return by_role[role]


def _expand(spec, role, lang, text) -> list[Path]:
    text = text.replace("{lang}", lang).replace("{code}", spec.code_for(lang))
    path = Path(text).expanduser()
    if path.is_dir():
        pattern = spec.file_patterns.get(role)
        if pattern is None:
            raise DataError(
                f"task {spec.name}: {path} is a directory and the task declares no file pattern for {role!r}; "
                "pass the file itself in data_files"
            )
        text = str(path / pattern.format(lang=lang, code=spec.code_for(lang)))
    if any(ch in text for ch in "*?["):
        matches = sorted(Path(p) for p in glob.glob(text))
        if not matches:
            raise DataError(f"task {spec.name}: no file matches {text} for {role!r} ({lang})")
        return matches
    path = Path(text)
    if not path.is_file():
        raise DataError(f"task {spec.name}: data file {path} for {role!r} does not exist")
    return [path]


# ----------------------------------------------------------------------------------------- reading files


def read_rows(spec, path: Path) -> LocalRows:
    """Rows of one local file, by file name; every error names the task and the file."""
    name = path.name
    if TATOEBA_NAME.match(name):
        return LocalRows(read_tatoeba(spec, path), canonical=True)
    if BUCC_NAME.match(name):
        return LocalRows(read_bucc(spec, path), canonical=True)
    suffix = path.suffix.lower()
    readers = {
        ".jsonl": lambda: LocalRows(read_jsonl(spec, path)),
        ".json": lambda: LocalRows(read_json_rows(spec, path)),
        ".csv": lambda: LocalRows(read_table(spec, path, ",")),
        ".tsv": lambda: LocalRows(read_table(spec, path, "\t")),
        ".parquet": lambda: LocalRows(read_parquet(spec, path)),
        ".conllu": lambda: LocalRows(read_conllu(spec, path), canonical=True),
        ".conll": lambda: LocalRows(read_conll(spec, path), canonical=True),
        ".iob": lambda: LocalRows(read_conll(spec, path), canonical=True),
        ".txt": lambda: LocalRows(read_txt(spec, path), canonical=True),
    }
    if suffix not in readers:
        raise DataError(
            f"task {spec.name}: cannot read {path}: unsupported file format {suffix or name!r}; supported: {SUPPORTED}"
        )
    return readers[suffix]()


def read_text(spec, path: Path) -> str:
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        line = err.object[: err.start].count(b"\n") + 1
        raise DataError(
            f"task {spec.name}: {path} is not UTF-8 text ({err.reason} at byte {err.start}, line {line}); "
            "re-encode it, e.g. `iconv -f <encoding> -t utf-8`"
        ) from None
    return text[1:] if text.startswith("\ufeff") else text  # a leading byte-order mark is not content


def lines_of(spec, path: Path) -> list[str]:
    """Lines split on "\n" only: str.splitlines() would also split on U+2028 etc. inside sentences."""
    lines = [line.removesuffix("\r") for line in read_text(spec, path).split("\n")]
    return lines[:-1] if lines and lines[-1] == "" else lines


def read_jsonl(spec, path: Path) -> list[dict]:
    rows = []
    for number, line in enumerate(lines_of(spec, path), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"task {spec.name}: {path} line {number} is not valid JSON ({err.msg})") from None
        if not isinstance(row, dict):
            raise DataError(f"task {spec.name}: {path} line {number} must be a JSON object, got {type(row).__name__}")
        rows.append(row)
    return rows


def read_json(spec, path: Path):
    try:
        return json.loads(read_text(spec, path))
    except json.JSONDecodeError as err:
        raise DataError(f"task {spec.name}: {path} is not valid JSON ({err.msg} at line {err.lineno})") from None


def read_json_rows(spec, path: Path) -> list[dict]:
    data = read_json(spec, path)
    if is_squad(data):
        return flatten_squad(data)
    records = data.get("data") if isinstance(data, dict) else data
    if isinstance(records, list) and all(isinstance(r, dict) for r in records):
        return records
    raise DataError(
        f"task {spec.name}: {path} is neither SQuAD-style JSON (data -> paragraphs -> qas) "
        "nor a list of row objects; use .jsonl with one row per line"
    )


def is_squad(data) -> bool:
    return (
        isinstance(data, dict)
        and isinstance(data.get("data"), list)
        and bool(data["data"])
        and isinstance(data["data"][0], dict)
        and "paragraphs" in data["data"][0]
    )


def flatten_squad(data: dict) -> list[dict]:
    """SQuAD nested JSON -> Hub rows {id, title, context, question, answers{text, answer_start}} (no stripping,
    so answer offsets stay valid; SQuAD 2.0 unanswerable questions get empty answer lists)."""
    rows = []
    for article in data["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                answers = [] if qa.get("is_impossible") else qa.get("answers", [])
                rows.append(
                    {
                        "id": str(qa["id"]),
                        "title": article.get("title", ""),
                        "context": paragraph["context"],
                        "question": qa["question"],
                        "answers": {
                            "text": [a["text"] for a in answers],
                            "answer_start": [a["answer_start"] for a in answers],
                        },
                    }
                )
    return rows


def read_table(spec, path: Path, delimiter: str) -> list[dict]:
    lines = lines_of(spec, path)
    reader = csv.DictReader(lines, delimiter=delimiter)
    rows = list(reader)
    if reader.fieldnames is None:
        raise DataError(f"task {spec.name}: {path} is empty; a header row naming the columns is required")
    for number, row in enumerate(rows, start=2):
        if None in row or None in row.values():
            raise DataError(
                f"task {spec.name}: {path} line {number} has a different number of fields than the "
                f"header {reader.fieldnames}"
            )
    return rows


def read_parquet(spec, path: Path) -> list[dict]:
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path).to_pylist()
    except Exception as err:  # pyarrow raises several types for corrupt files
        raise DataError(f"task {spec.name}: {path} is not a readable parquet file ({err})") from None


def read_conllu(spec, path: Path) -> list[dict]:
    """CoNLL-U sentences -> {"tokens": FORMs, "tags": UPOS} (XTREME's UDPOS uses only the UPOS column)."""

    def word(number: int, line: str) -> tuple[str, str] | None:
        if line.startswith("#"):
            return None
        fields = line.split("\t")
        if len(fields) != 10:
            raise DataError(
                f"task {spec.name}: {path} line {number} has {len(fields)} tab-separated fields; "
                "CoNLL-U needs 10 (ID FORM LEMMA UPOS XPOS FEATS HEAD DEPREL DEPS MISC)"
            )
        if "-" in fields[0] or "." in fields[0]:
            return None  # multi-word token range or empty node: not a word of the sentence
        return fields[1], fields[3]

    return blank_line_sentences(spec, path, word)


def read_conll(spec, path: Path) -> list[dict]:
    """`token<TAB>tag` lines, sentences separated by blank lines; XTREME's `en:token` prefixes dropped."""

    def word(number: int, line: str) -> tuple[str, str]:
        fields = line.split("\t")
        if len(fields) < 2:
            raise DataError(f"task {spec.name}: {path} line {number} must be `token<TAB>tag`, got {line!r}")
        token = fields[0]
        prefix, sep, rest = token.partition(":")
        return (rest if sep and len(prefix) in (2, 3) and prefix.isalpha() and rest else token), fields[-1]

    return blank_line_sentences(spec, path, word)


def blank_line_sentences(spec, path: Path, word) -> list[dict]:
    """Rows of {"tokens", "tags"} from a one-word-per-line file; ``word(number, line)`` gives (token, tag)
    or None for a line that is not a word."""
    rows, tokens, tags = [], [], []
    for number, line in enumerate(lines_of(spec, path), start=1):
        if not line.strip():
            if tokens:
                rows.append({"tokens": tokens, "tags": tags})
            tokens, tags = [], []
            continue
        parsed = word(number, line)
        if parsed is not None:
            tokens.append(parsed[0])
            tags.append(parsed[1])
    if tokens:
        rows.append({"tokens": tokens, "tags": tags})
    return rows


def read_txt(spec, path: Path) -> list[dict]:
    text_format = spec.task_type.text_file_format
    if text_format == "lines":
        return [{"text": line} for line in lines_of(spec, path) if line.strip()]
    if text_format != "tagged":
        raise DataError(
            f"task {spec.name}: .txt files are read as `tokens<TAB>tags` (tagging) or one text per "
            f"line (mlm), not for {spec.type}; use .jsonl/.csv/.tsv"
        )
    rows = []
    for number, line in enumerate(lines_of(spec, path), start=1):
        if not line.strip():
            continue
        text, sep, tags = line.partition("\t")
        if not sep:
            raise DataError(
                f"task {spec.name}: {path} line {number} must be `tokens<TAB>tags` "
                "(space-separated tokens, one tag per token)"
            )
        tokens, tag_list = text.split(), tags.split()
        if len(tokens) != len(tag_list):
            raise DataError(f"task {spec.name}: {path} line {number} has {len(tokens)} tokens but {len(tag_list)} tags")
        rows.append({"tokens": tokens, "tags": tag_list})
    return rows


def read_tatoeba(spec, path: Path) -> list[dict]:
    """``tatoeba.<xxx>-eng.<xxx>`` + ``.eng`` (given either one) -> aligned pairs, ids = line numbers."""
    match = TATOEBA_NAME.match(path.name)
    stem = path.parent / f"tatoeba.{match['src']}-{match['tgt']}"
    source_path, target_path = Path(f"{stem}.{match['src']}"), Path(f"{stem}.{match['tgt']}")
    for part in (source_path, target_path):
        if not part.is_file():
            raise DataError(f"task {spec.name}: Tatoeba file {part} is missing (needed next to {path})")
    sources, targets = lines_of(spec, source_path), lines_of(spec, target_path)
    if len(sources) != len(targets):
        raise DataError(
            f"task {spec.name}: {source_path} has {len(sources)} lines but {target_path} has "
            f"{len(targets)}; line i of one must translate line i of the other"
        )
    return [
        {"source_id": str(i), "source_sentence": s, "target_id": str(i), "target_sentence": t}
        for i, (s, t) in enumerate(zip(sources, targets))
    ]


def _bucc_sentences(spec, path: Path) -> dict[str, str]:
    sentences = {}
    for number, line in enumerate(lines_of(spec, path), start=1):
        key, sep, text = line.partition("\t")
        if not sep:
            raise DataError(f"task {spec.name}: {path} line {number} must be `id<TAB>sentence`")
        sentences[key] = text
    return sentences


def read_bucc(spec, path: Path) -> list[dict]:
    """BUCC ``<xx>-en.<split>.{<xx>,en,gold}`` -> gold pairs first (gold order), then every unpaired source
    sentence (empty target), then every unpaired English sentence (empty source): the mining setting."""
    match = BUCC_NAME.match(path.name)
    stem = path.parent / f"{match['src']}-{match['tgt']}.{match['split']}"
    source_path, target_path, gold_path = (Path(f"{stem}.{ext}") for ext in (match["src"], match["tgt"], "gold"))
    for part in (source_path, target_path):
        if not part.is_file():
            raise DataError(f"task {spec.name}: BUCC file {part} is missing (needed next to {path})")
    sources, targets = _bucc_sentences(spec, source_path), _bucc_sentences(spec, target_path)
    rows, paired_sources, paired_targets = [], set(), set()
    for number, line in enumerate(lines_of(spec, gold_path) if gold_path.is_file() else [], start=1):
        source_id, _, target_id = line.partition("\t")
        if source_id not in sources or target_id not in targets:
            raise DataError(
                f"task {spec.name}: {gold_path} line {number} pairs ids {source_id!r}/{target_id!r} "
                f"that are not in {source_path.name}/{target_path.name}"
            )
        rows.append(
            {
                "source_id": source_id,
                "source_sentence": sources[source_id],
                "target_id": target_id,
                "target_sentence": targets[target_id],
            }
        )
        paired_sources.add(source_id)
        paired_targets.add(target_id)
    rows += [
        {"source_id": k, "source_sentence": v, "target_id": "", "target_sentence": ""}
        for k, v in sources.items()
        if k not in paired_sources
    ]
    rows += [
        {"source_id": "", "source_sentence": "", "target_id": k, "target_sentence": v}
        for k, v in targets.items()
        if k not in paired_targets
    ]
    return rows
