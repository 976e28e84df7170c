"""Publishing finished stages and finding them again (on the Hub or in a local folder).

Naming: one repo per stage, ``repo_id_for("{namespace}/{experiment}-{stage}", ...)`` by default,
revision "main". The template may also use ``{hash}`` (the stage hash): put it in when several
experiments share a stage name but not its configuration, so they do not overwrite each other's
repo (``find_reusable_stage`` refuses a repo whose manifest carries another hash either way).
Every produced id is checked with huggingface_hub's own validator; a bad one is a ConfigError
naming the template.

Flow (called by the stage runner on the main process only):
``publish_stage`` verifies the stage's checksums, publishes it with a ``Publisher``
(``LocalPublisher`` by default, ``HubPublisher`` for the Hub), and records the result in the
manifest: status "published", or status "finished" plus the error (the local folder is never
removed). ``AsyncPublisher`` does that in a background thread so the next stage can start;
``publish_pending`` retries every finished-but-unpublished stage of a run.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from hf_itt.errors import ConfigError, HfIttError, HubError
from hf_itt.hub.local import LocalPublisher, PublishedRef, Publisher, check_revision
from hf_itt.hub.manifest import (
    MANIFEST_NAME,
    read_manifest,
    redact_text,
    utc_now,
    verify_checkpoint,
    write_manifest,
)
from hf_itt.hub.remote import HubPublisher, download_snapshot
from hf_itt.hub.stage_hash import hash_identity

__all__ = [
    "AsyncPublisher",
    "DEFAULT_REPO_TEMPLATE",
    "HubPublisher",
    "LocalPublisher",
    "PublishOutcome",
    "PublishedRef",
    "Publisher",
    "check_hub_access",
    "find_reusable_stage",
    "make_publisher",
    "publish_pending",
    "publish_stage",
    "repo_id_for",
    "resolve_reference",
]

logger = logging.getLogger(__name__)

DEFAULT_REPO_TEMPLATE = "{namespace}/{experiment}-{stage}"
TEMPLATE_FIELDS = "{namespace}, {experiment}, {stage}, {hash}"


def repo_id_for(template: str, *, namespace: str, experiment: str, stage: str, stage_hash: str) -> str:
    """The repo id a stage is published to; ConfigError when the template gives an invalid id."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        repo_id = template.format(namespace=namespace, experiment=experiment, stage=stage, hash=stage_hash)
    except (KeyError, IndexError, ValueError) as err:
        raise ConfigError(
            f"hub.repo_template {template!r}: cannot fill it ({err!r}); it may only use {TEMPLATE_FIELDS}"
        ) from None
    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise ConfigError(
            f"hub.repo_template {template!r} gives repo id {repo_id!r}, which the Hub rejects "
            f"({err}); use letters, digits, '-', '_', '.' in the namespace, experiment and stage "
            f"names, or change the template"
        ) from None
    if "/" not in repo_id:
        raise ConfigError(
            f"hub.repo_template {template!r} gives {repo_id!r} without a namespace; start the "
            f"template with '{{namespace}}/'"
        )
    return repo_id


def make_publisher(
    kind: str,
    *,
    local_root: str | Path = "hub_local",
    private: bool = True,
    token: str | None = None,
    publishing: bool = True,
) -> Publisher | None:
    """The publisher for ``hub.publisher``: "local", "hub" or "none" (no publishing). ``publishing=False``
    (a dry run, a plan): only looked up, so no token is required."""
    if kind == "local":
        return LocalPublisher(local_root)
    if kind == "hub":
        if publishing:
            check_hub_access(token)
        return HubPublisher(token=token, private=private)
    if kind == "none":
        return None
    raise ConfigError(f"hub.publisher {kind!r}: use one of local, hub, none")


def check_hub_access(token: str | None = None) -> None:
    """Before any training: a Hub publisher needs a token; offline, stages wait to be published later."""
    from huggingface_hub import constants, get_token

    if not (token or get_token()):
        raise HubError(
            "hub.publisher is 'hub' but no Hugging Face token was found: log in with `hf auth login` "
            "or set HF_TOKEN to a token with write access; or set hub.publisher: local (or none) and "
            "publish later with `hf-itt publish RUN_DIR --publisher hub`"
        )
    if constants.is_offline_mode():
        logger.warning(
            "HF_HUB_OFFLINE=1: finished stages stay on disk marked 'finished, not published'; publish "
            "them later with `hf-itt publish RUN_DIR --publisher hub`"
        )


