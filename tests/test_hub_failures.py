"""Hub trouble through the real runner (`hf_itt.cli.main`) with `hub.publisher: hub` and a fake HfApi.

Transient failures (network, 5xx, 429) are retried with backoff (the wait is faked), auth errors are
not; a stage that cannot be published stays on disk "finished, not published" and `hf-itt publish`
publishes it later; downloads that fail fall back to the cache or say how to get the files; tokens
never reach logs, manifests, model cards or checkpoints.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx2
import pytest
import yaml
from huggingface_hub.errors import HfHubHTTPError

import hf_itt.hub.remote as hub_remote
from hf_itt.cli import main
from hf_itt.hub.manifest import read_manifest, verify_checkpoint

DATA = Path(__file__).parent / "fixtures" / "data"
TOKEN = "hf_" + "Zq8mW2xK4vB7nR1tY5uP9sD3fG6hJ0kL2a"  # fake, 34 characters after hf_
REPO_ID = "me/hubx-nli"


def http_error(status: int, text: str = "", headers: dict | None = None) -> HfHubHTTPError:
    request = httpx2.Request("POST", "https://huggingface.co/api/repos/create")
    return HfHubHTTPError(
        f"{status} Server says: {text}", response=httpx2.Response(status, headers=headers, request=request)
    )


def connect_error(text: str = "network is unreachable") -> httpx2.ConnectError:
    return httpx2.ConnectError(text, request=httpx2.Request("GET", "https://huggingface.co"))


class FakeHub:
    """Stands in for huggingface_hub.HfApi: scripted failures per method, uploads copied to ``remote``."""

    def __init__(self, remote: Path):
        self.remote = remote
        self.failures: dict[str, list[BaseException]] = {}
        self.calls: list[str] = []
        self.tokens: list[str | None] = []

    def api(self, token=None, **kwargs) -> "FakeHub":  # called as HfApi(token=...)
        self.tokens.append(token)
        return self

    def _call(self, method: str) -> None:
        self.calls.append(method)
        pending = self.failures.get(method) or []
        if pending:
            error = pending[0] if getattr(pending[0], "forever", False) else pending.pop(0)
            raise error

    def create_repo(self, repo_id, **kwargs):
        self._call("create_repo")

    def create_branch(self, repo_id, **kwargs):
        self._call("create_branch")

    def upload_folder(self, repo_id, folder_path, revision="main", **kwargs):
        self._call("upload_folder")
        shutil.copytree(folder_path, self.remote / repo_id / revision, dirs_exist_ok=True)
        return type(
            "CommitInfo", (), {"commit_url": f"https://huggingface.co/{repo_id}/commit/c0ffee", "oid": "c0ffee"}
        )


def forever(err: BaseException) -> BaseException:
    err.forever = True
    return err


@pytest.fixture
def hub(monkeypatch, tmp_path):
    fake = FakeHub(tmp_path / "remote")
    sleeps: list[float] = []
    monkeypatch.setattr(hub_remote, "HfApi", fake.api)
    monkeypatch.setattr(hub_remote, "wait", sleeps.append)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    # no network here: every Hub look-up (reuse checks, `from:` downloads) fails to connect
    monkeypatch.setattr("huggingface_hub.HfApi.repo_info", lambda *a, **k: (_ for _ in ()).throw(connect_error()))
    fake.sleeps = sleeps
    return fake


def write_experiment(folder: Path, stages: list[dict] | None = None, **training) -> Path:
    nli = {"name": "nli", "tasks": [{"name": "mnli", "data_files": {"train": str(DATA / "mnli" / "train.jsonl")}}]}
    config = {
        "experiment": "hubx",
        "seed": 5,
        "hub": {"publisher": "hub", "namespace": "me"},
        "defaults": {
            "training": {
                "per_device_train_batch_size": 2,
                "max_steps": 1,
                "save_steps": 1,
                "use_cpu": True,
                "disable_tqdm": True,
                **training,
            }
        },
        "stages": stages or [nli],
    }
    path = folder / "experiment.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def run(config: Path, checkpoint: Path, root: Path, capsys, *extra: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(
        [
            "run",
            "--config",
            str(config),
            "--no-report",
            f"model.name_or_path={checkpoint}",
            f"output_dir={root}/run",
            f"hub.local_root={root}/hub",
            *extra,
        ]
    )
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def stage_dir(root: Path) -> Path:
    return root / "run" / "stages" / "nli" / "checkpoint"


def test_transient_failures_are_retried_with_backoff(hub, tiny_checkpoint, tmp_path, capsys):
    hub.failures = {
        "create_repo": [
            ConnectionError("reset by peer"),
            http_error(503),
            http_error(429, headers={"Retry-After": "30"}),
        ],
        "upload_folder": [connect_error()],
    }
    code, output = run(write_experiment(tmp_path), tiny_checkpoint, tmp_path, capsys)
    assert code == 0, output[-2000:]
    assert hub.sleeps == [2.0, 4.0, 30.0, 2.0]  # backoff 2, 4, then the server's Retry-After; per call
    assert hub.calls == ["create_repo"] * 4 + ["upload_folder"] * 2
    manifest = verify_checkpoint(stage_dir(tmp_path))
    assert manifest.status == "published" and manifest.publish.repo_id == REPO_ID
    assert manifest.publish.commit == "c0ffee" and not manifest.publish.errors
    assert (hub.remote / REPO_ID / "main" / "model.safetensors").is_file()


def test_auth_error_is_not_retried_and_the_stage_is_published_later(hub, tiny_checkpoint, tmp_path, capsys, caplog):
    hub.failures = {"create_repo": [forever(http_error(401, "invalid credentials"))]}
    code, output = run(write_experiment(tmp_path), tiny_checkpoint, tmp_path, capsys)
    assert code == 0, output[-2000:]  # training succeeded; only publishing waits
    assert hub.calls == ["create_repo"] and hub.sleeps == []
    warning = next(r.getMessage() for r in caplog.records if "could not publish" in r.getMessage())
    assert "401" in warning and "hf auth login" in warning and "hf-itt publish" in warning
    assert "1 stage(s) finished but NOT published" in output  # the summary at the end of the run
    assert f"hf-itt publish {tmp_path / 'run'} --publisher hub" in output
    manifest = verify_checkpoint(stage_dir(tmp_path))  # the local stage is intact and usable
    assert manifest.status == "finished" and manifest.publish.repo_id == REPO_ID
    assert "401" in manifest.publish.errors[0]

    hub.failures = {"create_repo": [forever(http_error(503))]}  # later: the Hub is down
    code, output = main_output(["publish", str(tmp_path / "run")], capsys)
    assert code == 2 and "after 6 attempts" in output and "Traceback" not in output
    assert hub.sleeps == [2.0, 4.0, 8.0, 16.0, 32.0]
    assert read_manifest(stage_dir(tmp_path)).status == "finished"

    hub.failures = {}
    code, output = main_output(["publish", str(tmp_path / "run")], capsys)
    assert code == 0 and f"-> {REPO_ID}@main" in output
    manifest = verify_checkpoint(stage_dir(tmp_path))
    assert manifest.status == "published" and len(manifest.publish.errors) == 2
    assert (hub.remote / REPO_ID / "main" / "model.safetensors").is_file()
    assert main_output(["publish", str(tmp_path / "run")], capsys)[1].startswith("nothing to publish")


def main_output(argv: list[str], capsys) -> tuple[int, str]:
    capsys.readouterr()
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def cache_snapshot(cache: Path, repo_id: str, source: Path) -> Path:
    """Put ``source`` into the Hugging Face cache as ``repo_id@main`` (what a past download leaves)."""
    storage = cache / f"models--{repo_id.replace('/', '--')}"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (storage / "refs").mkdir(parents=True)
    (storage / "refs" / "main").write_text(commit)
    shutil.copytree(source, storage / "snapshots" / commit)
    return storage / "snapshots" / commit


@pytest.mark.parametrize("failure", [connect_error(), http_error(503)], ids=["network-down", "hub-5xx"])
def test_failed_download_falls_back_to_the_cache(hub, tiny_checkpoint, tmp_path, capsys, monkeypatch, failure):
    monkeypatch.setattr("huggingface_hub.HfApi.repo_info", lambda *a, **k: (_ for _ in ()).throw(failure))
    cached = cache_snapshot(tmp_path / "hf-cache", "team/encoder", tiny_checkpoint)
    stages = [
        {"name": "base", "from": "team/encoder@main"},
        {"name": "nli", "tasks": [{"name": "mnli", "data_files": {"train": str(DATA / "mnli" / "train.jsonl")}}]},
    ]
    code, output = run(write_experiment(tmp_path, stages), tiny_checkpoint, tmp_path, capsys)
    assert code == 0, output[-2000:]
    assert "[from] base: downloaded" in output and str(cached) in output
    assert read_manifest(stage_dir(tmp_path)).source == str(cached)


@pytest.mark.parametrize("failure", [connect_error(), http_error(503)], ids=["network-down", "hub-5xx"])
def test_failed_download_without_cache_says_how_to_get_it(hub, tiny_checkpoint, tmp_path, capsys, monkeypatch, failure):
    monkeypatch.setattr("huggingface_hub.HfApi.repo_info", lambda *a, **k: (_ for _ in ()).throw(failure))
    stages = [
        {"name": "base", "from": "team/never-downloaded@main"},
        {"name": "nli", "tasks": [{"name": "mnli", "data_files": {"train": str(DATA / "mnli" / "train.jsonl")}}]},
    ]
    code, output = run(write_experiment(tmp_path, stages), tiny_checkpoint, tmp_path, capsys)
    assert code == 2 and "Traceback" not in output
    error = next(line for line in output.splitlines() if line.startswith("hf_itt error:"))
    assert "team/never-downloaded@main" in error and "not in the Hugging Face cache" in error
    assert "hf download team/never-downloaded --revision main" in error


def test_tokens_never_leak(hub, tiny_checkpoint, tmp_path, capsys, caplog):
    # the server echoes the token in its errors; the run must still never write or print it
    hub.failures = {
        "create_repo": [http_error(500, f"token {TOKEN} rejected"), ConnectionError(f"auth={TOKEN}")],
        "upload_folder": [forever(http_error(403, f"Authorization: Bearer {TOKEN}"))],
    }
    code, output = run(write_experiment(tmp_path), tiny_checkpoint, tmp_path, capsys)
    assert code == 0, output[-2000:]
    assert hub.tokens and set(hub.tokens) == {None}  # HfApi reads HF_TOKEN itself: hf_itt never handles it
    manifest = read_manifest(stage_dir(tmp_path))
    assert manifest.status == "finished" and "403" in manifest.publish.errors[0]
    logs = "\n".join(record.getMessage() for record in caplog.records)
    assert "403" in logs and "<redacted>" in logs
    leaks = [str(path) for path in tmp_path.rglob("*") if path.is_file() and TOKEN.encode() in path.read_bytes()]
    assert leaks == []
    assert TOKEN not in output and TOKEN not in logs
    code, output = main_output(["publish", str(tmp_path / "run")], capsys)
    assert code == 2 and "403" in output and TOKEN not in output


def test_a_token_written_into_the_config_is_refused_without_echoing_it(hub, tiny_checkpoint, tmp_path, capsys):
    code, output = run(write_experiment(tmp_path, hub_token=TOKEN), tiny_checkpoint, tmp_path, capsys)
    assert code == 2 and TOKEN not in output
    assert "defaults.training.hub_token" in output and "HF_TOKEN" in output
    assert not (tmp_path / "run" / "stages").exists()  # refused before any training
