"""Every shipped experiment YAML validates, and the paper grid covers the study's design."""

import subprocess
from pathlib import Path

import pytest

from hf_itt.config.experiment import load_experiment, load_experiments

RUN_SCRIPTS = Path(__file__).resolve().parents[1] / "run_scripts"
CONFIGS = sorted(p for p in RUN_SCRIPTS.rglob("*.yaml")
                 if not p.name.startswith("_") and not p.parent.name.endswith("_tasks"))  # *_tasks: task specs


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
    assert single >= {"anli_plus", "mnli", "qqp", "squad_v1", "squad_v2", "hellaswag", "cosmosqa",
                      "commonsenseqa", "ccg"}
    assert [] in modes.values()                                          # the no-ITT baseline
    assert any(len(stages) == 1 and len(stages[0]) == 9 for stages in modes.values())  # all nine jointly
    sequential = {tuple(t[0] for t in stages) for stages in modes.values() if len(stages) > 1}
    joint = {tuple(stages[0]) for stages in modes.values() if len(stages) == 1 and len(stages[0]) > 1}
    assert ("squad_v1", "mnli") in sequential and ("squad_v1", "mnli") in joint  # joint vs sequential pairs
    assert all(len(c.targets.tasks) == 12 for c in configs.values())


def test_seed_override_and_shared_prefix_hash():
    from hf_itt.pipeline.jobs import build_jobs

    a = build_jobs(load_experiment(RUN_SCRIPTS / "paper" / "seq_squad_mnli.yaml", ["seed=2"]))
    b = build_jobs(load_experiment(RUN_SCRIPTS / "paper" / "seq_squad_hellaswag.yaml", ["seed=2"]))
    c = build_jobs(load_experiment(RUN_SCRIPTS / "paper" / "seq_squad_hellaswag.yaml", ["seed=3"]))
    assert a[0].stage_hash == b[0].stage_hash        # squad first: trained once, reused by the other
    assert a[1].stage_hash != b[1].stage_hash
    assert a[0].stage_hash != c[0].stage_hash        # another seed is another stage


def test_grid_driver_help():
    done = subprocess.run(["bash", str(RUN_SCRIPTS / "run_grid.sh"), "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "--slurm" in done.stdout


def test_experiments_option_names_the_valid_choices(capsys):
    from hf_itt.cli import main

    code = main(["run", "--config", str(RUN_SCRIPTS / "demo.yaml"), "--experiments", "baseline,related", "--dry-run"])
    output = capsys.readouterr()
    assert code == 2
    assert "'related' not in this file" in output.err + output.out and "itt-related" in output.err + output.out
