"""The result record: one JSON per (experiment, seed, checkpoint, target task, split).

Written by evaluation, read by the report. Fields:

    schema_version   int, RESULT_SCHEMA_VERSION
    experiment       str   experiment name from the YAML
    seed             int
    base_model       str   e.g. "xlm-roberta-large" (the report refuses to mix base models)
    metric_version   str   METRIC_VERSION of hf_itt.metrics.scoring at scoring time
    itt              {"mode": "none" | "single" | "joint" | "sequential" | "mixed",
                      "stages": [[task, ...] per ITT stage, in order]}
    checkpoint       str   path or repo@revision of the evaluated model
    task             str   target task name ("xnli", "tatoeba", ...)
    split            str   "validation" | "test"
    primary_metric   str   the key of ``languages[lang]`` that ranks (e.g. "accuracy", "f1")
    languages        {lang: {metric: float}}   scores in percent (0-100), as the benchmarks report
    summary          {"en": float | None, "mean_non_en": float | None, "mean_all": float}
                     over primary_metric (QA tasks: primary "avg" = (em + f1) / 2)
    failed           {lang: "reason"}   languages that could not be scored (kept out of the means)
    stage_hash       str   hash of the stage chain that produced the model ("" outside a run); a run
                     re-evaluates when it differs from the current chain's
    protocol         {}    settings that change the numbers beyond the metric, for the tasks that have
                     them. BUCC: {"bucc_duplicates": "drop" | "keep", "retrieval_layer": int | None,
                     "retrieval_max_length": int, "threshold_source": {lang: "dev" | "test-oracle"}}
                     (the threshold itself is ``languages[lang]["threshold"]``)
    predictions      {lang: path of the language's prediction file, relative to this file's folder}
                     (format: ``hf_itt.predictions``); {} when none were saved
    encoder          str   retrieval results of a run: the model that embedded the sentences, "itt-stage
                     <stage>", "base model" or "target xquad (fine-tuned on squad_v1)" (XTREME-R's
                     Tatoeba); "" for fine-tuned targets and outside a run
    training         what the evaluated model's chain cost (``hf_itt.pipeline.budget.chain_training``):
                     {"itt": [{"stage", "tasks", "budget"} per ITT stage, in order], "target": the target
                     fine-tuning's entry or None}; ``budget`` holds updates, effective_batch_size,
                     examples_seen, selected_step ... (None for a stage that did not record one); {} when
                     the checkpoint has no stage manifest (a base model, results of older runs)
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from hf_itt.fileio import atomic_write_text

RESULT_SCHEMA_VERSION = 1


@dataclass
class TaskResult:
    experiment: str
    seed: int
    base_model: str
    metric_version: str
    itt: dict
    checkpoint: str
    task: str
    split: str
    primary_metric: str
    languages: dict[str, dict[str, float]]
    failed: dict[str, str] = field(default_factory=dict)
    summary: dict[str, float | None] = field(default_factory=dict)
    stage_hash: str = ""
    protocol: dict = field(default_factory=dict)
    predictions: dict[str, str] = field(default_factory=dict)
    encoder: str = ""
    training: dict = field(default_factory=dict)
    schema_version: int = RESULT_SCHEMA_VERSION

    def __post_init__(self):
        if not self.summary:
            self.summary = summarize(self.languages, self.primary_metric)

    def save(self, path: str | Path) -> Path:

        return atomic_write_text(path, json.dumps(asdict(self), indent=2, ensure_ascii=False, sort_keys=True))

    @classmethod
    def load(cls, path: str | Path) -> "TaskResult":
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if data.get("schema_version") != RESULT_SCHEMA_VERSION:
            raise ValueError(
                f"{path}: result schema_version {data.get('schema_version')!r}, "
                f"this hf_itt reads {RESULT_SCHEMA_VERSION}; re-run the evaluation"
            )
        return cls(**data)


def missing_split(task: str, split: str, lang: str) -> str:
    """The ``failed`` reason of a language the task has no data for (expected, unlike a crash)."""
    return f"{task} has no {split} split for {lang}"


def is_missing_split(reason: str) -> bool:
    return re.fullmatch(r"\S+ has no \S+ split for \S+", reason) is not None


def summarize(languages: dict[str, dict[str, float]], primary_metric: str) -> dict[str, float | None]:
    """English score, mean over non-English languages and mean over all, for the primary metric."""
    scores = {lang: metrics[primary_metric] for lang, metrics in languages.items() if primary_metric in metrics}
    non_en = [score for lang, score in scores.items() if lang != "en"]
    return {
        "en": scores.get("en"),
        "mean_non_en": sum(non_en) / len(non_en) if non_en else None,
        "mean_all": sum(scores.values()) / len(scores) if scores else None,
    }
