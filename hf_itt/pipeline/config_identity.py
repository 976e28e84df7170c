"""Which experiment settings enter a stage's identity, and why the others cannot change its weights.

Every field of the experiment schema (``hf_itt/config/experiment.py``, by YAML path as in
docs/reference.md) is in exactly one of the two tables below; ``tests/test_identity.py`` walks the
schema, fails on a field in neither, changes each hashed field and checks that the hash moves, and
changes each other field and checks that it does not. A new schema field therefore needs a decision.
"""

from __future__ import annotations

import dataclasses
import hashlib
from functools import lru_cache
from typing import Any

from hf_itt.hub.stage_hash import canonical_json
from hf_itt.tasks.registry import BUILTIN_DIR, TaskRegistry

# path -> how it enters the identity (pipeline/jobs.py builds the payload)
IN_THE_HASH = {
    "seed": "seed (and the Trainer's data_seed)",
    "model.name_or_path": "base_model: a Hub id as written, a folder by the content of its model files",
    "model.revision": "base_revision",
    "model.tokenizer": "tokenizer: a Hub id as written, a folder by the content of its tokenizer files",
    "model.freeze": "frozen: the sorted parameter-name prefixes (only when set)",
    "defaults.training": "training_args (merged under each stage's and target's own)",
    "defaults.group_by_length": "training_args: a preset's train_sampling_strategy (batch composition)",
    "stages[].training": "training_args",
    "stages[].preset": "training_args and early_stopping_patience, by the preset's values",
    "stages[].from": "the stage hash itself: a Hub reference as written, a folder by its content",
    "stages[].max_length": "tasks[].options.max_length",
    "stages[].tasks[].max_length": "tasks[].options.max_length",
    "stages[].early_stopping_patience": "early_stopping_patience (when > 0: it decides when training ends)",
    "stages[].tasks[].name": "tasks[].name, type, source and spec (a spec that is not built in, by content)",
    "stages[].tasks[].lang": "tasks[].lang",
    "stages[].tasks[].data_files": "tasks[].data_files: the content of the training files (dev files too "
    "when load_best_model_at_end picks the weights)",
    "stages[].tasks[].max_train_examples": "tasks[].options.max_train",
    "stages[].tasks[].max_eval_examples": "tasks[].options.max_dev, only when load_best_model_at_end",
    "stages[].tasks[].weight": "tasks[].options.weight",
    "stages[].sampling.strategy": "sampler",
    "stages[].sampling.temperature": "sampler",
    "stages[].sampling.cap": "sampler",
    "stages[].sampling.anneal_alpha_end": "sampler",
    "targets.tasks": "one target job per task, its head's spec and its English training task",
    "targets.data_files": "the content of the English training task's files (key: that task)",
    "targets.training": "training_args of every target",
    "targets.per_task_training": "training_args of that target",
    "targets.preset": "training_args and early_stopping_patience of every target",
    "targets.max_length": "tasks[].options.max_length of that target",
    "targets.max_train_examples": "tasks[].options.max_train of every target",
    "targets.max_eval_examples": "tasks[].options.max_dev of every target, only when load_best_model_at_end",
    "targets.early_stopping_patience": "early_stopping_patience of every target (when > 0)",
    # The health checks only change the weights through a 'restart' (the stage reruns with seed+1,
    # decided by the thresholds); 'warn' changes nothing and 'stop' exports nothing. So `health` is
    # in the identity exactly when an action is 'restart' (health_identity).
    **{
        f"health.{name}": "health, when on_collapse or on_divergence is 'restart'"
        for name in (
            "enabled",
            "on_collapse",
            "collapse_threshold",
            "collapse_margin",
            "collapse_patience",
            "collapse_max_examples",
            "collapse_min_examples",
            "max_restarts",
            "on_divergence",
            "divergence_factor",
            "divergence_min_increase",
            "window",
            "min_logs",
            "weight_check_steps",
        )
    },
}

# path -> why it cannot change a stage's weights
OUTSIDE_THE_HASH = {
    "experiment": "a name: it names folders and repos; equal settings under two names are the same stage",
    "output_dir": "where the run folder is",
    "benchmarks": "evaluation only: which languages of each target are scored",
    "report_dir": "where the report goes",
    "task_dirs": "where task specs are found; a spec enters by content, with the task that uses it",
    "prepare": "a hook that builds files; what it builds (model, data) enters by content",
    "stages[].name": "a name (folder and repo name part)",
    "defaults.deepspeed": "how the same optimisation is executed: every value it shares with the "
    "TrainingArguments must be 'auto' (checked at load), and ZeRO only shards the state",
    "stages[].deepspeed": "as defaults.deepspeed",
    "targets.deepspeed": "as defaults.deepspeed",
    "targets.languages": "evaluation only: which languages are scored",
    "evaluation.splits": "evaluation only",
    "evaluation.batch_size": "evaluation only",
    "evaluation.retrieval_layer": "evaluation only",
    "evaluation.retrieval_max_length": "evaluation only",
    "evaluation.max_eval_examples": "evaluation only",
    "evaluation.save_predictions": "evaluation only: whether prediction files are written",
    "evaluation.bucc_duplicates": "evaluation only (BUCC mining)",
    "evaluation.bucc_allow_gold_only": "evaluation only (BUCC data check)",
    "evaluation.bucc_test_oracle": "evaluation only (BUCC threshold source)",
    "hub.publisher": "where finished stages are published",
    "hub.local_root": "where the local publisher and the hash index live",
    "hub.namespace": "a repo name part",
    "hub.repo_template": "repo names",
    "hub.private": "repo visibility",
    "hub.license": "the licence the model cards state",
    "hub.reuse": "whether stages of other runs may be reused (never whether they are the same)",
}

RESTART = "restart"


def health_identity(health) -> dict | None:
    """The health settings when they can decide which weights are exported, else None (not hashed)."""
    if not health.enabled or RESTART not in (health.on_collapse, health.on_divergence):
        return None
    return dataclasses.asdict(health)


def spec_digest(spec) -> str | None:
    """None for a built-in spec as shipped (its name and ``version`` identify it); otherwise a digest of
    the spec's content, so that editing a user task file (labels, columns, templates) retrains."""

    builtin = builtin_specs().get(spec.name)
    if builtin is not None and dataclasses.replace(spec, lang=builtin.lang) == builtin:
        return None  # `lang:` on a task entry is hashed on its own
    return hashlib.sha256(canonical_json(spec.to_dict()).encode("utf-8")).hexdigest()[:16]


# The built-in spec files, in the order hf_itt.tasks.registry.default_registry registers them.
BUILTIN_SPEC_FILES = ("intermediate.yaml", "xtreme.yaml", "xtreme_r.yaml")


@lru_cache(maxsize=1)
def builtin_specs() -> dict[str, Any]:
    """The specs hf_itt ships, read afresh (the process registry may hold user overrides of them)."""

    registry = TaskRegistry()
    for name in BUILTIN_SPEC_FILES:
        registry.register_file(BUILTIN_DIR / name)
    return {name: registry.get(name) for name in registry.names()}


__all__ = ["IN_THE_HASH", "OUTSIDE_THE_HASH", "health_identity", "spec_digest"]
