"""Model cards for stage checkpoints, built from the stage manifest with ``huggingface_hub.ModelCard``.

The YAML block carries the Hub's standard keys: ``library_name``, ``pipeline_tag``, ``base_model`` (the
closest ancestor on the Hub: the published parent stage or the Hub base model), ``datasets`` (Hub ids
of the training data; local files have none), ``license`` (``hub.license``), ``language``, ``tags`` and a
``model-index`` whenever there are scores: the dev metrics of every task and, for a target stage, its
zero-shot results per language. An ``hf_itt`` key adds the experiment, stage, stage hash, lineage and
metrics, so tools can read a card back with ``ModelCard.load``. Cards hold no machine paths: a local
folder appears as ``local:<content hash>``. The body repeats all of it for people and shows how to
continue from the checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from hf_itt.errors import TaskError
from hf_itt.fileio import atomic_write_text
from hf_itt.hub.manifest import StageManifest, redact_secrets, redact_text
from hf_itt.task_types.registry import get_type, type_names
from hf_itt.tasks.registry import get_task

CARD_NAME = "README.md"
BASE_TAGS = ["hf_itt", "intermediate-task-training"]
DEFAULT_LICENSE = "other"  # the Hub's value for "see the card"; set hub.license to your base model's
ENCODER_PIPELINE = "feature-extraction"  # an ITT stage exports the bare encoder
SHOWN_HYPERPARAMETERS = (
    "learning_rate",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "num_train_epochs",
    "max_steps",
    "warmup_steps",
    "lr_scheduler_type",
    "weight_decay",
    "max_grad_norm",
    "optim",
    "bf16",
    "fp16",
    "eval_steps",
    "metric_for_best_model",  # shown when load_best_model_at_end picks the weights (identity keeps them)
)
PLACEHOLDER_PATH = "<path to this folder>"


def build_model_card(
    manifest: StageManifest,
    repo_id: str | None = None,
    revision: str | None = None,
    license: str | None = None,
    kind: str = "itt",
    results: list | None = None,
    local_results: bool = False,
) -> ModelCard:
    """The card of a stage; ``repo_id``/``revision``: where it is (or will be) published; ``kind``: "itt" (an
    exported encoder) or "target" (encoder + head); ``results``: the target's zero-shot ``TaskResult``s,
    scored on local files when ``local_results`` (then they name no Hub dataset)."""
    repo_id = repo_id or manifest.publish.repo_id
    revision = revision or manifest.publish.revision or "main"
    data = card_metadata(
        manifest,
        model_name=repo_id or f"{manifest.experiment}-{manifest.stage}",
        license=license,
        kind=kind,
        results=results,
        local_results=local_results,
    )
    body = card_body(manifest, repo_id, revision, kind, results)
    return ModelCard(redact_text(f"---\n{data.to_yaml()}\n---\n{body}"))


def write_model_card(
    stage_dir: str | Path,
    manifest: StageManifest,
    repo_id: str | None = None,
    revision: str | None = None,
    license: str | None = None,
    kind: str = "itt",
    results: list | None = None,
    local_results: bool = False,
) -> Path:
    """Atomically write ``stage_dir/README.md`` (the card is not checksummed: it may be rewritten later)."""

    card = build_model_card(manifest, repo_id, revision, license, kind, results, local_results)
    return atomic_write_text(Path(stage_dir) / CARD_NAME, str(card))


def card_metadata(
    manifest: StageManifest,
    model_name: str,
    license: str | None = None,
    kind: str = "itt",
    results: list | None = None,
    local_results: bool = False,
) -> ModelCardData:
    base_model = _hub_base_model(manifest)
    eval_results = _eval_results(manifest) + _result_entries(results or [], local_results)
    return ModelCardData(
        library_name="transformers",
        pipeline_tag=_pipeline_tag(manifest, kind),
        base_model=base_model,
        license=license or DEFAULT_LICENSE,
        tags=_tags(manifest, base_model),
        datasets=_hub_datasets(manifest) or None,
        language=_languages(manifest) or None,
        model_name=model_name if eval_results else None,
        eval_results=eval_results or None,
        hf_itt=redact_secrets(
            {
                "experiment": manifest.experiment,
                "stage": manifest.stage,
                "stage_hash": manifest.stage_hash,
                "source": _public_source(manifest),
                "lineage": _public_lineage(manifest),
                "metrics": manifest.metrics,
            }
        ),
    )


def public_reference(ref: str | None, manifest: StageManifest, is_base: bool = False) -> str | None:
    """A Hub reference as it is; a local base model as ``local:<content hash>``, any other folder as
    ``local``: a card holds no machine path."""
    if not ref or _is_hub_id(ref.split("@")[0]):
        return ref
    base = manifest.identity.get("base_model") or ""
    return f"local:{base.removeprefix('local:')[:12]}" if is_base and base.startswith("local:") else "local"


def _public_lineage(manifest: StageManifest) -> list[dict[str, Any]]:
    return [
        {**entry, "ref": public_reference(entry.get("ref"), manifest, entry.get("stage") == "base")}
        for entry in manifest.lineage
    ]


def _public_source(manifest: StageManifest) -> str | None:
    """Where the stage started: the previous lineage entry (its published ref), else the base model."""
    lineage = _public_lineage(manifest)
    if len(lineage) >= 2 and lineage[-2].get("ref"):
        return lineage[-2]["ref"]
    return public_reference(manifest.source, manifest, is_base=len(lineage) <= 2)


def card_body(
    manifest: StageManifest, repo_id: str | None, revision: str, kind: str = "itt", results: list | None = None
) -> str:
    reference = f"{repo_id}@{revision}" if repo_id else PLACEHOLDER_PATH
    what = (
        "It holds the encoder and the fine-tuned head of the target task: evaluate it zero-shot in other languages"
        if kind == "target"
        else "It holds the shared encoder only: fine-tune it on a target task, or evaluate it zero-shot on "
        "retrieval tasks"
    )
    sections = [
        f"# {manifest.experiment} / {manifest.stage}\n\n"
        f"{'Target fine-tuning' if kind == 'target' else 'Intermediate-task training (ITT)'} checkpoint trained "
        f"with hf_itt (stage hash `{manifest.stage_hash}`). {what}.",
        "## Lineage\n\n" + " → ".join(map(_lineage_label, _public_lineage(manifest))),
        "## Tasks\n\n" + _tasks_table(manifest.tasks),
        "## Hyper-parameters\n\n" + _hyperparameters_table(manifest),
        "## Dev metrics\n\n" + _metrics_table(manifest.metrics),
    ]
    if results:
        sections.append("## Zero-shot results\n\n" + _results_table(results))
    sections.append("## Continue from this checkpoint\n\n" + _continue_snippet(manifest, reference, repo_id, revision))
    return "\n\n".join(sections) + "\n"


def _eval_results(manifest: StageManifest) -> list[EvalResult]:
    tasks = {task["name"]: task for task in manifest.tasks}
    results = []
    for task_name, metrics in sorted(manifest.metrics.items()):
        task = tasks.get(task_name, {})
        for metric, value in sorted(metrics.items()):
            if not isinstance(value, (int, float)):
                continue
            results.append(
                EvalResult(
                    task_type=hub_task(task.get("type"), "other"),
                    dataset_type=_dataset_id(task.get("source")) or task_name,
                    dataset_name=task_name,
                    dataset_config=task.get("config"),
                    dataset_split="validation",
                    dataset_revision=task.get("revision"),
                    metric_type=metric,
                    metric_value=value,
                )
            )
    return results


def _result_entries(results: list, local: bool = False) -> list[EvalResult]:
    """One entry per (task, split, language) with the task's primary metric (zero-shot results)."""

    entries = []
    for result in results:
        try:
            spec = get_task(result.task)
            task_type = spec.type
            source = None if local else _dataset_id(spec.sources[0].path if spec.sources else None)
        except TaskError:  # a task registered only in the run that wrote the result
            task_type, source = None, None
        for lang, scores in sorted(result.languages.items()):
            value = scores.get(result.primary_metric)
            if isinstance(value, (int, float)):
                entries.append(
                    EvalResult(
                        task_type=hub_task(task_type, "other"),
                        dataset_type=source or result.task,
                        dataset_name=f"{result.task} ({lang})",
                        dataset_config=lang,
                        dataset_split=result.split,
                        metric_type=result.primary_metric,
                        metric_value=value,
                    )
                )
    return entries


