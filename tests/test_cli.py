"""The command line follows the usual conventions: --help on every command, --version, a quiet closed
pipe, a non-zero exit when nothing was scored, --task-dirs where tasks are named, and run_glue-style
flags answered with the key=value override they mean."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hf_itt import __version__, cli

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
COMMANDS = ("run", "tasks", "validate", "evaluate", "report", "memory", "publish")


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([command, "--help"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0 and out.startswith("usage:"), out[:200]


def test_module_entry_points_have_help():
    for entry in (
        ["run_itt.py"],
        ["-m", "hf_itt"],
        ["-m", "hf_itt.evaluate"],
        ["-m", "hf_itt.report"],
        ["-m", "hf_itt.memory"],
    ):
        done = subprocess.run(
            [sys.executable, *entry, "--help"], capture_output=True, text=True, cwd=REPO, env=ENV, timeout=120
        )
        assert done.returncode == 0 and "usage:" in done.stdout, (entry, done.stderr[-500:])


def test_version(capsys):
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.startswith(f"hf_itt {__version__} (transformers 5.")
    with pytest.raises(SystemExit) as exit_info:
        cli.run_main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.startswith(f"hf_itt {__version__}")


def test_usage_errors_exit_2_in_one_line(capsys):
    assert cli.main(["frobnicate"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == "hf_itt error: unknown command 'frobnicate'"
    assert cli.main(["tasks", "mnlii"]) == 2
    assert "mnli" in capsys.readouterr().err


def test_closed_pipe_ends_quietly():
    """`hf-itt tasks | head -1`: the reader is gone before the listing is written."""
    process = subprocess.Popen(
        [sys.executable, "-m", "hf_itt", "tasks"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO, env=ENV
    )
    process.stdout.close()  # before the interpreter has even started: every write hits a closed pipe
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=120) == 141 and stderr == "", stderr


def test_tasks_lists_describes_and_reads_task_dirs(tmp_path, capsys):
    assert cli.main(["tasks"]) == 0
    listing = capsys.readouterr().out
    assert listing.count("\n") >= 29 and "xnli" in listing
    assert cli.main(["tasks", "mnli", "xnli"]) == 0
    described = capsys.readouterr().out
    assert described.startswith("mnli:") and "labels: entailment neutral contradiction" in described
    assert "\nxnli:" in described and "English training task: mnli" in described
    (tmp_path / "mine.yaml").write_text(
        textwrap.dedent("""\
        my_sentiment:
          type: classification
          description: A local sentiment task.
          labels: [negative, positive]
          columns: {text_a: sentence, label: label}
          metric: accuracy
        """)
    )
    assert cli.main(["tasks", "--task-dirs", str(tmp_path), "my_sentiment"]) == 0
    assert "my_sentiment: A local sentiment task." in capsys.readouterr().out


def test_evaluate_reads_task_dirs_and_fails_when_nothing_was_scored(tiny_checkpoint, tmp_path, capsys):
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "mine.yaml").write_text(
        "my_nli:\n  type: classification\n  labels: [a, b]\n  columns: {text_a: premise, label: label}\n"
    )
    assert cli.main(["evaluate", "--model", str(tmp_path / "missing"), "--tasks", "my_nli"]) == 2
    assert "my_nli" in capsys.readouterr().err  # an unknown task, named before any model is loaded
    assert (
        cli.main(
            [
                "evaluate",
                "--model",
                str(tmp_path / "missing"),
                "--tasks",
                "my_nli",
                "--task-dirs",
                str(tmp_path / "tasks"),
            ]
        )
        == 2
    )
    assert "missing" in capsys.readouterr().err  # the task is known now: the model is what is missing

    code = cli.main(
        [
            "evaluate",
            "--model",
            str(tiny_checkpoint),
            "--tasks",
            "xnli",
            "--languages",
            "de",
            "--data-files",
            f"xnli={tmp_path}/nowhere/{{lang}}.jsonl",
            "--out",
            str(tmp_path / "out"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "hf_itt error: nothing was scored for xnli" in err


@pytest.mark.parametrize(
    "flags, hint",
    [
        (["--seed", "2"], "write seed=2"),
        (["--seed=2"], "write seed=2"),
        (["--learning_rate", "2e-5"], "defaults.training.learning_rate=2e-5"),
        (["--do_train"], "defaults.training.do_train=true"),
        (["--frobnicate"], "unknown option --frobnicate"),
    ],
)
def test_run_glue_style_flags_get_the_override_they_mean(flags, hint, capsys):
    assert cli.run_entry(["--config", str(REPO / "run_scripts" / "demo.yaml"), *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hf_itt error: ") and hint in err and "Traceback" not in err


def test_validate_checks_every_experiment_of_a_file(capsys):
    assert cli.main(["validate", str(REPO / "run_scripts" / "demo.yaml")]) == 0
    out = capsys.readouterr().out
    assert out.count("ok  ") == 5 and "[sequential]" in out
