"""Opt-in round trip against the real Hugging Face Hub: publish a tiny stage, download it, verify it.

Runs only with HF_TOKEN set (a token with write access) and HF_HUB_OFFLINE=0; it creates a private
repo ``<your namespace>/hf-itt-live-test-<random>`` and deletes it afterwards.
"""

from __future__ import annotations

import os
import uuid

import numpy as np
import pytest
from safetensors.numpy import save_file

pytestmark = pytest.mark.hub


@pytest.fixture
def live_api():
    if not os.environ.get("HF_TOKEN"):
        pytest.skip("HF_TOKEN is not set: the live Hub test needs a token with write access")
    from huggingface_hub import HfApi, constants

    if constants.is_offline_mode():
        pytest.skip("HF_HUB_OFFLINE=1 (tests/conftest.py sets it by default): run with HF_HUB_OFFLINE=0")
    return HfApi(token=os.environ["HF_TOKEN"])


def test_publish_and_fetch_round_trip(tmp_path, live_api):
    from hf_itt.hub.manifest import (
        StageManifest,
        finish_manifest,
        read_manifest,
        verify_checkpoint,
    )
    from hf_itt.hub.publishers import HubPublisher, publish_stage, resolve_reference

    stage_dir = tmp_path / "stage"
    stage_dir.mkdir()
    save_file({"w": np.arange(64, dtype=np.float32)}, str(stage_dir / "model.safetensors"))
    (stage_dir / "config.json").write_text("{}")
    finish_manifest(stage_dir, StageManifest(experiment="live", stage="s1", stage_hash="feedbeef"))

    repo_id = f"{live_api.whoami()['name']}/hf-itt-live-test-{uuid.uuid4().hex[:8]}"
    try:
        ref = publish_stage(stage_dir, HubPublisher(token=os.environ["HF_TOKEN"], private=True), repo_id, "s1")
        assert read_manifest(stage_dir).status == "published" and ref.commit
        fetched = resolve_reference(ref.reference, token=os.environ["HF_TOKEN"], cache_dir=tmp_path / "cache")
        assert verify_checkpoint(fetched).stage_hash == "feedbeef"
    finally:
        live_api.delete_repo(repo_id, missing_ok=True)
