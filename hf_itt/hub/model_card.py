"""Model cards for stage checkpoints, built from the stage manifest with ``huggingface_hub.ModelCard``.

The YAML block carries the Hub's standard keys (library_name, base_model, tags, datasets, language,
``model-index`` with the dev metrics of every task) plus an ``hf_itt`` key with the experiment,
stage, stage hash, lineage and metrics, so tools can read a card back with ``ModelCard.load``.
The body repeats that for people and shows how to continue training from this checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from hf_itt.hub.manifest import StageManifest, redact_secrets, redact_text

CARD_NAME = "README.md"
BASE_TAGS = ["hf_itt", "intermediate-task-training"]
HUB_TASK_TYPES = {
    "classification": "text-classification",
    "multiple_choice": "multiple-choice",
    "extractive_qa": "question-answering",
    "tagging": "token-classification",
    "mlm": "fill-mask",
}
SHOWN_HYPERPARAMETERS = (
    "learning_rate", "per_device_train_batch_size", "gradient_accumulation_steps", "num_train_epochs", "max_steps",
    "warmup_steps", "lr_scheduler_type", "weight_decay", "max_grad_norm", "optim", "bf16", "fp16",
)


def build_model_card(manifest: StageManifest, repo_id: str | None = None, revision: str | None = None,
                     local_path: str | Path | None = None) -> ModelCard:
    """The card of a stage; ``repo_id``/``revision`` are where it is (or will be) published, ``local_path``
    the folder to continue from when it has no repo."""
    repo_id = repo_id or manifest.publish.repo_id
    revision = revision or manifest.publish.revision or "main"
    data = card_metadata(manifest, model_name=repo_id or f"{manifest.experiment}-{manifest.stage}")
    body = card_body(manifest, repo_id, revision, local_path)
    return ModelCard(redact_text(f"---\n{data.to_yaml()}\n---\n{body}"))


def write_model_card(stage_dir: str | Path, manifest: StageManifest, repo_id: str | None = None,
                     revision: str | None = None) -> Path:
    """Atomically write ``stage_dir/README.md`` (before ``finish_manifest``: the manifest comes last)."""
    from hf_itt.fileio import atomic_write_text

    card = build_model_card(manifest, repo_id, revision, local_path=Path(stage_dir).resolve())
    return atomic_write_text(Path(stage_dir) / CARD_NAME, str(card))


def card_metadata(manifest: StageManifest, model_name: str) -> ModelCardData:
    base_model = _hub_base_model(manifest)
    eval_results = _eval_results(manifest)
    return ModelCardData(
        library_name="transformers",
        base_model=base_model,
        tags=_tags(manifest, base_model),
        datasets=sorted({task["source"] for task in manifest.tasks if _is_hub_id(task.get("source"))}) or None,
        language=_languages(manifest) or None,
        model_name=model_name if eval_results else None,
        eval_results=eval_results or None,
        hf_itt=redact_secrets({
            "experiment": manifest.experiment,
            "stage": manifest.stage,
            "stage_hash": manifest.stage_hash,
            "source": manifest.source,
            "lineage": manifest.lineage,
            "metrics": manifest.metrics,
        }),
    )


def card_body(manifest: StageManifest, repo_id: str | None, revision: str, local_path: str | Path | None = None) -> str:
    reference = f"{repo_id}@{revision}" if repo_id else str(local_path or "<path to this folder>")
    sections = [
        f"# {manifest.experiment} / {manifest.stage}\n\n"
        f"Intermediate-task training (ITT) checkpoint trained with hf_itt "
        f"(stage hash `{manifest.stage_hash}`). It holds the shared encoder only: fine-tune it on a target "
        f"task, or evaluate it zero-shot on retrieval tasks.",
        "## Lineage\n\n" + " → ".join(_lineage_label(entry) for entry in manifest.lineage),
        "## Tasks\n\n" + _tasks_table(manifest.tasks),
        "## Hyper-parameters\n\n" + _hyperparameters_table(manifest),
        "## Dev metrics\n\n" + _metrics_table(manifest.metrics),
        "## Continue from this checkpoint\n\n" + _continue_snippet(manifest, reference, repo_id, revision),
    ]
    return "\n\n".join(sections) + "\n"


def _eval_results(manifest: StageManifest) -> list[EvalResult]:
    tasks = {task["name"]: task for task in manifest.tasks}
    results = []
    for task_name, metrics in sorted(manifest.metrics.items()):
        task = tasks.get(task_name, {})
        for metric, value in sorted(metrics.items()):
            results.append(EvalResult(
                task_type=HUB_TASK_TYPES.get(task.get("type"), "other"),
                dataset_type=task.get("source") if _is_hub_id(task.get("source")) else task_name,
                dataset_name=task_name,
                dataset_config=task.get("config"),
                dataset_split="validation",
                dataset_revision=task.get("revision"),
                metric_type=metric,
                metric_value=value,
            ))
    return results


def _hub_base_model(manifest: StageManifest) -> str | None:
    """The closest ancestor that lives on the Hub (the parent stage's repo if it was published)."""
    for entry in reversed(manifest.lineage[:-1]):
        repo_id = (entry.get("ref") or "").split("@")[0]
        if _is_hub_id(repo_id):
            return repo_id
    return None


def _tags(manifest: StageManifest, base_model: str | None) -> list[str]:
    names = " ".join(filter(None, [base_model, manifest.identity.get("base_model")])).lower()
    family = ["xlm-roberta"] if "xlm-roberta" in names else []
    return BASE_TAGS + family + sorted({task["name"] for task in manifest.tasks})


def _languages(manifest: StageManifest) -> list[str]:
    langs = set()
    for task in manifest.tasks:
        lang = task.get("lang") or []
        langs.update([lang] if isinstance(lang, str) else lang)
    return sorted(langs)


def _is_hub_id(value: str | None) -> bool:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if not value or value.startswith((".", "/", "~")) or Path(value).exists():
        return False
    try:
        validate_repo_id(value)
    except HFValidationError:
        return False
    return True


def _lineage_label(entry: dict[str, Any]) -> str:
    if entry.get("stage") == "base":
        return f"`{entry.get('ref')}`"
    tasks = "+".join(entry.get("tasks") or [])
    where = f" (`{entry['ref']}`)" if entry.get("ref") else ""
    return f"**{entry.get('stage')}** [{tasks}]{where}"


def _tasks_table(tasks: list[dict[str, Any]]) -> str:
    if not tasks:
        return "(none recorded)"
    rows = ["| task | type | source | config | revision | language |", "|---|---|---|---|---|---|"]
    for task in tasks:
        source = "local files" if task.get("data_files") else task.get("source") or ""
        lang = task.get("lang")
        rows.append(f"| {task['name']} | {task.get('type') or ''} | {source} | {task.get('config') or ''} | "
                    f"{task.get('revision') or ''} | {lang if isinstance(lang, str) else ', '.join(lang or [])} |")
    return "\n".join(rows)


def _hyperparameters_table(manifest: StageManifest) -> str:
    args = manifest.identity.get("training_args", {})
    rows = ["| name | value |", "|---|---|"]
    rows += [f"| {key} | {args[key]} |" for key in SHOWN_HYPERPARAMETERS if key in args]
    rows += [f"| {key} | {manifest.identity[key]} |" for key in ("seed", "world_size")
             if manifest.identity.get(key) is not None]
    if manifest.identity.get("sampler"):
        rows.append(f"| task sampling | {manifest.identity['sampler']} |")
    return "\n".join(rows) if len(rows) > 2 else "(not recorded)"


def _metrics_table(metrics: dict[str, dict[str, float]]) -> str:
    if not metrics:
        return "(no dev evaluation in this stage)"
    rows = ["| task | metric | value |", "|---|---|---|"]
    for task, values in sorted(metrics.items()):
        rows += [f"| {task} | {metric} | {value:.6g} |" for metric, value in sorted(values.items())]
    return "\n".join(rows)


def _continue_snippet(manifest: StageManifest, reference: str, repo_id: str | None, revision: str) -> str:
    python = (f'AutoModel.from_pretrained("{repo_id}", revision="{revision}")' if repo_id
              else f'AutoModel.from_pretrained("{reference}")')
    return (
        "Start a new experiment from this stage (it is downloaded, not retrained):\n\n"
        "```yaml\n"
        f"experiment: {manifest.experiment}-continued\n"
        "stages:\n"
        f"  - name: {manifest.stage}\n"
        f"    from: {reference}\n"
        "  - name: next\n"
        "    tasks: [<next task>]\n"
        "```\n\n"
        "```bash\npython run_itt.py --config run_scripts/<your experiment>.yaml\n```\n\n"
        f"In Python: `from transformers import AutoModel; {python}`."
    )
