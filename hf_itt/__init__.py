"""hf_itt: intermediate-task training for multilingual encoders on the Hugging Face Trainer.

Public names are imported lazily so ``import hf_itt`` stays cheap (no torch import until needed).
"""

from importlib import import_module

__version__ = "0.1.0"

_EXPORTS = {
    "MultiTaskModel": "hf_itt.training.modeling",
    "MultiTaskConfig": "hf_itt.training.modeling",
    "MultiTaskTrainer": "hf_itt.training.trainer",
    "MultiTaskTrainingArguments": "hf_itt.training.arguments",
    "TaskSampler": "hf_itt.training.sampling",
    "StageRunner": "hf_itt.pipeline.runner",
    "ExperimentConfig": "hf_itt.config.experiment",
    "load_experiment": "hf_itt.config.loading",
    "get_task": "hf_itt.tasks.registry",
    "list_tasks": "hf_itt.tasks.registry",
    "HfIttError": "hf_itt.errors",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'hf_itt' has no attribute {name!r}")
