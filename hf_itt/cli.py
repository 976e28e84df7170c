"""Command line: `run_itt.py` / `hf-itt run` and the smaller sub-commands.

    python run_itt.py --config run_scripts/demo.yaml [key=value ...] [--force] [--dry-run]
    deepspeed run_itt.py --config run_scripts/<exp>.yaml      (the launcher adds --local_rank=N)
    hf-itt tasks | validate CONFIG... | evaluate ... | report ... | memory ... | publish RUN_DIR
"""

from __future__ import annotations

import argparse
import sys

from hf_itt.errors import HfIttError

SUBCOMMANDS = {
    "evaluate": "hf_itt.evaluate",
    "report": "hf_itt.report",
    "memory": "hf_itt.memory",
    "publish": "hf_itt.publish",
}


def run_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="run_itt.py",
        description="Run an intermediate-task training experiment: ITT stages, target fine-tuning, "
                    "zero-shot evaluation, report.",
        epilog="Overrides: dotted keys with list indices, e.g. stages.0.training.learning_rate=2e-5 "
               "seed=2 targets.tasks=[xnli,tatoeba]",
    )
    parser.add_argument("--config", required=True, help="experiment YAML (run_scripts/<experiment>.yaml)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="overrides of config fields")
    parser.add_argument("--force", action="store_true",
                        help="retrain every stage even if a finished or published one with the same hash exists")
    parser.add_argument("--dry-run", action="store_true",
                        help="validate the config, print the stage plan (reused / to train) and exit")
    parser.add_argument("--no-report", action="store_true", help="skip the report at the end")
    # the deepspeed launcher inserts --local_rank=N before the script's own arguments
    parser.add_argument("--local_rank", "--local-rank", type=int, default=-1, help=argparse.SUPPRESS)
    return parser


def run_main(argv: list[str] | None = None) -> int:
    args = run_parser().parse_args(argv)
    from hf_itt.config import load_experiment
    from hf_itt.stages import StageRunner

    config = load_experiment(args.config, args.overrides)
    runner = StageRunner(config, force=args.force)
    if args.dry_run:
        runner.print_plan()
        return 0
    runner.run(report=not args.no_report)
    return 0


def tasks_main(argv: list[str]) -> int:
    from hf_itt.tasks.registry import all_tasks

    for spec in all_tasks():
        train = spec.train_task or "-"
        print(f"{spec.name:16} {spec.type:17} {len(spec.languages):3} langs  metric={spec.metric:17} train={train}")
    return 0


def validate_main(argv: list[str]) -> int:
    from hf_itt.config import load_experiment

    for path in argv:
        config = load_experiment(path)
        print(f"ok  {path}: {len(config.stages)} stage(s), targets: {', '.join(config.targets.tasks) or '-'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return dispatch(argv)
    except HfIttError as err:
        print(f"hf_itt error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume from the last finished step", file=sys.stderr)
        return 130


def dispatch(argv: list[str]) -> int:
    command = argv[0] if argv else "--help"
    if command == "run":
        return run_main(argv[1:])
    if command == "tasks":
        return tasks_main(argv[1:])
    if command == "validate":
        return validate_main(argv[1:])
    if command in SUBCOMMANDS:
        from importlib import import_module

        return import_module(SUBCOMMANDS[command]).main(argv[1:]) or 0
    print("usage: hf-itt {run,tasks,validate,evaluate,report,memory,publish} ...\n"
          "  run       same as run_itt.py: --config FILE [key=value ...]\n"
          "  tasks     list registered tasks\n"
          "  validate  check experiment YAMLs without running them\n"
          "  evaluate  zero-shot evaluation of any checkpoint (python -m hf_itt.evaluate --help)\n"
          "  report    tables and plots over runs (python -m hf_itt.report --help)\n"
          "  memory    DeepSpeed memory planner (python -m hf_itt.memory --help)\n"
          "  publish   publish finished-but-unpublished stages of a run")
    return 0 if command in ("--help", "-h") else 2


def run_entry(argv: list[str] | None = None) -> int:
    """Entry of run_itt.py: the `run` sub-command with user errors printed without a traceback."""
    try:
        return run_main(argv)
    except HfIttError as err:
        print(f"hf_itt error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