def _pipeline_tag(manifest: StageManifest, kind: str) -> str:
    if kind != "target" or not manifest.tasks:
        return ENCODER_PIPELINE
    return hub_task(manifest.tasks[-1].get("type"), ENCODER_PIPELINE)


def hub_task(type_name: str | None, default: str) -> str:
    """The Hub's task tag of a task type (``TaskType.hub_task``), ``default`` for a type unknown here."""
    if type_name not in type_names():
        return default
    return get_type(type_name).hub_task or default


def _hub_base_model(manifest: StageManifest) -> str | None:
    """The closest ancestor that lives on the Hub (the parent stage's repo if it was published)."""
    for entry in reversed(manifest.lineage[:-1]):
        repo_id = (entry.get("ref") or "").split("@")[0]
        if _is_hub_id(repo_id):
            return repo_id
    return None


def _hub_datasets(manifest: StageManifest) -> list[str]:
    """Hub dataset ids of the training data (a task trained from local files names none)."""
    ids = set()
    for task in manifest.tasks:
        if task.get("data_files"):
            continue
        ids.update(filter(None, (_dataset_id(source) for source in (task.get("source") or "").split(","))))
    return sorted(ids)


def _dataset_id(source: str | None) -> str | None:
    """``nyu-mll/glue`` of a task source written ``nyu-mll/glue`` or ``nyu-mll/glue/mnli`` (path/config)."""
    if not source:
        return None
    parts = source.split("/")
    for candidate in ("/".join(parts[:2]), parts[0]):
        if _is_hub_id(candidate) and (candidate.count("/") == 1 or len(parts) == 1):
            return candidate
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
    ref = entry.get("ref")
    if entry.get("stage") == "base":
        return f"`{ref}`"
    tasks = "+".join(entry.get("tasks") or [])
    where = f" (`{ref}`)" if ref else ""
    return f"**{entry.get('stage')}** [{tasks}]{where}"


