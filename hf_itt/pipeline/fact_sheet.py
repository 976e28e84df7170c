"""Dataset sizes the compute plan falls back on when the data is not on disk (offline planning).

Every number is copied from the project's task fact sheet (``TASKS.md``; marks [V] verified in source
code, [V-card] from the dataset card, [U] unverified), with the section it comes from. A task that is
missing here has an unknown size: the plan says so and leaves it out of the totals.
"""

from __future__ import annotations

# Training rows of the English training tasks (ITT tasks and the targets' English training sets).
TRAIN_ROWS: dict[str, tuple[int, str]] = {
    "mnli": (392_702, "TASKS.md 1.1 [V-card]"),
    "qqp": (363_846, "TASKS.md 1.2 [V-card]"),
    "anli_plus": (1_104_934, "TASKS.md 1.3 [V]"),
    "squad_v1": (87_599, "TASKS.md 1.4 [V-card]"),
    "squad_v2": (130_319, "TASKS.md 1.5 [V-card]"),
    "hellaswag": (39_905, "TASKS.md 1.6 [V-card]"),
    "cosmosqa": (25_262, "TASKS.md 1.7 [V-card]"),
    "commonsenseqa": (9_741, "TASKS.md 1.8 [V-card]"),
    "ccg": (39_600, "TASKS.md 1.9 [U] ~39.6k sentences"),
    "pawsx_en": (49_401, "TASKS.md 2.2 [V-card]"),
    "panx_en": (20_000, "TASKS.md 2.4 [V-card]"),
    "tydiqa_en": (3_696, "TASKS.md 2.7 [U]"),
    "copa": (400, "TASKS.md 3.1 [V] SuperGLUE COPA train"),
}

# Evaluation rows per language and split of the zero-shot targets: {task: {split: rows per language}}
# (a dict value gives the rows of each language). Retrieval rows are sentence pairs.
EVAL_ROWS: dict[str, tuple[dict, str]] = {
    "xnli": ({"validation": 2_490, "test": 5_010}, "TASKS.md 2.1 [V-card]"),
    "pawsx": ({"validation": 2_000, "test": 2_000}, "TASKS.md 2.2 [V-card]"),
    "xquad": ({"validation": 1_190}, "TASKS.md 2.5 [V-card]"),
    "mlqa": (
        {
            "validation": {"ar": 517, "de": 512, "en": 1_148, "es": 500, "hi": 507, "vi": 511, "zh": 504},
            "test": {"ar": 5_335, "de": 4_517, "en": 11_590, "es": 5_253, "hi": 4_918, "vi": 5_495, "zh": 5_137},
        },
        "TASKS.md 2.6 [V-card]/[U]",
    ),
    "tatoeba": ({"validation": 1_000}, "TASKS.md 2.9 [V-card] (1,000 pairs, fewer for a few languages)"),
    "xcopa": ({"validation": 100, "test": 500}, "TASKS.md 3.1 [V-card]"),
}
EVAL_ROWS["tatoeba_xtreme_r"] = EVAL_ROWS["tatoeba"]  # the same pairs, XTREME-R's languages and encoder
# Sequences a row stands for at evaluation: both sentences of a retrieval pair.
SEQUENCES_PER_ROW = {"tatoeba": 2, "tatoeba_xtreme_r": 2}


def train_rows(task: str) -> tuple[int | None, str]:
    rows, source = TRAIN_ROWS.get(task, (None, "not in the fact sheet"))
    return rows, source


def eval_rows(task: str, split: str, lang: str) -> tuple[int | None, str]:
    """Rows of one language and split (None: unknown, or the split does not exist for the task)."""
    if task not in EVAL_ROWS:
        return None, "not in the fact sheet"
    splits, source = EVAL_ROWS[task]
    rows = splits.get(split)
    if isinstance(rows, dict):
        rows = rows.get(lang)
    return rows, source
