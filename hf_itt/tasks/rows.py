"""Row-level conversion from a source row to the canonical row of a task type, with validation.

Used by ``loading`` for Hub datasets (inside ``Dataset.map``) and local files alike, so both paths map
columns, labels and answers identically. Every error names the task, the origin (file or Hub split) and
the 1-based row number.
"""

from __future__ import annotations

from hf_itt.errors import DataError
from hf_itt.task_types import get_type
from hf_itt.task_types.base import as_int


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
        number = as_int(value)
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
        raise DataError(
            f"task {self.spec.name}: {self.where}, row {row_number}: label {value!r} is not one of "
            f"{labels}{detail}; fix the data or the spec's `labels` / `source_labels`"
        )


class RowConverter:
    """Callable (row, index) -> canonical row, or None for a row to drop (filtered out / dropped label).

    The task's type converts the row (``TaskType.convert_row``); this class gives it checked access to
    the mapped columns (``column``, ``text``, ``row_id``, ``choices``), the label mapper (``labels``) and
    ``fail`` for an error that names the task, the origin and the row.
    """

    def __init__(self, spec, columns: dict, source_label_names, lang: str, where: str):
        self.spec, self.columns, self.where = spec, columns, where
        self.labels = LabelMapper(spec, source_label_names, where)
        self.task_type = get_type(spec.type)
        self.prefix = None
        if spec.filter:
            self.prefix = spec.filter["startswith"].format(lang=lang, code=spec.code_for(lang))

    def __call__(self, row: dict, index: int):
        number = index + 1
        if self.prefix is not None and not str(self.value(row, self.spec.filter["column"], number)).startswith(
            self.prefix
        ):
            return None
        return self.task_type.convert_row(self, row, number)

    def fail(self, number: int, message: str):
        raise DataError(f"task {self.spec.name}: {self.where}, row {number}: {message}")

    def value(self, row, ref, number):
        try:
            return get_value(row, ref)
        except (KeyError, IndexError, TypeError) as err:
            self.fail(number, f"cannot read {ref!r} ({type(err).__name__}: {err}); the row has columns {sorted(row)}")

    def column(self, row, canonical, number):
        return self.value(row, self.columns.get(canonical), number)

    def text(self, row, canonical, number, optional=False):
        value = self.column(row, canonical, number)
        if value is None and optional:
            return None
        if not isinstance(value, str):
            self.fail(number, f"{canonical} ({self.columns.get(canonical)!r}) must be text, got {value!r}")
        return value

    def row_id(self, row, canonical, number):
        ref = self.columns.get(canonical)
        return str(number - 1) if ref is None else str(self.value(row, ref, number))

    def choices(self, row, number):
        try:
            return get_value(row, self.columns.get("choices"))
        except IndexError:  # a template such as "{endings[3]}" on a row with fewer endings
            self.fail(
                number,
                f"fewer choices than the task's {self.spec.num_choices} (cannot fill "
                f"{self.columns.get('choices')!r}); give every row {self.spec.num_choices} choices",
            )
        except (KeyError, TypeError):
            return self.column(row, "choices", number)  # names the missing column
