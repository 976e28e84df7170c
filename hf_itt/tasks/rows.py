"""Row-level conversion from a source row to the canonical row of a task type, with validation.

Used by ``loading`` for Hub datasets (inside ``Dataset.map``) and local files alike, so both paths map
columns, labels and answers identically. Every error names the task, the origin (file or Hub split) and
the 1-based row number.
"""

from __future__ import annotations

from hf_itt.errors import DataError
from hf_itt.tasks import schema


def get_value(row: dict, ref):
    """Resolve one column reference: a column name, a dotted path into nested dicts, a ``{}`` template, or a
    list of those. Raises KeyError for a missing column."""
    if ref is None:
        return None
    if isinstance(ref, list):
        return [get_value(row, item) for item in ref]
    if "{" in ref:
        return ref.format_map(row).strip()
    if ref in row:
        return row[ref]
    value = row
    for part in ref.split("."):
        value = value[part]
    return value


class LabelMapper:
    """Source label value -> index in ``spec.labels`` by name (or a plain index when the task has no names)."""

    def __init__(self, spec, source_names, where):
        self.spec, self.where = spec, where
        self.names = spec.labels
        self.index = {name: i for i, name in enumerate(spec.labels or [])}
        self.source_names = source_names
        self.drop = {str(value) for value in spec.drop_labels}

    def drops(self, value) -> bool:
        return value is not None and str(value) in self.drop

    def __call__(self, value, row_number: int) -> int:
        if isinstance(value, str) and value in self.index:
            return self.index[value]
        number = _as_int(value)
        if number is None:
            self._fail(value, row_number)
        if self.source_names is not None:
            if not 0 <= number < len(self.source_names):
                self._fail(value, row_number, f"source label ids go 0..{len(self.source_names) - 1}")
            name = self.source_names[number]
            if name not in self.index:
                self._fail(value, row_number, f"its name {name!r} is not a label of the task")
            return self.index[name]
        limit = len(self.names) if self.names else self.spec.num_choices
        if not 0 <= number < limit:
            self._fail(value, row_number)
        return number

    def _fail(self, value, row_number, why=""):
        labels = self.names if self.names else list(range(self.spec.num_choices or 0))
        detail = f" ({why})" if why else ""
        raise DataError(f"task {self.spec.name}: {self.where}, row {row_number}: label {value!r} is not one of "
                        f"{labels}{detail}; fix the data or the spec's `labels` / `source_labels`")


def _as_int(value):
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


