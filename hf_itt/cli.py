"""Command line: `run_itt.py` / `hf-itt run` and the smaller sub-commands.

    python run_itt.py --config run_scripts/demo.yaml [key=value ...] [--force] [--dry-run]
    deepspeed run_itt.py --config run_scripts/<exp>.yaml      (the launcher adds --local_rank=N)
    hf-itt tasks [NAME...] | validate CONFIG... | evaluate ... | report ... | memory ... | publish RUN_DIR
    hf-itt plan GRID... | export-submission RUN_DIR... --out DIR | build-base NAME OUT
    hf-itt --version;  hf-itt COMMAND --help

Conventions: bad input prints one ``hf_itt error: ...`` line and exits 2; a closed pipe
(``hf-itt tasks | head``) ends quietly; hf_itt's warnings print as ``hf_itt warning: ...``.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import os
import signal
import sys
import tempfile
import threading
from contextlib import ExitStack, contextmanager
from importlib import import_module, metadata
from pathlib import Path

from hf_itt import __version__
from hf_itt.config.data_paths import check_data_paths
from hf_itt.config.experiment import ExperimentConfig
from hf_itt.config.loading import load_experiments
from hf_itt.config.training_args import training_argument_fields
from hf_itt.console import setup_console
from hf_itt.errors import CheckpointError, ConfigError, HfIttError
from hf_itt.pipeline.locks import run_lock
from hf_itt.pipeline.prepare import missing_data, prepare_and_check
from hf_itt.tasks.registry import all_tasks, get_task, register_task_dir
from hf_itt.training.distributed import is_main_process, world_size
from hf_itt.write_errors import as_disk_full, is_torch_write_failure

SUBCOMMANDS = {
    "evaluate": "hf_itt.evaluate",
    "report": "hf_itt.report.build",
    "memory": "hf_itt.memory",
    "publish": "hf_itt.publish",
    "export-submission": "hf_itt.report.submission",
    "plan": "hf_itt.pipeline.plan",
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
    parser.add_argument(
        "--force",
        action="store_true",
        help="retrain every stage even if a finished or published one with the same hash exists",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="validate the config, print the stage plan (reused / to train) and exit"
    )
    parser.add_argument("--no-report", action="store_true", help="skip the report at the end")
    parser.add_argument(
        "--experiments",
        metavar="NAME[,NAME...]",
        help="run only these experiments of a file with an `experiments:` list (default: all)",
    )
    parser.add_argument(
        "--stage",
        metavar="itt:NAME|target:TASK",
        help="run only this job (its earlier stages must be finished); what `hf-itt plan` "
        "executors and SLURM jobs run, one unique stage each",
    )
    parser.add_argument(
        "--expect-hash",
        metavar="HASH",
        help="with --stage: refuse to run unless the job's stage hash is this one (the plan's)",
    )
    parser.add_argument(
        "--wait-for-lock",
        action="store_true",
        help="if another run is using the output folder, wait for it to finish instead of failing",
    )
    parser.add_argument("--version", action="version", version=version_text())
    # the deepspeed launcher inserts --local_rank=N before the script's own arguments
    parser.add_argument("--local_rank", "--local-rank", type=int, default=-1, help=argparse.SUPPRESS)
    return parser


def run_main(argv: list[str] | None = None) -> int:
    parser = run_parser()
    check_flag_style(list(sys.argv[1:] if argv is None else argv), parser)
    # intermixed: `--config X --no-report key=value` and `--config X key=value --force` both work
    args = parser.parse_intermixed_args(argv)
    from hf_itt.pipeline.runner import StageRunner  # defers torch, transformers

    configs = select_experiments(load_experiments(args.config, args.overrides), args.experiments)
    if args.stage and len(configs) != 1:
        raise ConfigError(
            f"--stage runs one job of one experiment; {args.config} holds {len(configs)}: pick one "
            f"with --experiments NAME"
        )
    if args.expect_hash and not args.stage:
        raise ConfigError("--expect-hash needs --stage (the job whose hash it checks)")
    # a Hub publisher checks its token, except in a dry run (nothing is published)
    runners = [StageRunner(config, force=args.force, dry_run=args.dry_run) for config in configs]
    if args.dry_run:
        prepare_and_check(configs, data=False)
        for runner in runners:
            runner.print_plan()
            problem = missing_data(runner.config)
            if problem:
                print(f"  missing data (the run would stop here): {problem}")
        return 0
    for config in configs:
        check_writable(config.run_dir, "output_dir")
        if config.hub.publisher == "local":
            check_writable(Path(config.resolve_path(config.hub.local_root)), "hub.local_root")
    if args.stage:  # one job of a grid: other jobs of the same run folder may run beside it (own subfolders);
        with write_failures(configs):  # the stage itself is guarded by its hash lock in the runner
            prepare_and_check(configs)
            runners[0].run_stage(args.stage, args.expect_hash)
        return 0
    with run_locks(configs, wait=args.wait_for_lock), write_failures(configs):
        prepare_and_check(configs)
        for runner in runners:
            runner.run(report=False)
        if not args.no_report and is_main_process():
            write_report(configs)
    return 0


@contextmanager
def write_failures(configs):
    """torch and safetensors report a full disk in their own words: raise the OSError it is instead."""

    try:
        yield
    except (HfIttError, OSError, KeyboardInterrupt):
        raise
    except Exception as err:  # noqa: BLE001 - re-raised unchanged unless recognised
        folders = [config.run_dir for config in configs] + [
            Path(config.resolve_path(config.hub.local_root)) for config in configs
        ]
        full = as_disk_full(err, folders)
        if full is not None:
            raise full from err
        if is_torch_write_failure(err):
            raise CheckpointError(
                f"torch could not write a checkpoint ({' '.join(str(err).split())}): check that "
                f"the disk of output_dir is not full or over quota, then {RESUME_HINT}"
            ) from err
        raise


@contextmanager
def run_locks(configs, wait: bool):
    """Rank 0 holds the lock of every run folder of the file (in path order, so two runs of overlapping
    files cannot each hold one and wait for the other). Other ranks share their rank 0's folders."""

    if wait and world_size() > 1:
        raise ConfigError(
            "--wait-for-lock works in single-process runs only (under a launcher the other ranks "
            "would time out waiting for rank 0); start the launch once the other run has finished"
        )
    with ExitStack() as stack:
        if is_main_process():
            for folder in sorted({config.run_dir.resolve() for config in configs}):
                stack.enter_context(run_lock(folder, wait=wait))
        yield


