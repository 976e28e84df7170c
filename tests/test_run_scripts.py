"""Every shipped experiment YAML validates, and the paper grid covers the study's design."""

import subprocess
from pathlib import Path

import pytest

from hf_itt.config.loading import load_experiment, load_experiments

RUN_SCRIPTS = Path(__file__).resolve().parents[1] / "run_scripts"
CONFIGS = sorted(
    p for p in RUN_SCRIPTS.rglob("*.yaml") if not p.name.startswith("_") and not p.parent.name.endswith("_tasks")
)  # *_tasks: task specs


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(RUN_SCRIPTS)))
def test_shipped_config_validates(path):
    for config in load_experiments(path):
        assert config.experiment and config.experiment != "REPLACE_ME"


def test_grid_lists_existing_files_and_the_study_design():
    grid = RUN_SCRIPTS / "paper" / "grid.txt"
    names = [line.strip() for line in grid.read_text().splitlines() if line.strip() and not line.startswith("#")]
    assert all((grid.parent / name).is_file() for name in names)
    configs = {name: load_experiment(grid.parent / name) for name in names}
    modes = {name: [[t.name for t in s.tasks] for s in c.stages] for name, c in configs.items()}
    single = {stages[0][0] for stages in modes.values() if len(stages) == 1 and len(stages[0]) == 1}
    assert single >= {
        "anli_plus",
        "mnli",
        "qqp",
        "squad_v1",
        "squad_v2",
        "hellaswag",
        "cosmosqa",
        "commonsenseqa",
        "ccg",
    }
    assert [] in modes.values()  # the no-ITT baseline
    nine = {"anli_plus", "mnli", "qqp", "squad_v1", "squad_v2", "hellaswag", "cosmosqa", "commonsenseqa", "ccg"}
    joint_all = [stages[0] for stages in modes.values() if len(stages) == 1 and len(stages[0]) == 8]
    assert joint_all and all(set(tasks) | {"mnli"} == nine for tasks in joint_all)  # MNLI inside ANLI+ only
    assert not any({"anli_plus", "mnli"} <= set(tasks) for stages in modes.values() for tasks in stages)
    sequential = {tuple(t[0] for t in stages) for stages in modes.values() if len(stages) > 1}
    joint = {tuple(stages[0]) for stages in modes.values() if len(stages) == 1 and len(stages[0]) > 1}
    assert ("squad_v1", "mnli") in sequential and ("squad_v1", "mnli") in joint  # joint vs sequential pairs
    assert all(len(c.targets.tasks) == 13 for c in configs.values())  # tatoeba_xtreme_r: XTREME-R's protocol


def test_seed_override_and_shared_prefix_hash():
    from hf_itt.pipeline.jobs import build_jobs

    a = build_jobs(load_experiment(RUN_SCRIPTS / "paper" / "seq_squad_mnli.yaml", ["seed=2"]))
    b = build_jobs(load_experiment(RUN_SCRIPTS / "paper" / "seq_squad_hellaswag.yaml", ["seed=2"]))
    c = build_jobs(load_experiment(RUN_SCRIPTS / "paper" / "seq_squad_hellaswag.yaml", ["seed=3"]))
    assert a[0].stage_hash == b[0].stage_hash  # squad first: trained once, reused by the other
    assert a[1].stage_hash != b[1].stage_hash
    assert a[0].stage_hash != c[0].stage_hash  # another seed is another stage


def test_grid_driver_help():
    done = subprocess.run(["bash", str(RUN_SCRIPTS / "run_grid.sh"), "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "--slurm" in done.stdout


def test_experiments_option_names_the_valid_choices(capsys):
    from hf_itt.cli import main

    code = main(["run", "--config", str(RUN_SCRIPTS / "demo.yaml"), "--experiments", "baseline,related", "--dry-run"])
    output = capsys.readouterr()
    assert code == 2
    assert "'related' not in this file" in output.err + output.out and "itt-related" in output.err + output.out


PAPER = RUN_SCRIPTS / "paper"


def grid_configs():
    names = [
        line.strip()
        for line in (PAPER / "grid.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    return {name: load_experiment(PAPER / name) for name in names}


def test_every_trained_job_of_the_grid_selects_its_model_as_jiant_does():
    """English dev subset of 500, evaluation every 1,000 updates, patience 30, best weights exported;
    the stated exceptions: CCG (no dev split in its spec) and the metric of the MLM ablation / dual encoders."""
    from hf_itt.pipeline.jobs import build_jobs

    for name, config in grid_configs().items():
        for job in build_jobs(config, allow_missing_data=True):
            if job.kind == "target" and job.is_retrieval:
                continue
            where = f"{name} {job.kind}:{job.name}"
            if name == "itt_ccg.yaml" and job.kind == "itt":
                assert job.training["load_best_model_at_end"] is False and job.early_stopping_patience == 0, where
                continue
            training = job.training
            assert training["eval_strategy"] == "steps" and training["eval_steps"] == 1000, where
            assert training["save_strategy"] == "steps" and training["save_steps"] == 1000, where
            assert training["load_best_model_at_end"] is True and job.early_stopping_patience == 30, where
            assert all(plan.max_dev == 500 for plan in job.tasks), where
            expected = (
                {"ablation_mlm.yaml": "squad_v1_f1"}.get(name, "average")
                if job.kind == "itt"
                else ("loss" if job.name in ("lareqa", "mewsli_x") else "average")
            )
            assert training["metric_for_best_model"] == expected, where


def test_budget_matched_joint_arm_runs_as_many_updates_as_single_task_mnli():
    import math

    from hf_itt.config.presets import get_preset
    from hf_itt.pipeline.fact_sheet import train_rows

    configs = grid_configs()
    joint, budget, mnli = (
        configs[name].stages[0] for name in ("joint_all9.yaml", "joint_all9_budget.yaml", "itt_mnli.yaml")
    )
    assert [t.name for t in budget.tasks] == [t.name for t in joint.tasks] and budget.sampling == joint.sampling
    assert budget.preset == joint.preset == mnli.preset and joint.training == {}
    preset = get_preset(mnli.preset)["training"]
    per_update = preset["per_device_train_batch_size"] * preset["gradient_accumulation_steps"]
    mnli_updates = preset["num_train_epochs"] * math.ceil(train_rows("mnli")[0] / per_update)
    assert per_update == 32 and mnli_updates == 36_816
    assert budget.training == {"max_steps": mnli_updates}
    text = (PAPER / "joint_all9_budget.yaml").read_text()
    assert "36,816" in text and "1,178,112" in text and "12,272" in text  # the arithmetic, stated
    rows = sum(train_rows(t.name)[0] for t in joint.tasks)
    assert f"{rows:,}" in (PAPER / "joint_all9.yaml").read_text()
    assert f"{3 * math.ceil(rows / per_update):,}" in (PAPER / "joint_all9.yaml").read_text()
