"""Command line: `run_itt.py` / `hf-itt run` and the smaller sub-commands.

    python run_itt.py --config run_scripts/demo.yaml [key=value ...] [--force] [--dry-run]
    deepspeed run_itt.py --config run_scripts/<exp>.yaml      (the launcher adds --local_rank=N)
    hf-itt tasks | validate CONFIG... | evaluate ... | report ... | memory ... | publish RUN_DIR | build-base NAME OUT
"""

from __future__ import annotations

import argparse
import errno
import sys
from pathlib import Path

from hf_itt.errors import ConfigError, HfIttError

SUBCOMMANDS = {
    "evaluate": "hf_itt.evaluate",
    "report": "hf_itt.report.build",
    "memory": "hf_itt.memory",
    "publish": "hf_itt.hub.publish",
    "build-base": "hf_itt.bases.cli",
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
    parser.add_argument("--experiments", metavar="NAME[,NAME...]",
                        help="run only these experiments of a file with an `experiments:` list (default: all)")
    # the deepspeed launcher inserts --local_rank=N before the script's own arguments
    parser.add_argument("--local_rank", "--local-rank", type=int, default=-1, help=argparse.SUPPRESS)
    return parser


def run_main(argv: list[str] | None = None) -> int:
    # intermixed: `--config X --no-report key=value` and `--config X key=value --force` both work
    args = run_parser().parse_intermixed_args(argv)
    from hf_itt.config.experiment import load_experiments
    from hf_itt.training.distributed import is_main_process
    from hf_itt.pipeline.runner import StageRunner

    configs = select_experiments(load_experiments(args.config, args.overrides), args.experiments)
    run_prepare(configs[0])
    runners = [StageRunner(config, force=args.force) for config in configs]
    if args.dry_run:
        for runner in runners:
            runner.print_plan()
        return 0
    for config in configs:
        check_writable(config.run_dir, "output_dir")
        if config.hub.publisher == "local":
            check_writable(Path(config.resolve_path(config.hub.local_root)), "hub.local_root")
    for runner in runners:
        runner.run(report=False)
    if not args.no_report and is_main_process():
        write_report(configs)
    return 0


def select_experiments(configs, names: str | None):
    if not names:
        return configs
    wanted = [name.strip() for name in names.split(",") if name.strip()]
    known = [config.experiment for config in configs]
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise ConfigError(f"--experiments: {', '.join(map(repr, unknown))} not in this file; its experiments: "
                          f"{', '.join(known)}")
    return [config for config in configs if config.experiment in wanted]


def write_report(configs) -> None:
    """One report over every experiment of the file (each with its own results folder)."""
    from hf_itt.report.build import build_report

    results = [config.run_dir / "results" for config in configs if any((config.run_dir / "results").glob("*.json"))]
    if not results:
        return
    first = configs[0]
    out = (Path(first.report_dir.format(experiment=first.experiment, seed=first.seed)) if first.report_dir
           else first.run_dir / "report")
    print(f"report: {build_report(results, out=out)}")


def check_writable(folder: Path, key: str) -> None:
    """Fail before any training when a folder the run must write to cannot be created or written."""
    import tempfile

    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".hf_itt-write-check-"):
            pass
    except OSError as err:
        raise ConfigError(f"{key} {folder} is not writable ({err.strerror or err}); choose another folder "
                          f"({key}=...) or fix its permissions") from None


def run_prepare(config) -> None:
    """The experiment's `prepare:` hook, on rank 0 first (it builds files every rank then reads)."""
    if not config.prepare:
        return
    from importlib import import_module

    from hf_itt.training.distributed import is_main_process, wait_for_file
    from hf_itt.errors import ConfigError

    module, _, function = config.prepare.partition(":")
    try:
        hook = getattr(import_module(module), function)
    except (ImportError, AttributeError) as err:
        raise ConfigError(f"prepare {config.prepare!r} cannot be imported ({err}); check the module and function") from None
    marker = config.run_dir / ".prepared"
    if is_main_process():
        hook(config)
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
    else:
        wait_for_file(marker)


def tasks_main(argv: list[str]) -> int:
    from hf_itt.tasks.registry import all_tasks

    for spec in all_tasks():
        train = spec.train_task or "-"
        print(f"{spec.name:16} {spec.type:17} {len(spec.languages):3} langs  metric={spec.metric:17} train={train}")
    return 0


def validate_main(argv: list[str]) -> int:
    from hf_itt.config.experiment import load_experiment

    for path in argv:
        config = load_experiment(path)
        print(f"ok  {path}: {len(config.stages)} stage(s), targets: {', '.join(config.targets.tasks) or '-'}")
    return 0


# Environment failures a user fixes (disk, permissions): one message, no traceback.
ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS}
RESUME_HINT = "rerun the same command: finished stages are kept and training resumes from its last checkpoint"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    return guarded(dispatch, argv)


def guarded(command, argv: list[str]) -> int:
    """Run a command; user and environment errors print one `hf_itt error:` line and exit 2."""
    try:
        return command(argv)
    except HfIttError as err:
        return report_error(str(err))
    except OSError as err:
        if err.errno not in ENVIRONMENT_ERRNOS:
            raise
        return report_error(environment_message(err))
    except KeyboardInterrupt:
        print(f"interrupted; {RESUME_HINT}", file=sys.stderr)
        return 130


def report_error(message: str) -> int:
    print(f"hf_itt error: {' '.join(message.split())}", file=sys.stderr)
    return 2


def environment_message(err: OSError) -> str:
    where = f" while writing {err.filename}" if err.filename else ""
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return (f"no space left on the device{where} ({err.strerror}): free disk space or point output_dir "
                f"(and HF_HOME for caches) at a larger disk, then {RESUME_HINT}")
    return (f"permission denied{where} ({err.strerror}): choose a writable output_dir / hub.local_root or fix "
            f"the folder's permissions, then {RESUME_HINT}")


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
    print("usage: hf-itt {run,tasks,validate,evaluate,report,memory,publish,build-base} ...\n"
          "  run       same as run_itt.py: --config FILE [key=value ...]\n"
          "  tasks     list registered tasks\n"
          "  validate  check experiment YAMLs without running them\n"
          "  evaluate  zero-shot evaluation of any checkpoint (python -m hf_itt.evaluate --help)\n"
          "  report    tables and plots over runs (python -m hf_itt.report --help)\n"
          "  memory    DeepSpeed memory planner (python -m hf_itt.memory --help)\n"
          "  publish   publish finished-but-unpublished stages of a run\n"
          "  build-base  build a real pretrained base encoder offline (hf-itt build-base --help)")
    return 0 if command in ("--help", "-h") else 2


def run_entry(argv: list[str] | None = None) -> int:
    """Entry of run_itt.py: the `run` sub-command with user errors printed without a traceback."""
    return guarded(run_main, list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