def select_experiments(configs, names: str | None):
    if not names:
        return configs
    wanted = [name.strip() for name in names.split(",") if name.strip()]
    known = [config.experiment for config in configs]
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise ConfigError(
            f"--experiments: {', '.join(map(repr, unknown))} not in this file; its experiments: {', '.join(known)}"
        )
    return [config for config in configs if config.experiment in wanted]


def write_report(configs) -> None:
    """One report over every experiment of the file (each with its own results folder)."""
    from hf_itt.report.build import build_report  # defers matplotlib

    results = [config.run_dir / "results" for config in configs if any((config.run_dir / "results").glob("*.json"))]
    if not results:
        return
    first = configs[0]
    out = (
        Path(first.report_dir.format(experiment=first.experiment, seed=first.seed))
        if first.report_dir
        else first.run_dir / "report"
    )
    print(f"report: {build_report(results, out=out)}")


def check_writable(folder: Path, key: str) -> None:
    """Fail before any training when a folder the run must write to cannot be created or written."""

    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".hf_itt-write-check-"):
            pass
    except OSError as err:
        raise ConfigError(
            f"{key} {folder} is not writable ({err.strerror or err}); choose another folder "
            f"({key}=...) or fix its permissions"
        ) from None


def tasks_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hf-itt tasks", description="List the registered tasks, or describe some.")
    parser.add_argument("names", nargs="*", metavar="NAME", help="tasks to describe (default: list them all)")
    parser.add_argument(
        "--task-dirs",
        action="append",
        default=[],
        metavar="DIR",
        help="also register the task spec YAMLs of this folder (repeatable)",
    )
    return parser


