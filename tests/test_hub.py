"""Publishing and fetching stages without network: LocalPublisher, HubPublisher against a spy HfApi."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import httpx2
import numpy as np
import pytest
from huggingface_hub.errors import (
    HfHubHTTPError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from safetensors.numpy import save_file

import hf_itt.hub.remote as hub_remote
from hf_itt.errors import CheckpointError, ConfigError, HubError
from hf_itt.hub.manifest import (
    MANIFEST_NAME,
    StageManifest,
    finish_manifest,
    next_lineage,
    read_manifest,
    write_manifest,
)
from hf_itt.hub.publishers import (
    AsyncPublisher,
    HubPublisher,
    LocalPublisher,
    PublishedRef,
    Publisher,
    find_reusable_stage,
    make_publisher,
    publish_pending,
    publish_stage,
    repo_id_for,
    resolve_reference,
)

TOKEN = "hf_" + "QwErTyUiOpAsDfGhJkLzXcVbNm12345678"


def make_stage(
    stage_dir: Path,
    stage: str = "s1",
    stage_hash: str = "h1",
    status: str = "finished",
    parent: StageManifest | None = None,
    repo_id: str | None = None,
    identity: dict | None = None,
) -> StageManifest:
    stage_dir.mkdir(parents=True)
    save_file({"w": np.ones(256, dtype=np.float32)}, str(stage_dir / "model.safetensors"))
    (stage_dir / "config.json").write_text("{}")
    (stage_dir / ".scratch.tmp").write_text("never published")
    manifest = StageManifest(
        experiment="exp",
        stage=stage,
        stage_hash=stage_hash,
        config={"token": TOKEN},
        identity=identity or {},
        lineage=next_lineage(
            parent,
            base_model="xlm-roberta-large",
            base_revision=None,
            stage=stage,
            stage_hash=stage_hash,
            tasks=["mnli"],
        ),
    )
    manifest.publish.repo_id = repo_id
    if status == "running":
        write_manifest(stage_dir, manifest)
        return manifest
    return finish_manifest(stage_dir, manifest)


def http_error(status: int, headers: dict | None = None, cls=HfHubHTTPError) -> HfHubHTTPError:
    request = httpx2.Request("POST", "https://huggingface.co/api/repos/create")
    return cls(f"{status} Client Error", response=httpx2.Response(status, headers=headers, request=request))


class CommitInfo:
    commit_url = "https://huggingface.co/me/exp-s1/commit/abc"
    oid = "abc"


class SpyApi:
    """Records HfApi calls; ``failures[method]`` lists exceptions to raise on successive calls."""

    def __init__(self, **failures):
        self.calls: list[tuple[str, dict]] = []
        self.failures = {name: list(errors) for name, errors in failures.items()}

    def _record(self, name, kwargs):
        self.calls.append((name, kwargs))
        if self.failures.get(name):
            raise self.failures[name].pop(0)

    def create_repo(self, **kwargs):
        self._record("create_repo", kwargs)

    def create_branch(self, **kwargs):
        self._record("create_branch", kwargs)

    def upload_folder(self, **kwargs):
        kwargs["files"] = sorted(p.name for p in Path(kwargs["folder_path"]).iterdir())
        self._record("upload_folder", kwargs)
        return CommitInfo()

    def names(self):
        return [name for name, _ in self.calls]


class FakeClock:
    def __init__(self):
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


def hub_publisher(api: SpyApi, clock: FakeClock | None = None, **kwargs) -> HubPublisher:
    return HubPublisher(token=TOKEN, api=api, sleep=(clock or FakeClock()).sleep, backoff=1.0, **kwargs)


# ---------------------------------------------------------------- naming


def test_default_repo_naming_and_hash_field():
    fields = dict(namespace="me", experiment="paper-grid", stage="squad", stage_hash="0a1b")
    assert repo_id_for("{namespace}/{experiment}-{stage}", **fields) == "me/paper-grid-squad"
    assert repo_id_for("{namespace}/{stage}-{hash}", **fields) == "me/squad-0a1b"


@pytest.mark.parametrize(
    "template,stage,match",
    [
        ("{namespace}/{experiment}-{stage}", "squad+mnli", "rejects"),
        ("{namespace}/{experiment}--{stage}", "squad", "rejects"),
        ("{namespace}/{exp}-{stage}", "squad", "cannot fill"),
        ("{experiment}-{stage}", "squad", "without a namespace"),
    ],
)
def test_invalid_repo_ids_are_config_errors_naming_the_template(template, stage, match):
    with pytest.raises(ConfigError, match=match) as info:
        repo_id_for(template, namespace="me", experiment="grid", stage=stage, stage_hash="h")
    assert repr(template) in str(info.value)


def test_make_publisher():
    assert isinstance(make_publisher("local", local_root="x"), LocalPublisher)
    assert make_publisher("none") is None
    with pytest.raises(ConfigError, match="local, hub, none"):
        make_publisher("s3")


# ---------------------------------------------------------------- local publisher


def test_local_publisher_layout_and_atomic_republish(tmp_path):
    make_stage(tmp_path / "run" / "s1")
    publisher = LocalPublisher(tmp_path / "hub")
    assert isinstance(publisher, Publisher)
    ref = publisher.publish(tmp_path / "run" / "s1", "me/exp-s1", "v1", "msg")
    dest = tmp_path / "hub" / "me" / "exp-s1" / "v1"
    assert (
        ref == PublishedRef("me/exp-s1", "v1", dest.resolve().as_uri()) and publisher.fetch("me/exp-s1", "v1") == dest
    )
    assert sorted(p.name for p in dest.iterdir()) == ["config.json", "model.safetensors", MANIFEST_NAME]
    (tmp_path / "run" / "s1" / "config.json").write_text('{"new": 1}')
    publisher.publish(tmp_path / "run" / "s1", "me/exp-s1", "v1", "again")
    assert (dest / "config.json").read_text() == '{"new": 1}'
    assert [p.name for p in (tmp_path / "hub" / "me" / "exp-s1").iterdir()] == ["v1"]  # no temp folders left


def test_local_fetch_of_a_missing_stage_says_what_to_do(tmp_path):
    with pytest.raises(HubError, match="publish that stage first"):
        LocalPublisher(tmp_path).fetch("me/nothing", "main")
    with pytest.raises(HubError, match="namespace/name"):
        LocalPublisher(tmp_path).fetch("nothing", "main")


def test_publish_stage_records_the_result(tmp_path):
    make_stage(tmp_path / "s1")
    ref = publish_stage(tmp_path / "s1", LocalPublisher(tmp_path / "hub"), "me/exp-s1")
    manifest = read_manifest(tmp_path / "s1")
    assert manifest.status == "published" and manifest.publish.url == ref.url and manifest.publish.published_at
    assert manifest.lineage[-1]["ref"] == "me/exp-s1@main"
    assert (tmp_path / "s1" / "model.safetensors").is_file()


def test_corrupt_or_unfinished_stages_are_not_published(tmp_path):
    make_stage(tmp_path / "s1")
    (tmp_path / "s1" / "model.safetensors").write_bytes(b"partial")
    make_stage(tmp_path / "s2", status="running")
    for stage in ("s1", "s2"):
        with pytest.raises(CheckpointError):
            publish_stage(tmp_path / stage, LocalPublisher(tmp_path / "hub"), "me/exp-s1")
    assert not (tmp_path / "hub").exists()


# ---------------------------------------------------------------- Hub publisher (spy HfApi)


def test_hub_publisher_makes_the_expected_calls(tmp_path):
    make_stage(tmp_path / "s1")
    api = SpyApi()
    ref = publish_stage(tmp_path / "s1", hub_publisher(api), "me/exp-s1", "main", "stage s1")
    assert api.names() == ["create_repo", "upload_folder"]
    create, upload = api.calls[0][1], api.calls[1][1]
    assert create == {"repo_id": "me/exp-s1", "private": True, "repo_type": "model", "exist_ok": True}
    assert upload["repo_id"] == "me/exp-s1" and upload["revision"] == "main"
    assert upload["commit_message"] == "stage s1" and upload["folder_path"] == str(tmp_path / "s1")
    assert {"model.safetensors", "config.json", MANIFEST_NAME} <= set(upload["files"])
    assert ".*" in upload["ignore_patterns"]  # hidden/partial files stay local
    assert ref == PublishedRef("me/exp-s1", "main", CommitInfo.commit_url, "abc")


def test_hub_publisher_creates_the_branch_for_other_revisions(tmp_path):
    make_stage(tmp_path / "s1")
    api = SpyApi()
    publish_stage(tmp_path / "s1", hub_publisher(api, private=False), "me/exp", "s1")
    assert api.names() == ["create_repo", "create_branch", "upload_folder"]
    assert api.calls[0][1]["private"] is False
    assert api.calls[1][1] == {"repo_id": "me/exp", "branch": "s1", "repo_type": "model", "exist_ok": True}
    assert api.calls[2][1]["revision"] == "s1"
    assert "hf_itt: exp/s1" in api.calls[2][1]["commit_message"]


def test_transient_errors_are_retried_with_exponential_backoff(tmp_path):
    make_stage(tmp_path / "s1")
    api = SpyApi(
        create_repo=[http_error(503), ConnectionError("reset")],
        upload_folder=[http_error(429, {"Retry-After": "30"}), httpx2.ConnectTimeout("slow")],
    )
    clock = FakeClock()
    publish_stage(tmp_path / "s1", hub_publisher(api, clock), "me/exp-s1")
    assert api.names() == ["create_repo"] * 3 + ["upload_folder"] * 3
    assert clock.sleeps == [1.0, 2.0, 30.0, 2.0]  # 2**attempt per call; Retry-After raises the wait
    assert read_manifest(tmp_path / "s1").status == "published"


def test_retries_give_up_and_leave_the_stage_finished(tmp_path, caplog):
    make_stage(tmp_path / "s1")
    api = SpyApi(upload_folder=[http_error(500)] * 10)
    clock = FakeClock()
    with pytest.raises(HubError, match="after 4 attempts.*stays on disk"):
        publish_stage(tmp_path / "s1", hub_publisher(api, clock, max_retries=3), "me/exp-s1")
    assert clock.sleeps == [1.0, 2.0, 4.0]
    manifest = read_manifest(tmp_path / "s1")
    assert manifest.status == "finished" and manifest.publish.repo_id == "me/exp-s1"
    assert "500" in manifest.publish.errors[-1]
    assert (tmp_path / "s1" / "model.safetensors").is_file()


@pytest.mark.parametrize(
    "error,match",
    [
        (http_error(401), "hf auth login.*HF_TOKEN"),
        (http_error(403), "403.*namespace 'me'.*hub.repo_template"),
        (http_error(404, cls=RepositoryNotFoundError), "404.*hub.namespace"),
        (OfflineModeIsEnabled("offline"), "HF_HUB_OFFLINE"),
    ],
)
def test_permanent_errors_are_not_retried(tmp_path, error, match):
    make_stage(tmp_path / "s1")
    api = SpyApi(create_repo=[error])
    clock = FakeClock()
    with pytest.raises(HubError, match=match):
        publish_stage(tmp_path / "s1", hub_publisher(api, clock), "me/exp-s1")
    assert api.names() == ["create_repo"] and clock.sleeps == []
    assert read_manifest(tmp_path / "s1").status == "finished"
    assert (tmp_path / "s1" / "model.safetensors").is_file()


def test_token_never_reaches_logs_manifest_or_errors(tmp_path, caplog):
    make_stage(tmp_path / "s1")
    leaky_502, leaky_400 = http_error(502), http_error(400)
    leaky_502.args = (f"502 Bad Gateway: proxy echoed Authorization: Bearer {TOKEN}",)
    leaky_400.args = (f"400 Bad Request: header Authorization: Bearer {TOKEN}",)
    api = SpyApi(upload_folder=[leaky_502, http_error(401), leaky_400])
    publisher = hub_publisher(api)
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(HubError) as info:
            publish_stage(tmp_path / "s1", publisher, "me/exp-s1")
        outcome = AsyncPublisher(publisher).submit(tmp_path / "s1", "me/exp-s1").result()
    assert "retry 1/5" in caplog.text and "could not publish" in caplog.text and not outcome.ok
    assert TOKEN not in str(outcome.error)
    assert TOKEN not in caplog.text and TOKEN not in str(info.value) and TOKEN not in repr(publisher)
    assert TOKEN not in (tmp_path / "s1" / MANIFEST_NAME).read_text()


# ---------------------------------------------------------------- background publishing


class BlockingPublisher(LocalPublisher):
    def __init__(self, root, fail_for=()):
        super().__init__(root)
        self.release, self.fail_for, self.threads = threading.Event(), set(fail_for), []

    def publish(self, stage_dir, repo_id, revision="main", commit_message=""):
        self.threads.append(threading.current_thread().name)
        assert self.release.wait(10)
        if repo_id in self.fail_for:
            raise HubError(f"simulated failure for {repo_id}")
        return super().publish(stage_dir, repo_id, revision, commit_message)


def test_async_publisher_runs_in_background_and_reports_each_outcome(tmp_path):
    make_stage(tmp_path / "s1")
    make_stage(tmp_path / "s2", stage="s2", stage_hash="h2")
    publisher = BlockingPublisher(tmp_path / "hub", fail_for={"me/exp-s2"})
    with AsyncPublisher(publisher) as background:
        first = background.submit(tmp_path / "s1", "me/exp-s1")
        background.submit(tmp_path / "s2", "me/exp-s2")
        assert not first.done()  # the caller goes on while the upload waits
        publisher.release.set()
        outcomes = background.wait()
        with pytest.raises(HubError, match="1 stage"):
            background.wait(raise_errors=True)
    assert [outcome.ok for outcome in outcomes] == [True, False]
    assert all(name.startswith("hf_itt-publish") for name in publisher.threads)
    assert read_manifest(tmp_path / "s1").status == "published"
    failed = read_manifest(tmp_path / "s2")
    assert failed.status == "finished" and "simulated failure" in failed.publish.errors[0]


def test_publish_pending_publishes_only_finished_stages_parents_first(tmp_path):
    run = tmp_path / "run"
    parent = make_stage(run / "b_first", stage="first", stage_hash="h1")
    make_stage(run / "a_second", stage="second", stage_hash="h2", parent=parent, repo_id="me/planned")
    make_stage(run / "c_running", stage="third", stage_hash="h3", status="running")
    publish_stage(run / "b_first", LocalPublisher(tmp_path / "elsewhere"), "me/exp-first")
    make_stage(run / "d_unplanned", stage="fourth", stage_hash="h4")
    outcomes = publish_pending(run, LocalPublisher(tmp_path / "hub"), namespace="team")
    assert [(o.repo_id, o.ok) for o in outcomes] == [("team/exp-fourth", True), ("me/planned", True)]
    assert read_manifest(run / "c_running").status == "running"
    failed = publish_pending(run / "c_running", LocalPublisher(tmp_path / "hub"))
    assert failed == []


def test_publish_pending_without_a_namespace_reports_the_stage(tmp_path):
    make_stage(tmp_path / "run" / "s1")
    [outcome] = publish_pending(tmp_path / "run", LocalPublisher(tmp_path / "hub"))
    assert isinstance(outcome.error, ConfigError) and "'s1'" in str(outcome.error)


# ---------------------------------------------------------------- references and reuse


def test_resolve_reference_prefers_folders_then_the_local_publisher(tmp_path, monkeypatch):
    make_stage(tmp_path / "s1")
    assert resolve_reference(str(tmp_path / "s1")) == tmp_path / "s1"
    LocalPublisher(tmp_path / "hub").publish(tmp_path / "s1", "me/exp-s1", "v2")
    assert resolve_reference("me/exp-s1@v2", local_root=tmp_path / "hub") == tmp_path / "hub" / "me" / "exp-s1" / "v2"
    with pytest.raises(HubError, match="neither an existing folder nor a Hub reference"):
        resolve_reference("not a//reference@x y")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    (tmp_path / "runs").mkdir()
    with pytest.raises(HubError, match="'runs/missing-stage' is meant as a folder: it does not exist"):
        resolve_reference("runs/missing-stage", cache_dir=tmp_path / "cache")


def test_offline_without_cache_is_a_hub_error(tmp_path, monkeypatch):
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(HubError, match=r"me/never-cached@main.*HF_HUB_OFFLINE=1.*hf download"):
        resolve_reference("me/never-cached", cache_dir=tmp_path / "empty-cache")


@pytest.mark.parametrize(
    "error,match",
    [
        (http_error(404, cls=RepositoryNotFoundError), "repository not found.*hf auth login"),
        (http_error(404, cls=RevisionNotFoundError), "revision 'v9' does not exist"),
        (LocalEntryNotFoundError("no connection"), "cannot be reached"),
    ],
)
def test_download_errors_are_mapped(monkeypatch, error, match):
    import huggingface_hub.constants as constants

    def failing_snapshot_download(*args, **kwargs):
        raise error

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hub_remote, "snapshot_download", failing_snapshot_download)
    with pytest.raises(HubError, match=match):
        resolve_reference("me/exp-s1@v9")


def test_find_reusable_stage_checks_hash_and_checksums(tmp_path):
    from hf_itt.pipeline.identity import hash_identity

    identity = {"tasks": ["mnli"], "seed": 1}
    h1 = hash_identity(identity)
    make_stage(tmp_path / "s1", stage_hash=h1, identity=identity)
    publisher = LocalPublisher(tmp_path / "hub")
    assert find_reusable_stage(h1, local_dirs=(tmp_path / "s1",)) == tmp_path / "s1"
    assert find_reusable_stage("other", local_dirs=(tmp_path / "s1",)) is None
    assert find_reusable_stage(h1, publisher=publisher, repo_id="me/exp-s1") is None  # not published yet
    publish_stage(tmp_path / "s1", publisher, "me/exp-s1")
    assert find_reusable_stage(h1, publisher=publisher, repo_id="me/exp-s1") == publisher.path_for("me/exp-s1")
    assert find_reusable_stage("h2", publisher=publisher, repo_id="me/exp-s1") is None
    (tmp_path / "s1" / "model.safetensors").write_bytes(b"truncated")
    assert find_reusable_stage(h1, local_dirs=(tmp_path / "s1",)) is None


def test_a_stage_without_an_identity_that_gives_its_hash_is_not_reused(tmp_path, caplog):
    make_stage(tmp_path / "s1", stage_hash="h1")  # no identity block at all
    assert find_reusable_stage("h1", local_dirs=(tmp_path / "s1",)) is None
    assert "its identity block hashes to None" in caplog.text and str(tmp_path / "s1") in caplog.text
