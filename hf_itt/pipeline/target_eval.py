"""Zero-shot evaluation of one target job inside an experiment run (rank 0 only)."""

from __future__ import annotations

from pathlib import Path

from hf_itt.config.experiment import ExperimentConfig
from hf_itt.evaluation.bucc import BuccSettings
from hf_itt.evaluation.results_table import print_results
from hf_itt.hub.manifest import read_manifest
from hf_itt.pipeline.budget import chain_training
from hf_itt.pipeline.jobs import StageJob
from hf_itt.pipeline.stage_data import resolve_data_files


def itt_mode(stages: list[list[str]]) -> str:
    """How the ITT stages before the target were arranged (the report groups experiments by it)."""
    if not stages:
        return "none"
    if len(stages) == 1:
        return "single" if len(stages[0]) == 1 else "joint"
    return "sequential" if all(len(tasks) == 1 for tasks in stages) else "mixed"


def evaluate_target(job: StageJob, model_path: str | Path, config: ExperimentConfig):
    from hf_itt.evaluation.scorers import ScoringContext  # defers datasets, torch
    from hf_itt.evaluation.zero_shot import (  # defers datasets, huggingface_hub, torch
        EvaluationRequest,
        ResultMeta,
        evaluate_task,
        load_for_evaluation,
    )

    model, tokenizer = load_for_evaluation(
        str(model_path), revision=None if Path(str(model_path)).exists() else config.model.revision
    )
    evaluation = config.evaluation
    ctx = ScoringContext(
        model=model,
        tokenizer=tokenizer,
        batch_size=evaluation.batch_size,
        retrieval_layer=evaluation.retrieval_layer,
        retrieval_max_length=evaluation.retrieval_max_length,
    )
    request = EvaluationRequest(
        task=job.target,
        languages=job.languages,
        splits=list(evaluation.splits),
        data_files=resolve_data_files(config, config.targets.data_files.get(job.target)),
        max_examples=evaluation.max_eval_examples,
    )
    meta = ResultMeta(
        experiment=config.experiment,
        seed=config.seed,
        base_model=config.model.name_or_path,
        checkpoint=str(model_path),
        itt={"mode": itt_mode(job.itt_stages), "stages": job.itt_stages},
        stage_hash=job.stage_hash,
        encoder=job.encoder,
        training=chain_training(model_path),
    )
    bucc = BuccSettings(
        duplicates=evaluation.bucc_duplicates,
        allow_gold_only=evaluation.bucc_allow_gold_only,
        test_oracle=evaluation.bucc_test_oracle,
    )
    results = evaluate_task(
        ctx, request, meta, out_dir=config.run_dir / "results", bucc=bucc, save_predictions=evaluation.save_predictions
    )
    print_results(results, title=f"{config.experiment} (seed {config.seed}): {job.target}")
    if job.kind == "target" and not job.is_retrieval and Path(model_path) == job.checkpoint_dir:
        add_results_to_card(job, results, config)
    return results


def add_results_to_card(job: StageJob, results, config: ExperimentConfig) -> None:
    """Rewrite the target checkpoint's card with its zero-shot scores in the model-index."""
    from hf_itt.hub.model_card import write_model_card  # defers huggingface_hub

    manifest = read_manifest(job.checkpoint_dir)
    write_model_card(
        job.checkpoint_dir,
        manifest,
        job.repo_id,
        license=config.hub.license,
        kind="target",
        results=results,
        local_results=bool(config.targets.data_files.get(job.target)),
    )