def resolve_reference(
    reference: str,
    *,
    local_root: str | Path | None = None,
    token: str | None = None,
    cache_dir: str | Path | None = None,
) -> Path:
    """A local folder for ``reference``: an existing folder, or ``namespace/name[@revision]`` found in the
    local publisher root or downloaded from the Hub (a warm cache works with HF_HUB_OFFLINE=1)."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    path = Path(reference).expanduser()
    if path.is_dir():
        return path
    repo_id, _, revision = reference.partition("@")
    revision = revision or "main"
    try:
        validate_repo_id(repo_id)
        check_revision(revision)
    except (HFValidationError, HubError):
        raise HubError(
            f"{reference!r} is neither an existing folder nor a Hub reference "
            f"'namespace/name@revision'; fix the path or the reference"
        ) from None
    if local_root is not None and "/" in repo_id and LocalPublisher(local_root).has(repo_id, revision):
        return LocalPublisher(local_root).fetch(repo_id, revision)
    try:
        return download_snapshot(repo_id, revision, token=token, cache_dir=cache_dir)
    except HubError as err:
        if Path(repo_id.split("/")[0]).is_dir():  # "runs/stage1" reads as a repo id too
            raise HubError(f"{err} (if {reference!r} is meant as a folder: it does not exist)") from None
        raise


def publish_stage(
    stage_dir: str | Path, publisher: Publisher, repo_id: str, revision: str = "main", commit_message: str | None = None
) -> PublishedRef:
    """Publish a finished stage and record the outcome in its manifest (errors re-raised after recording)."""
    manifest = verify_checkpoint(stage_dir)  # never publish an unfinished or corrupt stage
    manifest.publish.repo_id, manifest.publish.revision = repo_id, revision
    message = commit_message or f"hf_itt: {manifest.experiment}/{manifest.stage} (stage hash {manifest.stage_hash})"
    try:
        ref = publisher.publish(stage_dir, repo_id, revision, message)
    except Exception as err:
        manifest.publish.errors.append(f"{utc_now()} {type(err).__name__}: {redact_text(str(err))}")
        write_manifest(stage_dir, manifest)
        raise
    manifest.status = "published"
    manifest.publish.url, manifest.publish.commit, manifest.publish.published_at = ref.url, ref.commit, utc_now()
    if manifest.lineage:
        manifest.lineage[-1]["ref"] = ref.reference
    write_manifest(stage_dir, manifest)
    logger.info("published %s to %s", stage_dir, ref.url)
    return ref


@dataclass
class PublishOutcome:
    stage_dir: Path
    repo_id: str | None
    revision: str | None
    ref: PublishedRef | None = None
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class AsyncPublisher:
    """Runs ``publish_stage`` in one background thread (stages publish in order) while training goes on."""

    def __init__(self, publisher: Publisher):
        self.publisher = publisher
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hf_itt-publish")
        self._futures: list[Future] = []
        self.outcomes: list[PublishOutcome] = []  # filled by close()

    def submit(
        self, stage_dir: str | Path, repo_id: str, revision: str = "main", commit_message: str | None = None
    ) -> Future:
        future = self._executor.submit(
            _publish_outcome, self.publisher, Path(stage_dir), repo_id, revision, commit_message
        )
        self._futures.append(future)
        return future

    def wait(self, raise_errors: bool = False) -> list[PublishOutcome]:
        """Block until every submitted publish is done; their outcomes in submission order."""
        outcomes = [future.result() for future in self._futures]
        failed = [outcome for outcome in outcomes if not outcome.ok]
        if raise_errors and failed:
            raise HubError(
                f"{len(failed)} stage(s) could not be published (they stay on disk, marked finished): "
                + "; ".join(redact_text(str(outcome.error)) for outcome in failed)
            )
        return outcomes

    def close(self) -> list[PublishOutcome]:
        self.outcomes = self.wait()
        self._executor.shutdown(wait=True)
        return self.outcomes

    def __enter__(self) -> "AsyncPublisher":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def publish_pending(
    run_dir: str | Path,
    publisher: Publisher,
    *,
    namespace: str | None = None,
    repo_template: str = DEFAULT_REPO_TEMPLATE,
    revision: str = "main",
    pattern: str = f"**/{MANIFEST_NAME}",
) -> list[PublishOutcome]:
    """Publish every finished-but-unpublished stage under ``run_dir``, parents first.

    ``pattern`` picks the manifests (the stage runner's ITT stages: ``stages/*/checkpoint/stage_manifest.json``).
    A stage goes to the repo its manifest planned (``publish.repo_id``) or, failing that, to the one
    ``repo_template`` gives with ``namespace``. One failure does not stop the others."""
    pending = []
    for path in sorted(Path(run_dir).glob(pattern)):
        try:
            manifest = read_manifest(path.parent)
        except HfIttError as err:
            logger.warning("skipping %s: %s", path.parent, err)
            continue
        if manifest.status == "finished":
            pending.append((len(manifest.lineage), path.parent, manifest))
    outcomes = []
    for _, stage_dir, manifest in sorted(pending, key=lambda item: (item[0], str(item[1]))):
        try:
            repo_id = manifest.publish.repo_id or _planned_repo_id(manifest, namespace, repo_template)
        except ConfigError as err:
            outcomes.append(PublishOutcome(stage_dir, None, None, error=err))
            continue
        outcomes.append(_publish_outcome(publisher, stage_dir, repo_id, manifest.publish.revision or revision, None))
    return outcomes


def find_reusable_stage(
    stage_hash: str,
    *,
    local_dirs: tuple[str | Path, ...] = (),
    publisher: Publisher | None = None,
    repo_id: str | None = None,
    revision: str = "main",
) -> Path | None:
    """A verified folder holding the stage with ``stage_hash``: a finished local stage, else a published one."""
    for folder in local_dirs:
        if _holds_stage(Path(folder), stage_hash):
            return Path(folder)
    if publisher is None or repo_id is None:
        return None
    try:
        folder = publisher.fetch(repo_id, revision)
    except HubError as err:
        logger.info("no published stage at %s@%s (%s)", repo_id, revision, err)
        return None
    if _holds_stage(folder, stage_hash):
        return folder
    logger.warning(
        "%s@%s holds another stage than hash %s (different configuration): training it again; add "
        "{hash} to hub.repo_template to keep both",
        repo_id,
        revision,
        stage_hash,
    )
    return None


def _holds_stage(folder: Path, stage_hash: str) -> bool:
    """Whether ``folder`` is a complete stage of ``stage_hash``: its manifest reads and verifies (its own
    checksum, every file's), and its identity block hashes to its stage hash. Anything else means
    "train it again", with a warning naming the file, never a crash and never the reuse of a stage
    whose manifest claims a hash its identity does not give."""

    if not (folder / MANIFEST_NAME).is_file():
        return False
    try:
        manifest = verify_checkpoint(folder)
        recomputed = hash_identity(manifest.identity, length=len(manifest.stage_hash)) if manifest.identity else None
    except (HfIttError, TypeError, ValueError) as err:
        logger.warning("not reusing %s: %s", folder, err)
        return False
    if manifest.stage_hash != stage_hash:
        return False
    if recomputed != manifest.stage_hash:
        logger.warning(
            "not reusing %s: its %s says stage_hash %s but its identity block hashes to %s (edited, or "
            "written by an incompatible hf_itt); training the stage again",
            folder,
            MANIFEST_NAME,
            manifest.stage_hash,
            recomputed,
        )
        return False
    return True


def _planned_repo_id(manifest, namespace: str | None, repo_template: str) -> str:
    if namespace is None:
        raise ConfigError(
            f"stage {manifest.stage!r} has no planned repo id in its manifest; give the namespace "
            f"to publish it to (hub.namespace)"
        )
    return repo_id_for(
        repo_template,
        namespace=namespace,
        experiment=manifest.experiment,
        stage=manifest.stage,
        stage_hash=manifest.stage_hash,
    )


def _publish_outcome(
    publisher: Publisher, stage_dir: Path, repo_id: str, revision: str, commit_message: str | None
) -> PublishOutcome:
    try:
        ref = publish_stage(stage_dir, publisher, repo_id, revision, commit_message)
    except Exception as err:  # noqa: BLE001 - a failed publish must not stop training; the manifest has it
        logger.warning(
            "could not publish %s to %s@%s: %s. The stage stays on disk, marked 'finished, not "
            "published'; once fixed, publish it with `hf-itt publish <run dir>`",
            stage_dir,
            repo_id,
            revision,
            redact_text(str(err)),
        )
        return PublishOutcome(stage_dir, repo_id, revision, error=err)
    return PublishOutcome(stage_dir, repo_id, revision, ref=ref)
