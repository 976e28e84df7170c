"""Zero-shot evaluation of one checkpoint: every language and split of a task, one result record each.

The driver of ``hf-itt evaluate`` and of a run's target evaluation (``hf_itt.pipeline.target_eval``):
load a checkpoint (``load_for_evaluation``), then ``evaluate_task`` scores each language through the task
type's scorer (``hf_itt.evaluation.scorers``), records failures per language, saves prediction files and
keeps BUCC's threshold provenance (``hf_itt.evaluation.bucc``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from hf_itt.errors import ConfigError, HfIttError
from hf_itt.evaluation.bucc import (
    BuccSettings,
    check_distractors,
    choose_threshold,
    is_bucc,
    require_test_threshold,
    saved_dev_thresholds,
)
from hf_itt.evaluation.results import TaskResult, missing_split
from hf_itt.evaluation.scorers import ScoringContext, score_split
from hf_itt.hub.publishers import resolve_reference
from hf_itt.metrics.scoring import METRIC_VERSION, primary_key
from hf_itt.predictions import predictions_path, save_predictions, split_outcome
from hf_itt.tasks.loading import load_task_data
from hf_itt.tasks.registry import get_task
from hf_itt.training.model_loading import check_vocabulary, loading_errors

logger = logging.getLogger(__name__)


@dataclass
class EvaluationRequest:
    """One task to score: which languages and splits, from which data."""

    task: str
    languages: list[str] | None = None  # None: every language of the task
    splits: list[str] = field(default_factory=lambda: ["validation"])
    data_files: object = None  # local files replacing the Hub source
    max_examples: int | None = None  # cap rows per language (smoke runs)


@dataclass
class ResultMeta:
    """The provenance written into every result record."""

    experiment: str = "standalone"
    seed: int = 0
    base_model: str = "unknown"
    checkpoint: str = ""
    itt: dict = field(default_factory=lambda: {"mode": "none", "stages": []})
    stage_hash: str = ""
    encoder: str = ""  # retrieval: what embedded the sentences (see TaskResult)
    training: dict = field(default_factory=dict)  # hf_itt.pipeline.budget.chain_training of the checkpoint


@dataclass
class SplitOutcome:
    """Everything one split of one task produced, language by language."""

    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    predictions: dict[str, str] = field(default_factory=dict)  # lang -> file, relative to out_dir
    threshold_source: dict[str, str] = field(default_factory=dict)  # BUCC: lang -> "dev" | "test-oracle"


def evaluate_task(
    ctx: ScoringContext,
    request: EvaluationRequest,
    meta: ResultMeta,
    out_dir: str | Path | None = None,
    *,
    bucc: BuccSettings | None = None,
    save_predictions: bool = True,
) -> list[TaskResult]:
    """Score every requested language and split; validation first (BUCC reuses its threshold on test).

    With ``out_dir`` each split's result is written to ``<out_dir>/<task>.<split>.json`` and, when
    the scorer returns them and ``save_predictions``, the predictions of every language next to it
    (``hf_itt.predictions``). BUCC follows ``bucc`` (default ``BuccSettings()``).
    """

    spec = get_task(request.task)
    languages = check_languages(spec, request.languages)
    bucc = bucc or BuccSettings()
    protocol = bucc_protocol(ctx.retrieval_layer, ctx.retrieval_max_length, bucc) if is_bucc(spec) else {}
    if is_bucc(spec):
        hand_over_duplicates(ctx, bucc)
    results = []
    dev_thresholds = bucc_test_thresholds(spec, request.splits, meta, out_dir, protocol, bucc)
    for split in sorted(request.splits, key=lambda s: s != "validation"):
        if not spec.has_split(split):
            logger.info("%s has no %s split; skipped", spec.name, split)  # the results table shows no row
            continue
        outcome = score_languages(
            spec, ctx, request, languages, split, dev_thresholds, bucc, out_dir if save_predictions else None
        )
        result = TaskResult(
            experiment=meta.experiment,
            seed=meta.seed,
            base_model=meta.base_model,
            metric_version=METRIC_VERSION,
            itt=meta.itt,
            checkpoint=meta.checkpoint,
            task=spec.name,
            split=split,
            primary_metric=primary_key(spec.metric),
            languages=outcome.scores,
            failed=outcome.failed,
            stage_hash=meta.stage_hash,
            protocol={**protocol, "threshold_source": outcome.threshold_source} if protocol else {},
            predictions=outcome.predictions,
            encoder=meta.encoder,
            training=meta.training,
        )
        if out_dir is not None:
            result.save(Path(out_dir) / f"{spec.name}.{split}.json")
        results.append(result)
    return results


def bucc_protocol(retrieval_layer: int | None, retrieval_max_length: int, bucc: BuccSettings) -> dict:
    """What a BUCC result records besides its thresholds (a saved dev threshold needs the same)."""
    return {
        "bucc_duplicates": bucc.duplicates,
        "retrieval_layer": retrieval_layer,
        "retrieval_max_length": retrieval_max_length,
    }


def bucc_test_thresholds(
    spec, splits: list[str], meta: ResultMeta, out_dir: str | Path | None, protocol: dict, bucc: BuccSettings
) -> dict[str, float]:
    """Scoring BUCC test without validation in the same call: the saved validation thresholds of this
    model and settings, or a refusal unless the oracle is allowed. {} in every other case."""

    test_splits = [split for split in splits if split != "validation" and spec.has_split(split)]
    if not is_bucc(spec) or "validation" in splits or not test_splits:
        return {}
    saved = {}
    if out_dir is not None:
        saved = saved_dev_thresholds(
            Path(out_dir) / f"{spec.name}.validation.json",
            checkpoint=meta.checkpoint,
            stage_hash=meta.stage_hash,
            metric_version=METRIC_VERSION,
            recorded=protocol,
        )
    require_test_threshold(spec.name, test_splits[0], saved, bucc)
    return saved


def hand_over_duplicates(ctx: ScoringContext, bucc: BuccSettings) -> None:
    """The BUCC scorer reads ``options["bucc_duplicates"]`` (XTREME's rule "drop" unless asked otherwise)."""
    ctx.options["bucc_duplicates"] = bucc.duplicates


def check_languages(spec, languages: list[str] | None) -> list[str]:
    known = spec.all_languages()
    if not languages:
        return list(spec.languages)
    unknown = [lang for lang in languages if lang not in known]
    if unknown:
        raise ConfigError(f"task {spec.name} has no language {unknown[0]!r} (it has: {' '.join(known)})")
    return list(languages)


def score_languages(
    spec,
    ctx: ScoringContext,
    request: EvaluationRequest,
    languages,
    split,
    dev_thresholds: dict[str, float],
    bucc: BuccSettings,
    predictions_dir: str | Path | None = None,
) -> SplitOutcome:
    """Per-language scores and failures; BUCC thresholds found on validation are added to
    ``dev_thresholds`` and reused on test. Predictions go under ``predictions_dir`` when given."""

    outcome = SplitOutcome()
    for lang in languages:
        if not spec.has_split(split, lang):
            outcome.failed[lang] = missing_split(spec.name, split, lang)
            continue
        desc = f"{spec.name} {split} {lang}"
        try:
            data = load_task_data(spec, split, lang=lang, data_files=request.data_files)
            if request.max_examples is not None and not spec.task_type.candidate_pool:
                data = data.select(range(min(request.max_examples, len(data))))
            if is_bucc(spec):
                check_distractors(spec.name, lang, split, data, bucc)
                ctx.bucc_threshold, outcome.threshold_source[lang] = choose_threshold(
                    spec.name, split, lang, dev_thresholds, bucc
                )
            scored = score_split(spec, data, ctx, lang, desc=desc)
        except HfIttError as err:
            logger.warning("%s failed: %s", desc, err)
            outcome.failed[lang] = str(err)
            outcome.threshold_source.pop(lang, None)
            continue
        outcome.scores[lang], predictions = split_outcome(scored)
        if is_bucc(spec) and split == "validation":
            dev_thresholds[lang] = outcome.scores[lang]["threshold"]
        if predictions is not None and predictions_dir is not None:
            if is_bucc(spec):
                predictions.meta["threshold_source"] = outcome.threshold_source[lang]
            path = predictions_path(predictions_dir, spec.name, split, lang)
            save_predictions(path, predictions, task=spec.name, split=split, lang=lang)
            outcome.predictions[lang] = path.relative_to(predictions_dir).as_posix()
    return outcome


def load_for_evaluation(model_ref: str, revision: str | None = None):
    """(model, tokenizer) from a folder or Hub id: a MultiTaskModel checkpoint or a bare encoder."""
    from transformers import AutoConfig, AutoTokenizer

    from hf_itt.training.modeling import MultiTaskConfig  # defers transformers

    path = resolve_reference(model_ref if revision is None else f"{model_ref}@{revision}")
    with loading_errors(path, "model"):
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = _load_model(path, AutoConfig.from_pretrained(path).model_type == MultiTaskConfig.model_type)
    check_vocabulary(tokenizer, model, str(path), str(path))
    return model, tokenizer


def _load_model(path, multitask: bool):
    from transformers import AutoModel

    if multitask:
        return AutoModel.from_pretrained(path)
    try:  # a bare encoder: retrieval reads hidden states, the pooler would only be noise
        return AutoModel.from_pretrained(path, add_pooling_layer=False)
    except TypeError:
        return AutoModel.from_pretrained(path)
