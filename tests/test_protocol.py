"""The reference grid follows the XTREME / XTREME-R protocol: every row of the protocol table that
``--dry-run`` prints for every paper config, checked against ../shared/TASKS.md (§3, §4), and the dry
run / validate behaviour a user needs before a cluster run (no token, missing data named)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hf_itt.config.loading import load_experiments
from hf_itt.pipeline.jobs import build_jobs
from hf_itt.pipeline.protocol import protocol_rows

REPO = Path(__file__).resolve().parents[1]
PAPER = REPO / "run_scripts" / "paper"
GRID = [line.split("#")[0].strip() for line in (PAPER / "grid.txt").read_text().splitlines()]
GRID = [name for name in GRID if name]

# target -> (trained on, epochs, lr, per-device x accumulation, max length), TASKS.md §4 (jiant's XTREME
# pipeline: lr 1e-5 everywhere; 4 x 8, or 4 x 4 for QA; 256 tokens, 384 with stride 128 for QA) and §3
# (XTREME-R's scripts for XCOPA, LAReQA, Mewsli-X).
TARGETS = {
    "xnli": ("mnli", "2", "1e-05", "4 x 8", "256"),
    "pawsx": ("pawsx_en", "5", "1e-05", "4 x 8", "256"),
    "udpos": ("udpos_en", "10", "1e-05", "4 x 8", "256"),
    "panx": ("panx_en", "10", "1e-05", "4 x 8", "256"),
    "xquad": ("squad_v1", "2", "1e-05", "4 x 4", "384 (stride 128)"),
    "mlqa": ("squad_v1", "2", "1e-05", "4 x 4", "384 (stride 128)"),
    "tydiqa": ("tydiqa_en", "2", "1e-05", "4 x 4", "384 (stride 128)"),
    "xcopa": ("siqa -> copa", "5", "3e-05", "2 x 16", "128"),  # train_xcopa.sh: SIQA, then COPA
    "lareqa": ("squad_v1", "3", "2e-05", "4 x 4", "96 / 256 (query / candidate)"),  # train_lareqa.sh
    "mewsli_x": ("mewsli_x_wiki", "2", "1e-05", "8 x 4", "64 / 64 (query / candidate)"),  # train_mewslix.sh
}
RETRIEVAL = {"bucc2018", "tatoeba"}  # no training: the ITT encoder's layer 14 of 24, mean-pooled, 512 tokens
# XTREME-R's Tatoeba (run_tatoeba.sh): the same pooling, from the chain's SQuAD v1.1 model (the xquad target)
XTREME_R_TATOEBA = "target xquad (fine-tuned on squad_v1), layer 14, mean-pooled"


@pytest.fixture(scope="module")
def paper_rows():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    rows = {}
    for name in GRID:
        for config in load_experiments(PAPER / name):
            rows[(name, config.experiment)] = (
                config,
                protocol_rows(config, build_jobs(config, allow_missing_data=True)),
            )
    return rows


def test_every_target_row_follows_the_fact_sheet(paper_rows):
    for (name, _), (config, rows) in paper_rows.items():
        targets = {row.job.removeprefix("target "): row for row in rows if row.job.startswith("target ")}
        assert set(targets) == set(TARGETS) | RETRIEVAL | {"tatoeba_xtreme_r"}, name
        assert targets["tatoeba_xtreme_r"].encoder == XTREME_R_TATOEBA, name
        for task, expected in TARGETS.items():
            row = targets[task]
            assert (row.trained_on, row.epochs, row.lr, row.batch, row.max_length) == expected, (name, task)
        last_itt = [row.job.removeprefix("itt ") for row in rows if row.job.startswith("itt ")]
        encoder = f"ITT stage {last_itt[-1]}" if last_itt else "base model"
        for task in RETRIEVAL:
            assert targets[task].encoder == f"{encoder}, layer 14, mean-pooled" and targets[task].max_length == "512"


def test_every_itt_row_trains_with_the_itt_preset_at_each_tasks_own_length(paper_rows):
    own_length = {"squad_v1": "384 (stride 128)", "squad_v2": "384 (stride 128)"}
    for (name, _), (_, rows) in paper_rows.items():
        for row in (row for row in rows if row.job.startswith("itt ")):
            assert (row.lr, row.batch) == ("1e-05", "4 x 8"), (name, row)
            tasks = row.trained_on.removeprefix("joint: ").split(" + ")
            lengths = [own_length.get(task, "256") for task in tasks]
            assert row.max_length == (lengths[0] if len(set(lengths)) == 1 else ", ".join(lengths)), (name, row)


def test_joint_rows_name_every_task_once(paper_rows):
    for (name, _), (_, rows) in paper_rows.items():
        for row in rows:
            tasks = row.trained_on.removeprefix("joint: ").split(" + ")
            assert len(tasks) == len(set(tasks)), (name, row.trained_on)


def dry_run(config: Path, *overrides: str, env_extra=None) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key not in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(config.parent / "hf-home"), **(env_extra or {}))
    return subprocess.run(
        [sys.executable, str(REPO / "run_itt.py"), "--config", str(config), "--dry-run", *overrides],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=config.parent,
    )


def test_a_dry_run_of_a_paper_config_needs_no_token_and_prints_the_protocol(tmp_path):
    done = dry_run(PAPER / "seq_squad_mnli.yaml", f"output_dir={tmp_path}/run")  # hub.publisher: hub, no token
    assert done.returncode == 0, done.stderr[-2000:]
    assert "protocol:" in done.stdout and "itt squad-v1" in done.stdout
    assert re.search(r"target xquad +squad_v1 ", done.stdout) and re.search(r"target xcopa +siqa -> copa ", done.stdout)
    # the paper's Mewsli-X data is built by the user: the dry run names what a run would stop on
    assert (
        "missing data (the run would stop here): targets.data_files.mewsli_x: 'data/mewsli_x' does not exist"
        in done.stdout
    )


def test_validate_names_a_missing_data_file(tmp_path):
    config = tmp_path / "e.yaml"
    config.write_text(
        "experiment: e\nmodel: {name_or_path: xlm-roberta-large}\n"
        "stages: [{name: nli, tasks: [{name: mnli, data_files: {train: nowhere/train.jsonl}}]}]\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "hf_itt", "validate", str(config)], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 2
    assert (
        f"hf_itt error: stages[0].tasks[0].data_files.train: 'nowhere/train.jsonl' does not exist (looked at "
        f"{tmp_path}/nowhere/train.jsonl)"
    ) in done.stderr


def test_every_trained_row_selects_as_jiant(paper_rows):
    """TASKS.md section 4: evaluate every 1,000 updates on 500 English dev rows, stop after 30 without gain."""
    for (name, _), (_, rows) in paper_rows.items():
        for row in rows:
            if row.epochs == "-":
                continue
            if row.job == "itt ccg":  # no CCG dev split: nothing could pick a checkpoint (itt_ccg.yaml says so)
                assert row.selection == "last checkpoint"
                continue
            # the metric: the tasks' average, a dual encoder's loss, SQuAD F1 beside MLM (ablation_mlm.yaml says why)
            assert re.fullmatch(
                r"best (average|loss|squad_v1_f1), evaluated every 1000 steps on 500 dev rows, "
                r"patience 30",
                row.selection,
            ), (name, row.job, row.selection)
