"""Zero-shot cross-lingual evaluation of any checkpoint, one result JSON per (task, split).

    python -m hf_itt.evaluate --model runs/demo/seed42/targets/xnli/final --tasks xnli \
        --languages en,de --data-files xnli=data/xnli/{lang}.jsonl --out results/
    python -m hf_itt.evaluate --model xlm-roberta-large --tasks tatoeba,bucc2018

Retrieval tasks (Tatoeba, BUCC) embed with the bare encoder of any checkpoint; the other tasks
need a head for the task, i.e. a target stage fine-tuned on its English training data. A language
that fails (missing data, a Hub error) is recorded under ``failed`` and the other languages are kept.
Per-language predictions are written next to the results (``<out>/predictions/``) when the scorer
returns them; ``hf-itt export-submission`` turns them into XTREME submission files. BUCC: see
``hf_itt.evaluation.bucc`` (distractors required, threshold provenance, repeated sentences).
"""

from __future__ import annotations

import argparse

from hf_itt.errors import ConfigError, DataError
from hf_itt.evaluation.bucc import BuccSettings
from hf_itt.evaluation.results_table import print_results
from hf_itt.evaluation.scorers import ScoringContext
from hf_itt.evaluation.zero_shot import (
    EvaluationRequest,
    ResultMeta,
    bucc_protocol,
    bucc_test_thresholds,
    evaluate_task,
    load_for_evaluation,
)
from hf_itt.metrics.retrieval_search import BUCC_DUPLICATE_MODES
from hf_itt.tasks.registry import get_task, register_task_dir


def parse_data_files(items: list[str]) -> dict[str, str]:
    parsed = {}
    for item in items:
        task, sep, path = item.partition("=")
        if not sep:
            raise ConfigError(f"--data-files {item!r}: write TASK=PATH (PATH may contain {{lang}})")
        parsed[task] = path
    return parsed


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m hf_itt.evaluate",
        description="Zero-shot evaluation of any HF checkpoint on XTREME / XTREME-R tasks.",
    )
    parser.add_argument("--model", required=True, help="checkpoint folder, Hub id, or repo@revision")
    parser.add_argument("--tasks", required=True, help="comma-separated task names, e.g. tatoeba,xnli")
    parser.add_argument("--languages", default=None, help="comma-separated subset (default: all of each task)")
    parser.add_argument("--splits", default="validation", help="comma-separated: validation,test")
    parser.add_argument(
        "--data-files",
        action="append",
        default=[],
        metavar="TASK=PATH",
        help="local data for a task instead of the Hub (repeatable)",
    )
    parser.add_argument("--out", default="results", help="folder for the result JSON files")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--retrieval-layer",
        type=int,
        default=None,
        help="hidden_states index for retrieval (default: 14/24 of the depth)",
    )
    parser.add_argument("--max-examples", type=int, default=None, help="cap rows per language")
    parser.add_argument(
        "--no-predictions", action="store_true", help="do not write per-language prediction files next to the results"
    )
    bucc = parser.add_argument_group("BUCC 2018")
    bucc.add_argument(
        "--bucc-duplicates",
        choices=BUCC_DUPLICATE_MODES,
        default="drop",
        help="repeated sentences: drop = never predicted (XTREME's pipeline, default); "
        "keep = a pair for every id carrying the text",
    )
    bucc.add_argument(
        "--bucc-allow-gold-only",
        action="store_true",
        help="score rows without distractor sentences (the Hub copy) instead of refusing",
    )
    bucc.add_argument(
        "--bucc-test-oracle",
        action="store_true",
        help="score test without a validation threshold by optimising it on the test gold "
        "(recorded as threshold source test-oracle)",
    )
    parser.add_argument(
        "--task-dirs",
        action="append",
        default=[],
        metavar="DIR",
        help="also register the task spec YAMLs of this folder (repeatable), for --tasks",
    )
    return parser


def main(argv: list[str] | None = None) -> int:

    args = build_parser().parse_args(argv)
    for folder in args.task_dirs:
        register_task_dir(folder)
    tasks = [get_task(task).name for task in args.tasks.split(",")]  # unknown names fail before the model loads
    data_files = parse_data_files(args.data_files)
    bucc = BuccSettings(
        duplicates=args.bucc_duplicates, allow_gold_only=args.bucc_allow_gold_only, test_oracle=args.bucc_test_oracle
    )
    requests = [
        EvaluationRequest(
            task=task,
            languages=args.languages.split(",") if args.languages else None,
            splits=args.splits.split(","),
            data_files=data_files.get(task),
            max_examples=args.max_examples,
        )
        for task in tasks
    ]
    protocol = bucc_protocol(args.retrieval_layer, ScoringContext.retrieval_max_length, bucc)
    for request in requests:  # refuse BUCC test without a threshold before loading the model
        bucc_test_thresholds(
            get_task(request.task), request.splits, ResultMeta(checkpoint=args.model), args.out, protocol, bucc
        )
    model, tokenizer = load_for_evaluation(args.model)
    ctx = ScoringContext(
        model=model, tokenizer=tokenizer, batch_size=args.batch_size, retrieval_layer=args.retrieval_layer
    )
    meta = ResultMeta(checkpoint=args.model, base_model=getattr(model.config, "_name_or_path", args.model))
    results = []
    for request in requests:
        results += evaluate_task(
            ctx, request, meta, out_dir=args.out, bucc=bucc, save_predictions=not args.no_predictions
        )
    print_results(results)
    if not any(result.languages for result in results):
        raise DataError(
            f"nothing was scored for {args.tasks} ({args.splits}): "
            + ("every language failed (see above)" if results else "no task has these splits")
            + "; check --splits, --languages and --data-files"
        )
    return 0


if __name__ == "__main__":
    import sys

    from hf_itt.cli import main as cli_main

    sys.exit(cli_main(["evaluate", *sys.argv[1:]]))
