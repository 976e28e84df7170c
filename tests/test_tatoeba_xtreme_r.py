"""XTREME-R's Tatoeba (TASKS.md 3.5): embedded with the chain's SQuAD-fine-tuned target model, not the ITT
encoder; planned after that target, its hash chaining on it; labelled in results and report; counted as
XTREME-R's tatoeba in the benchmark average. XTREME's tatoeba keeps the ITT encoder."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hf_itt.config.loading import load_experiment
from hf_itt.errors import ConfigError, TaskError
from hf_itt.pipeline.graph import GridRun, build_graph
from hf_itt.pipeline.jobs import build_jobs
from hf_itt.report.benchmark import benchmark_average
from hf_itt.tasks.registry import TaskRegistry, get_task
from hf_itt.tasks.spec import TaskSpec

REPO = Path(__file__).resolve().parents[1]
EXPERIMENT = Path(__file__).parent / "fixtures" / "experiments" / "tatoeba_xtreme_r.yaml"


def load(tmp_path, *overrides):
    return load_experiment(
        EXPERIMENT, ["model.name_or_path=xlm-roberta-base", f"output_dir={tmp_path}/run", *overrides]
    )


def test_the_spec_is_xtreme_r_tatoeba_with_its_41_languages():
    spec, xtreme = get_task("tatoeba_xtreme_r"), get_task("tatoeba")
    assert spec.retrieval_encoder == "squad_v1" and spec.benchmarks == ["xtreme_r"] and spec.type == "retrieval"
    assert spec.languages == xtreme.languages_xtreme_r and len(spec.languages) == 41
    assert spec.metric == xtreme.metric and spec.max_length == 512 and xtreme.retrieval_encoder is None


def test_planned_after_the_squad_target_with_its_hash_and_labelled(tmp_path):
    jobs = {job.name: job for job in build_jobs(load(tmp_path))}
    assert list(jobs) == ["nli", "xquad", "tatoeba", "tatoeba_xtreme_r"]  # listed first, planned after xquad
    xtreme_r, xtreme = jobs["tatoeba_xtreme_r"], jobs["tatoeba"]
    assert (xtreme_r.encoder_target, xtreme_r.stage_hash) == ("xquad", jobs["xquad"].stage_hash)
    assert xtreme_r.encoder == "target xquad (fine-tuned on squad_v1)"
    assert (xtreme.stage_hash, xtreme.encoder) == (jobs["nli"].stage_hash, "itt-stage nli")

    retrained = {
        job.name: job for job in build_jobs(load(tmp_path, "targets.per_task_training={xquad: {learning_rate: 0.5}}"))
    }
    assert retrained["tatoeba_xtreme_r"].stage_hash == retrained["xquad"].stage_hash != xtreme_r.stage_hash
    assert retrained["tatoeba"].stage_hash == xtreme.stage_hash  # the ITT encoder did not change


def test_in_a_grid_it_waits_for_the_squad_target(tmp_path):
    config = load(tmp_path)
    graph = build_graph([GridRun(str(EXPERIMENT), config.seed, (), config.experiment, False, config)])
    evals = {node.job.name: node for node in graph.of_kind("eval")}
    [target] = graph.of_kind("target")
    assert evals["tatoeba_xtreme_r"].parent == target.key and target.job.name == "xquad"
    assert evals["tatoeba"].parent == graph.of_kind("itt")[0].key
    assert list(graph.nodes).index(target.key) < list(graph.nodes).index(evals["tatoeba_xtreme_r"].key)


def test_without_a_squad_target_the_experiment_is_refused_at_load_naming_the_target_to_add(tmp_path):
    with pytest.raises(
        ConfigError,
        match=r"tatoeba_xtreme_r embeds with this chain's model fine-tuned on squad_v1.*"
        r"add mlqa or xquad to targets.tasks",
    ):
        load(tmp_path, "targets.tasks=[tatoeba_xtreme_r, tatoeba]")
    # a LAReQA dual encoder is trained on SQuAD pairs, but it is not the SQuAD QA model
    with pytest.raises(ConfigError, match="add mlqa or xquad"):
        load(tmp_path, "targets.tasks=[tatoeba_xtreme_r, lareqa]")


def test_the_refusal_is_one_line_from_the_cli(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "run_itt.py"),
            "--config",
            str(EXPERIMENT),
            "--dry-run",
            "model.name_or_path=xlm-roberta-base",
            f"output_dir={tmp_path}/run",
            "targets.tasks=[tatoeba_xtreme_r]",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode != 0 and "Traceback" not in done.stderr
    [line] = [line for line in done.stderr.splitlines() if line.startswith("hf_itt error:")]
    assert "add mlqa or xquad to targets.tasks" in line


def test_a_retrieval_encoder_belongs_to_evaluation_only_tasks_and_must_exist(tmp_path):
    with pytest.raises(TaskError, match="`retrieval_encoder` is for tasks evaluated without training"):
        get_task("xnli").with_overrides(retrieval_encoder="squad_v1")
    spec_file = tmp_path / "mine.yaml"
    spec_file.write_text("my_tatoeba: {extends: tatoeba, retrieval_encoder: no_such_task}\n")
    registry = TaskRegistry()
    registry._add(get_task("tatoeba"))
    with pytest.raises(TaskError, match="names training task 'no_such_task', which is not registered"):
        registry.register_file(spec_file)
    assert isinstance(get_task("tatoeba_xtreme_r"), TaskSpec)


def test_xtreme_r_counts_tatoeba_xtreme_r_as_its_tatoeba_and_xtreme_does_not():
    scores = {"tatoeba": {"de": {"accuracy": 40.0}}, "tatoeba_xtreme_r": {"de": {"accuracy": 70.0}}}
    xtreme_r, xtreme = benchmark_average(scores, "xtreme_r"), benchmark_average(scores, "xtreme")
    assert xtreme_r.task_scores == {"tatoeba": 70.0} and "tatoeba (counted as tatoeba_xtreme_r)" in xtreme_r.ignored
    assert xtreme.task_scores == {"tatoeba": 40.0} and "tatoeba_xtreme_r" in xtreme.ignored
    assert benchmark_average({"tatoeba_xtreme_r": scores["tatoeba_xtreme_r"]}, "xtreme_r").task_scores == {
        "tatoeba": 70.0
    }


@pytest.mark.slow
def test_tatoeba_xtreme_r_embeds_with_the_xquad_model_through_the_cli(tiny_checkpoint, tmp_path):
    def run(*extra):
        done = subprocess.run(
            [
                sys.executable,
                str(REPO / "run_itt.py"),
                "--config",
                str(EXPERIMENT),
                f"model.name_or_path={tiny_checkpoint}",
                f"output_dir={tmp_path}/run",
                *extra,
            ],
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    plan = run("--dry-run")
    assert "evaluate-only  [encoder: target xquad (fine-tuned on squad_v1)]" in plan
    assert "evaluate-only  [encoder: itt-stage nli]" in plan
    log = run()
    assert log.index("[target] xquad: trained") < log.index("[target] tatoeba_xtreme_r: evaluated")
    run_dir = tmp_path / "run"
    results = {
        task: json.loads((run_dir / "results" / f"{task}.validation.json").read_text())
        for task in ("xquad", "tatoeba", "tatoeba_xtreme_r")
    }
    xtreme_r, xtreme = results["tatoeba_xtreme_r"], results["tatoeba"]
    assert xtreme_r["checkpoint"] == str(run_dir / "targets" / "xquad" / "checkpoint")
    assert xtreme_r["stage_hash"] == results["xquad"]["stage_hash"]
    assert xtreme_r["encoder"] == "target xquad (fine-tuned on squad_v1)" and xtreme["encoder"] == "itt-stage nli"
    assert xtreme["checkpoint"] == str(run_dir / "stages" / "nli" / "checkpoint")
    assert set(xtreme_r["languages"]) == {"de"} and 0 <= xtreme_r["languages"]["de"]["accuracy"] <= 100
    report = (run_dir / "report" / "report.md").read_text()
    assert "tatoeba_xtreme_r embedded with: target xquad (fine-tuned on squad_v1) (tatoeba-xtreme-r)" in report
    assert "XTREME-R: tatoeba counts the tatoeba_xtreme_r results" in report

    # a grid runs it as its own job, once the xquad model is finished: it embeds with that model again
    (run_dir / "results" / "tatoeba_xtreme_r.validation.json").unlink()
    run("--no-report", "--stage", "target:tatoeba_xtreme_r", "--expect-hash", xtreme_r["stage_hash"])
    again = json.loads((run_dir / "results" / "tatoeba_xtreme_r.validation.json").read_text())
    assert again["languages"] == xtreme_r["languages"] and again["checkpoint"] == xtreme_r["checkpoint"]
