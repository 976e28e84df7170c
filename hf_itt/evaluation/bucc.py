"""The BUCC 2018 protocol around the mining: data check, threshold provenance, repeated sentences.

* **Data.** The Hub copy (``google/xtreme`` ``bucc18.<lang>``) holds the gold pairs only: every
  sentence has its partner and there are no distractors, so mining is nearly trivial. Such rows are
  refused unless ``allow_gold_only``; the shared-task files keep every sentence (``GOLD_ONLY_FIX``).
* **Threshold.** On validation the threshold is optimised on the validation gold (source ``dev``).
  On test it is the validation threshold of the same checkpoint and settings -- found in the same
  call or in the saved validation result -- (source ``dev``); without one, scoring is refused unless
  ``test_oracle`` allows optimising it on the test gold itself (source ``test-oracle``).
* **Repeated sentences.** ``duplicates`` is handed to ``bucc_mine`` ("drop": XTREME's rule).

The mining + scoring step a BUCC scorer calls is ``hf_itt.metrics.retrieval_search.score_bucc_rows``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from hf_itt.errors import ConfigError, DataError
from hf_itt.evaluation.results import TaskResult
from hf_itt.metrics.retrieval_search import BUCC_DUPLICATE_MODES

logger = logging.getLogger(__name__)

BUCC_METRIC = "bucc_f1"
THRESHOLD_SOURCES = ("dev", "test-oracle")
GOLD_ONLY_FIX = (
    "point the task at the BUCC 2018 shared-task files (https://comparable.limsi.fr/bucc2018/, the "
    "'sample' and 'training' archives with gold), one folder per language holding "
    "<lang>-en.sample.<lang>, <lang>-en.sample.en, <lang>-en.sample.gold (validation) and "
    "<lang>-en.training.<lang>, <lang>-en.training.en, <lang>-en.training.gold (test): "
    "--data-files bucc2018=/path/bucc2018/{lang}-en, or targets.data_files.bucc2018 in the YAML; "
    "to score gold-only rows anyway set evaluation.bucc_allow_gold_only=true (--bucc-allow-gold-only)"
)


@dataclass(frozen=True)
class BuccSettings:
    """How BUCC is scored (``duplicates`` is recorded in every BUCC result's ``protocol``)."""

    duplicates: str = "drop"  # repeated sentences: "drop" (XTREME) or "keep"
    allow_gold_only: bool = False  # score rows without distractors (the Hub copy)
    test_oracle: bool = False  # test without a dev threshold: optimise on the test gold

    def __post_init__(self):
        if self.duplicates not in BUCC_DUPLICATE_MODES:
            raise ConfigError(
                f"evaluation.bucc_duplicates {self.duplicates!r} is not one of {', '.join(BUCC_DUPLICATE_MODES)}"
            )


def is_bucc(spec) -> bool:
    return spec.metric == BUCC_METRIC


def check_distractors(task: str, lang: str, split: str, rows, settings: BuccSettings) -> None:
    """Refuse rows in which every sentence is part of a gold pair (no distractor to mine past)."""
    sources, targets = rows["source_id"], rows["target_id"]
    unpaired = sum(1 for source, target in zip(sources, targets) if not source or not target)
    if unpaired == 0 and not settings.allow_gold_only:
        raise DataError(
            f"task {task} {split} {lang}: every sentence is in a gold pair (no distractors, "
            f"e.g. the Hub copy), which makes mining nearly trivial; {GOLD_ONLY_FIX}"
        )


def choose_threshold(
    task: str, split: str, lang: str, dev_thresholds: dict[str, float], settings: BuccSettings
) -> tuple[float | None, str]:
    """(threshold to apply or None = optimise on this split's gold, its source)."""
    if split == "validation":
        return None, "dev"
    if lang in dev_thresholds:
        return dev_thresholds[lang], "dev"
    if settings.test_oracle:
        return None, "test-oracle"
    raise DataError(f"task {task} {split} {lang}: {_NO_DEV_THRESHOLD.format(split=split)}")


def require_test_threshold(task: str, split: str, dev_thresholds: dict[str, float], settings: BuccSettings) -> None:
    """Refuse, before any work, to score ``split`` without validation thresholds unless the oracle is allowed."""
    if not dev_thresholds and not settings.test_oracle:
        raise DataError(f"task {task} {split}: {_NO_DEV_THRESHOLD.format(split=split)}")


_NO_DEV_THRESHOLD = (
    "no validation threshold of this checkpoint and settings to reuse; score validation first "
    "(--splits validation,{split}, or keep its result in the output folder) or, to optimise the threshold "
    "on the {split} gold itself (an oracle, not comparable to published numbers), set "
    "evaluation.bucc_test_oracle=true (--bucc-test-oracle)"
)


def stale_protocol(result, evaluation) -> bool:
    """Was this BUCC result scored under other settings than ``evaluation`` (an EvaluationConfig)?"""
    if "bucc_duplicates" not in result.protocol:
        return False
    wanted = {
        "bucc_duplicates": evaluation.bucc_duplicates,
        "retrieval_layer": evaluation.retrieval_layer,
        "retrieval_max_length": evaluation.retrieval_max_length,
    }
    return any(result.protocol.get(key) != value for key, value in wanted.items())


def saved_dev_thresholds(
    path: str | Path, *, checkpoint: str, stage_hash: str, metric_version: str, recorded: dict
) -> dict[str, float]:
    """{lang: threshold} of a saved validation result of the same model, metric version and BUCC
    settings (``recorded``: the result's ``protocol`` without thresholds); {} otherwise."""

    path = Path(path)
    if not path.is_file():
        return {}
    try:
        saved = TaskResult.load(path)
    except (ValueError, TypeError) as err:
        logger.warning("ignoring the saved BUCC validation result %s: %s", path, err)
        return {}
    same = (
        saved.checkpoint == checkpoint
        and saved.stage_hash == stage_hash
        and saved.metric_version == metric_version
        and {key: saved.protocol.get(key) for key in recorded} == recorded
    )
    if not same:
        logger.warning(
            "the saved BUCC validation result %s comes from another checkpoint or other settings; "
            "its thresholds are not reused",
            path,
        )
        return {}
    sources = saved.protocol.get("threshold_source", {})
    return {
        lang: scores["threshold"]
        for lang, scores in saved.languages.items()
        if "threshold" in scores and sources.get(lang) == "dev"
    }