def _tasks_table(tasks: list[dict[str, Any]]) -> str:
    if not tasks:
        return "(none recorded)"
    rows = ["| task | type | source | config | revision | language |", "|---|---|---|---|---|---|"]
    for task in tasks:
        source = "local files" if task.get("data_files") else task.get("source") or ""
        lang = task.get("lang")
        trained_on = (task.get("options") or {}).get("trained_on")  # a target's head learns from another task
        name = (
            f"{task['name']} (trained on {trained_on})" if trained_on and trained_on != task["name"] else task["name"]
        )
        rows.append(
            f"| {name} | {task.get('type') or ''} | {source} | {task.get('config') or ''} | "
            f"{task.get('revision') or ''} | {lang if isinstance(lang, str) else ', '.join(lang or [])} |"
        )
    return "\n".join(rows)


def _hyperparameters_table(manifest: StageManifest) -> str:
    args = manifest.identity.get("training_args", {})
    rows = ["| name | value |", "|---|---|"]
    rows += [f"| {key} | {args[key]} |" for key in SHOWN_HYPERPARAMETERS if key in args]
    rows += [
        f"| {key} | {manifest.identity[key]} |"
        for key in ("seed", "world_size")
        if manifest.identity.get(key) is not None
    ]
    if manifest.identity.get("sampler"):
        rows.append(f"| task sampling | {manifest.identity['sampler']} |")
    if manifest.identity.get("early_stopping_patience"):
        rows.append(f"| early_stopping_patience | {manifest.identity['early_stopping_patience']} |")
    return "\n".join(rows + _budget_rows(manifest.budget)) if len(rows) > 2 or manifest.budget else "(not recorded)"


def _budget_rows(budget: dict[str, Any]) -> list[str]:
    """What the stage ran (``hf_itt.training.budget``): updates, examples seen, the exported step."""
    if not budget:
        return []
    ran = f"{budget['updates']:,} of {budget['planned_updates']:,} planned" + (
        " (stopped early)" if budget.get("stopped_early") else ""
    )
    return [
        f"| updates run | {ran} |",
        f"| examples seen | {budget['examples_seen']:,} (effective batch {budget['effective_batch_size']}) |",
        f"| exported weights | step {budget['selected_step']:,}"
        + (
            f" (best {budget['metric_for_best_model']} = {budget['best_metric']:.4g})"
            if budget.get("best_metric") is not None
            else ""
        )
        + " |",
    ]


def _metrics_table(metrics: dict[str, dict[str, float]]) -> str:
    if not metrics:
        return "(no dev evaluation in this stage)"
    rows = ["| task | metric | value |", "|---|---|---|"]
    for task, values in sorted(metrics.items()):
        rows += [
            f"| {task} | {metric} | {value:.6g} |"
            for metric, value in sorted(values.items())
            if isinstance(value, (int, float))
        ]
    return "\n".join(rows)


def _results_table(results: list) -> str:
    rows = ["| task | split | metric | language | value |", "|---|---|---|---|---|"]
    for result in results:
        for lang, scores in sorted(result.languages.items()):
            value = scores.get(result.primary_metric)
            if isinstance(value, (int, float)):
                rows.append(f"| {result.task} | {result.split} | {result.primary_metric} | {lang} | {value:.4g} |")
    return "\n".join(rows)


def _continue_snippet(manifest: StageManifest, reference: str, repo_id: str | None, revision: str) -> str:
    python = (
        f'AutoModel.from_pretrained("{repo_id}", revision="{revision}")'
        if repo_id
        else f'AutoModel.from_pretrained("{reference}")'
    )
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