class RowConverter:
    """Callable (row, index) -> canonical row, or None for a row to drop (filtered out / dropped label)."""

    def __init__(self, spec, columns: dict, source_label_names, lang: str, where: str):
        self.spec, self.columns, self.where = spec, columns, where
        self.labels = LabelMapper(spec, source_label_names, where)
        self.prefix = None
        if spec.filter:
            self.prefix = spec.filter["startswith"].format(lang=lang, code=spec.code_for(lang))
        self.convert = {
            schema.CLASSIFICATION: self._classification,
            schema.MULTIPLE_CHOICE: self._multiple_choice,
            schema.EXTRACTIVE_QA: self._extractive_qa,
            schema.TAGGING: self._tagging,
            schema.MLM: self._mlm,
            schema.RETRIEVAL: self._retrieval,
        }[spec.type]

    def __call__(self, row: dict, index: int):
        number = index + 1
        if self.prefix is not None and not str(self._value(row, self.spec.filter["column"], number)).startswith(
                self.prefix):
            return None
        return self.convert(row, number)

    # -- value access ------------------------------------------------------------------------------------

    def _fail(self, number: int, message: str):
        raise DataError(f"task {self.spec.name}: {self.where}, row {number}: {message}")

    def _value(self, row, ref, number):
        try:
            return get_value(row, ref)
        except (KeyError, IndexError, TypeError) as err:
            self._fail(number, f"cannot read {ref!r} ({type(err).__name__}: {err}); the row has columns "
                               f"{sorted(row)}")

    def _column(self, row, canonical, number):
        return self._value(row, self.columns.get(canonical), number)

    def _text(self, row, canonical, number, optional=False):
        value = self._column(row, canonical, number)
        if value is None and optional:
            return None
        if not isinstance(value, str):
            self._fail(number, f"{canonical} ({self.columns.get(canonical)!r}) must be text, got {value!r}")
        return value

    def _id(self, row, canonical, number):
        ref = self.columns.get(canonical)
        return str(number - 1) if ref is None else str(self._value(row, ref, number))

    # -- one method per task type ---------------------------------------------------------------------------

    def _classification(self, row, number):
        label = self._column(row, "label", number)
        if self.labels.drops(label):
            return None
        return {"text_a": self._text(row, "text_a", number), "text_b": self._text(row, "text_b", number, True),
                "label": self.labels(label, number)}

    def _multiple_choice(self, row, number):
        label = self._column(row, "label", number)
        if self.labels.drops(label):
            return None
        choices = self._choices(row, number)
        if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices):
            self._fail(number, f"choices must be a list of texts, got {choices!r}")
        if len(choices) != self.spec.num_choices:
            self._fail(number, f"{len(choices)} choices, the task has {self.spec.num_choices}")
        return {"prompt": self._text(row, "prompt", number), "choices": choices, "label": self.labels(label, number)}

    def _choices(self, row, number):
        try:
            return get_value(row, self.columns.get("choices"))
        except IndexError:  # a template such as "{endings[3]}" on a row with fewer endings
            self._fail(number, f"fewer choices than the task's {self.spec.num_choices} (cannot fill "
                               f"{self.columns.get('choices')!r}); give every row {self.spec.num_choices} choices")
        except (KeyError, TypeError):
            return self._column(row, "choices", number)  # names the missing column

    def _extractive_qa(self, row, number):
        context = self._text(row, "context", number)
        answers = _normalise_answers(self._column(row, "answers", number))
        if answers is None:
            self._fail(number, "answers must be {'text': [...], 'answer_start': [...]} or a list of "
                               "{'text', 'answer_start'} objects")
        for text, start in zip(answers["text"], answers["answer_start"]):
            if not isinstance(start, int) or start < 0 or start + len(text) > len(context):
                self._fail(number, f"answer {text!r} at answer_start {start} runs past the context "
                                   f"({len(context)} characters)")
            if context[start:start + len(text)] != text:
                found = context[start:start + len(text)]
                self._fail(number, f"answer {text!r} does not match the context at answer_start {start} "
                                   f"(context has {found!r} there)")
        return {"id": self._id(row, "id", number), "context": context,
                "question": self._text(row, "question", number), "answers": answers}

    def _tagging(self, row, number):
        tokens = self._column(row, "tokens", number)
        tags = self._column(row, "tags", number)
        if not isinstance(tokens, list) or not isinstance(tags, list) or len(tokens) != len(tags):
            self._fail(number, f"tokens and tags must be lists of equal length, got {tokens!r} / {tags!r}")
        return {"tokens": [str(t) for t in tokens], "tags": [self.labels(tag, number) for tag in tags]}

    def _mlm(self, row, number):
        text = self._text(row, "text", number)
        return {"text": text} if text.strip() else None

    def _retrieval(self, row, number):
        return {"source_id": self._id(row, "source_id", number),
                "source_sentence": self._text(row, "source_sentence", number),
                "target_id": self._id(row, "target_id", number),
                "target_sentence": self._text(row, "target_sentence", number)}


def _normalise_answers(answers):
    if isinstance(answers, list) and all(isinstance(a, dict) for a in answers):  # SQuAD list of objects
        answers = {"text": [a.get("text") for a in answers], "answer_start": [a.get("answer_start") for a in answers]}
    if not isinstance(answers, dict) or not {"text", "answer_start"} <= set(answers):
        return None
    texts, starts = list(answers["text"]), [_as_int(s) for s in answers["answer_start"]]
    if len(texts) != len(starts) or not all(isinstance(t, str) for t in texts):
        return None
    return {"text": texts, "answer_start": starts}