def tasks_main(argv: list[str]) -> int:

    args = tasks_parser().parse_args(argv)
    for folder in args.task_dirs:
        register_task_dir(folder)
    if not args.names:
        for spec in all_tasks():
            train = spec.train_task or "-"
            print(
                f"{spec.name:16} {spec.type:17} {len(spec.languages):3} langs  metric={spec.metric or '-':17} "
                f"train={train}"
            )
        return 0
    for name in args.names:
        print(describe_task(get_task(name)))
    return 0


def describe_task(spec) -> str:
    sources = ", ".join(f"{s.path}" + (f" ({s.name})" if s.name else "") for s in spec.sources) or "local files only"
    facts = [
        ("type", spec.type),
        ("metric", spec.metric),
        ("languages", " ".join(spec.all_languages())),
        ("source", sources),
        ("English training task", spec.train_task or "-"),
        ("labels", " ".join(spec.labels) if spec.labels else "-"),
        ("max_length", spec.max_length),
    ]
    if spec.num_choices:
        facts.append(("num_choices", spec.num_choices))
    description = " ".join((spec.description or "").split())
    return "\n".join(
        [spec.name + (f": {description}" if description else ""), *(f"  {key}: {value}" for key, value in facts)]
    )


def validate_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hf-itt validate",
        description="Check experiment YAMLs (every check run_itt.py makes before training) without running them.",
    )
    parser.add_argument("configs", nargs="+", metavar="CONFIG", help="experiment YAML files")
    return parser


def validate_main(argv: list[str]) -> int:

    for path in validate_parser().parse_args(argv).configs:
        for config in load_experiments(path):
            data = "data checked after its prepare hook" if config.prepare else check_data_paths(config) or "data found"
            print(
                f"ok  {path} [{config.experiment}]: {len(config.stages)} stage(s), "
                f"targets: {', '.join(config.targets.tasks) or '-'}; {data}"
            )
    return 0


def version_text() -> str:

    versions = []
    for package in ("transformers", "torch"):
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{package} not installed")
    return f"hf_itt {__version__} ({', '.join(versions)})"


def check_flag_style(argv: list[str], parser: argparse.ArgumentParser) -> None:
    """``--seed 2`` (run_glue.py style) is not an option here: say which ``key=value`` override it means."""
    known = set(parser._option_string_actions)
    for position, token in enumerate(argv):
        flag, has_value, value = token.partition("=")
        if not token.startswith("--") or flag in known:
            continue
        if not has_value:
            following = argv[position + 1] if position + 1 < len(argv) else ""
            value = following if following and not following.startswith("-") and "=" not in following else "true"
        raise ConfigError(flag_hint(flag[2:].replace("-", "_"), value))


def flag_hint(key: str, value: str) -> str:

    top_level = {f.name for f in dataclasses.fields(ExperimentConfig) if not f.metadata.get("internal")}
    if key in top_level:
        return f"--{key} is not an option: run_itt.py takes config overrides as key=value, so write {key}={value}"
    if key in training_argument_fields():
        return (
            f"--{key} is not an option: TrainingArguments are set in the YAML or as overrides, e.g. "
            f"defaults.training.{key}={value} (every stage and target) or stages.0.training.{key}={value} "
            "(one stage)"
        )
    return (
        f"unknown option --{key}: run_itt.py takes --config FILE, --dry-run, --force, --no-report, "
        "--experiments and key=value overrides (docs/reference.md)"
    )


