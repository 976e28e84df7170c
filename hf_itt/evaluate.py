"""Zero-shot cross-lingual evaluation of any checkpoint, one result JSON per (task, split).

    python -m hf_itt.evaluate --model runs/demo/seed42/targets/xnli/final --tasks xnli \
        --languages en,de --data-files xnli=data/xnli/{lang}.jsonl --out results/
    python -m hf_itt.evaluate --model xlm-roberta-large --tasks tatoeba,bucc2018

Retrieval tasks (Tatoeba, BUCC) embed with the bare encoder of any checkpoint; the other tasks
need a head for the task, i.e. a target stage fine-tuned on its English training data. A language
that fails (missing data, a Hub error) is recorded under ``failed`` and the other languages are kept.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass, field
from pathlib import Path

from hf_itt.errors import ConfigError, DataError, HfIttError
from hf_itt.evaluation.results import TaskResult, missing_split
from hf_itt.evaluation.scorers import ScoringContext, score_split

logger = logging.getLogger(__name__)


@dataclass
class EvaluationRequest:
    """One task to score: which languages and splits, from which data."""

    task: str
    languages: list[str] | None = None     # None: every language of the task
    splits: list[str] = field(default_factory=lambda: ["validation"])
    data_files: object = None              # local files replacing the Hub source
    max_examples: int | None = None        # cap rows per language (smoke runs)


@dataclass
class ResultMeta:
    """The provenance written into every result record."""

    experiment: str = "standalone"
    seed: int = 0
    base_model: str = "unknown"
    checkpoint: str = ""
    itt: dict = field(default_factory=lambda: {"mode": "none", "stages": []})
    stage_hash: str = ""


def evaluate_task(ctx: ScoringContext, request: EvaluationRequest, meta: ResultMeta,
                  out_dir: str | Path | None = None) -> list[TaskResult]:
    """Score every requested language and split; validation first (BUCC reuses its threshold on test)."""
    from hf_itt.metrics.scoring import METRIC_VERSION, primary_key
    from hf_itt.tasks.registry import get_task

    spec = get_task(request.task)
    languages = check_languages(spec, request.languages)
    results, thresholds = [], {}
    for split in sorted(request.splits, key=lambda s: s != "validation"):
        if not spec.has_split(split):
            logger.info("%s has no %s split; skipped", spec.name, split)  # the results table shows no row
            continue
        scores, failed = score_languages(spec, ctx, request, languages, split, thresholds)
        result = TaskResult(experiment=meta.experiment, seed=meta.seed, base_model=meta.base_model,
                            metric_version=METRIC_VERSION, itt=meta.itt, checkpoint=meta.checkpoint,
                            task=spec.name, split=split, primary_metric=primary_key(spec.metric),
                            languages=scores, failed=failed, stage_hash=meta.stage_hash)
        if out_dir is not None:
            result.save(Path(out_dir) / f"{spec.name}.{split}.json")
        results.append(result)
    return results


def check_languages(spec, languages: list[str] | None) -> list[str]:
    known = spec.all_languages()
    if not languages:
        return list(spec.languages)
    unknown = [lang for lang in languages if lang not in known]
    if unknown:
        raise ConfigError(f"task {spec.name} has no language {unknown[0]!r} (it has: {' '.join(known)})")
    return list(languages)


def score_languages(spec, ctx: ScoringContext, request: EvaluationRequest, languages, split,
                    thresholds: dict[str, float]):
    """Per-language scores and failures; BUCC thresholds found on validation are reused on test."""
    from hf_itt.evaluation.scorers import score_answer_retrieval
    from hf_itt.tasks.loading import load_answer_retrieval, load_split
    from hf_itt.tasks.schema import ANSWER_RETRIEVAL

    scores, failed = {}, {}
    for lang in languages:
        if not spec.has_split(split, lang):
            failed[lang] = missing_split(spec.name, split, lang)
            continue
        try:
            if spec.type == ANSWER_RETRIEVAL:
                queries, candidates = load_answer_retrieval(spec, split, lang=lang, data_files=request.data_files)
                scores[lang] = score_answer_retrieval(queries, candidates, ctx, f"{spec.name} {split} {lang}")
                continue
            rows = load_split(spec, split, lang=lang, data_files=request.data_files)
            if request.max_examples is not None:
                rows = rows.select(range(min(request.max_examples, len(rows))))
            ctx.bucc_threshold = thresholds.get(lang) if split != "validation" else None
            scores[lang] = score_split(spec, rows, ctx, lang, desc=f"{spec.name} {split} {lang}")
            if "threshold" in scores[lang] and split == "validation":
                thresholds[lang] = scores[lang]["threshold"]
        except HfIttError as err:
            logger.warning("%s %s %s failed: %s", spec.name, split, lang, err)
            failed[lang] = str(err)
    return scores, failed


def load_for_evaluation(model_ref: str, revision: str | None = None):
    """(model, tokenizer) from a folder or Hub id: a MultiTaskModel checkpoint or a bare encoder."""
    from transformers import AutoConfig, AutoTokenizer

    from hf_itt.hub.publishers import resolve_reference
    from hf_itt.training.model_loading import check_vocabulary, loading_errors
    from hf_itt.training.modeling import MultiTaskConfig  # registers the multi-task architecture with AutoModel

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


def parse_data_files(items: list[str]) -> dict[str, str]:
    parsed = {}
    for item in items:
        task, sep, path = item.partition("=")
        if not sep:
            raise ConfigError(f"--data-files {item!r}: write TASK=PATH (PATH may contain {{lang}})")
        parsed[task] = path
    return parsed


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m hf_itt.evaluate",
                                     description="Zero-shot evaluation of any HF checkpoint on XTREME / XTREME-R tasks.")
    parser.add_argument("--model", required=True, help="checkpoint folder, Hub id, or repo@revision")
    parser.add_argument("--tasks", required=True, help="comma-separated task names, e.g. tatoeba,xnli")
    parser.add_argument("--languages", default=None, help="comma-separated subset (default: all of each task)")
    parser.add_argument("--splits", default="validation", help="comma-separated: validation,test")
    parser.add_argument("--data-files", action="append", default=[], metavar="TASK=PATH",
                        help="local data for a task instead of the Hub (repeatable)")
    parser.add_argument("--out", default="results", help="folder for the result JSON files")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--retrieval-layer", type=int, default=None,
                        help="hidden_states index for retrieval (default: 14/24 of the depth)")
    parser.add_argument("--max-examples", type=int, default=None, help="cap rows per language")
    parser.add_argument("--task-dirs", action="append", default=[], metavar="DIR",
                        help="also register the task spec YAMLs of this folder (repeatable), for --tasks")
    return parser


def main(argv: list[str] | None = None) -> int:
    from hf_itt.evaluation.results_table import print_results
    from hf_itt.tasks.registry import get_task, register_task_dir

    args = build_parser().parse_args(argv)
    for folder in args.task_dirs:
        register_task_dir(folder)
    tasks = [get_task(task).name for task in args.tasks.split(",")]  # unknown names fail before the model loads
    model, tokenizer = load_for_evaluation(args.model)
    ctx = ScoringContext(model=model, tokenizer=tokenizer, batch_size=args.batch_size,
                         retrieval_layer=args.retrieval_layer)
    data_files = parse_data_files(args.data_files)
    meta = ResultMeta(checkpoint=args.model, base_model=getattr(model.config, "_name_or_path", args.model))
    results = []
    for task in tasks:
        request = EvaluationRequest(task=task, languages=args.languages.split(",") if args.languages else None,
                                    splits=args.splits.split(","), data_files=data_files.get(task),
                                    max_examples=args.max_examples)
        results += evaluate_task(ctx, request, meta, out_dir=args.out)
    print_results(results)
    if not any(result.languages for result in results):
        raise DataError(f"nothing was scored for {args.tasks} ({args.splits}): "
                        + ("every language failed (see above)" if results else "no task has these splits")
                        + "; check --splits, --languages and --data-files")
    return 0


if __name__ == "__main__":
    import sys

    from hf_itt.cli import main as cli_main

    sys.exit(cli_main(["evaluate", *sys.argv[1:]]))