# Environment failures a user fixes (disk, permissions): one message, no traceback.
ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS}
RESUME_HINT = "rerun the same command: finished stages are kept and training resumes from its last checkpoint"


def main(argv: list[str] | None = None) -> int:

    setup_console()
    argv = list(sys.argv[1:] if argv is None else argv)
    return guarded(dispatch, argv)


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler's time limit, `kill`): unwound like Ctrl-C, so locks and files are left clean."""


def guarded(command, argv: list[str]) -> int:
    """Run a command; user and environment errors print one `hf_itt error:` line and exit 2; SIGINT and
    SIGTERM print how to resume and exit 130 / 143."""
    previous = on_sigterm(raise_terminated)
    try:
        return command(argv)
    except HfIttError as err:
        return report_error(str(err))
    except BrokenPipeError:  # `hf-itt tasks | head`: the reader left, nothing is wrong
        return quiet_broken_pipe()
    except OSError as err:
        if err.errno not in ENVIRONMENT_ERRNOS:
            raise
        return report_error(environment_message(err))
    except KeyboardInterrupt as interrupt:
        print(f"interrupted; {RESUME_HINT}", file=sys.stderr)
        return 143 if isinstance(interrupt, Terminated) else 130
    finally:
        on_sigterm(previous)


def raise_terminated(signum, frame):
    raise Terminated()


def on_sigterm(handler):
    """Install ``handler`` for SIGTERM (main thread only; elsewhere Python allows no handlers)."""

    if handler is None or threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, handler)


def quiet_broken_pipe() -> int:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again (Python docs' recipe)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 128 + 13  # as a process killed by SIGPIPE


def report_error(message: str) -> int:
    print(f"hf_itt error: {' '.join(message.split())}", file=sys.stderr)
    return 2


def environment_message(err: OSError) -> str:
    where = f" while writing {err.filename}" if err.filename else ""
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return (
            f"no space left on the device{where} ({err.strerror}): free disk space or point output_dir "
            f"(and HF_HOME for caches) at a larger disk, then {RESUME_HINT}"
        )
    return (
        f"permission denied{where} ({err.strerror}): choose a writable output_dir / hub.local_root or fix "
        f"the folder's permissions, then {RESUME_HINT}"
    )


USAGE = """usage: hf-itt {run,tasks,validate,evaluate,report,memory,publish,plan,export-submission,build-base} ...
       (COMMAND --help for its options)
  run       same as run_itt.py: --config FILE [key=value ...]
  tasks     list registered tasks, or describe some: hf-itt tasks mnli xnli
  validate  check experiment YAMLs without running them
  evaluate  zero-shot evaluation of any checkpoint
  report    tables and plots over runs
  memory    DeepSpeed memory planner
  publish   publish finished-but-unpublished stages of a run
  plan      a grid of experiments x seeds as unique stages: counts, GPU-hours; run it locally or on SLURM
  export-submission  XTREME / XTREME-R submission files from saved predictions
  build-base  a real pretrained base encoder built offline (needs the extra 'realbase')
hf-itt --version prints the versions of hf_itt, transformers and torch."""


def dispatch(argv: list[str]) -> int:
    command = argv[0] if argv else "--help"
    if command in ("--version", "-V"):
        print(version_text())
        return 0
    if command == "run":
        return run_main(argv[1:])
    if command == "tasks":
        return tasks_main(argv[1:])
    if command == "validate":
        return validate_main(argv[1:])
    if command in SUBCOMMANDS:
        return import_module(SUBCOMMANDS[command]).main(argv[1:]) or 0
    if command in ("--help", "-h"):
        print(USAGE)
        return 0
    print(USAGE, file=sys.stderr)
    return report_error(f"unknown command {command!r}")


def run_entry(argv: list[str] | None = None) -> int:
    """Entry of run_itt.py: the `run` sub-command with user errors printed without a traceback."""

    setup_console()
    return guarded(run_main, list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
