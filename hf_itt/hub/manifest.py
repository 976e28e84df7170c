"""Stage manifests: what a stage directory holds, where it came from, and whether it is complete.

``stage_manifest.json`` sits next to the exported encoder. The stage runner writes it with status
"running" when a stage starts and again, LAST, with status "finished" and the checksums once every
other file is in place; publishing turns it into "published" (or records the error). A directory
whose manifest is missing, still "running", or whose checksums do not match its files is not a
usable stage: ``verify_checkpoint`` says which file is wrong.

Secrets never reach a manifest: ``redact_secrets`` replaces values of keys named like ``*token*``
(not ``tokenizer``, ``*_tokens``, ``*_token_id``) and any string of Hugging Face token shape
(``hf_`` + 30 or more letters/digits) on every write.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import types
import typing
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from hf_itt.errors import CheckpointError
from hf_itt.fileio import atomic_write_text, sha256_file
from hf_itt.training.budget import check_budget

MANIFEST_NAME = "stage_manifest.json"
MANIFEST_SCHEMA_VERSION = 2  # 2: the manifest carries manifest_sha256, a checksum of its own content
STATUSES = ("running", "finished", "published")
NOT_CHECKSUMMED = {MANIFEST_NAME, "README.md"}  # rewritten after publishing; not part of the weights
VERSIONED_PACKAGES = ("hf_itt", "torch", "transformers", "datasets", "accelerate", "huggingface_hub", "deepspeed")
REDACTED = "<redacted>"
TOKEN_PATTERN = re.compile(r"hf_[A-Za-z0-9]{30,}")
# "token", "hub_token", "HF_TOKEN", "access_token"; not "tokenizer", "max_tokens" or "pad_token_id"
SECRET_KEY_PATTERN = re.compile(r"token(?!izer|s(?![a-z])|_ids?(?![a-z]))", re.IGNORECASE)


@dataclass
class PublishInfo:
    """Where the stage was (or was meant to be) published; ``errors`` keeps every failed attempt."""

    repo_id: str | None = None
    revision: str | None = None
    url: str | None = None
    commit: str | None = None
    published_at: str | None = None
    errors: list[str] = field(default_factory=list)


@dataclass
class StageManifest:
    """One stage directory's record.

    ``tasks``: task identity dicts (``hf_itt.pipeline.identity.task_identity``).
    ``source``: the checkpoint the stage started from ("path" or "repo@revision").
    ``lineage``: ``[{"stage", "hash", "ref", "tasks"}, ...]`` from the base model to this stage
    (this stage last; see ``next_lineage``). ``metrics``: ``{task: {metric: value}}`` on dev sets.
    ``checksums``: ``{relative path: {"sha256", "size"}}`` of every file but the manifest and card.
    ``budget``: updates, effective batch size, examples seen and the selected step of this stage's
    training (``hf_itt.training.budget``; {} in manifests written before it was recorded). Each lineage
    entry carries its stage's budget too, so a checkpoint's manifest states what its whole chain cost.
    """

    experiment: str
    stage: str
    stage_hash: str
    status: str = "running"
    config: dict[str, Any] = field(default_factory=dict)
    identity: dict[str, Any] = field(default_factory=dict)
    tasks: list[dict[str, Any]] = field(default_factory=list)
    source: str | None = None
    lineage: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    timings: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    checksums: dict[str, dict[str, Any]] = field(default_factory=dict)
    publish: PublishInfo = field(default_factory=PublishInfo)
    health: dict[str, Any] = field(default_factory=dict)  # {"outcome", "attempts": [HealthReport dicts]}
    budget: dict[str, Any] = field(default_factory=dict)  # hf_itt.training.budget.training_budget
    schema_version: int = MANIFEST_SCHEMA_VERSION
    manifest_sha256: str | None = None  # sha256 of the canonical JSON of every other field (set on write)

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"manifest status {self.status!r} is not one of {', '.join(STATUSES)}")
        if isinstance(self.publish, dict):
            known = {f.name for f in dataclasses.fields(PublishInfo)}
            self.publish = PublishInfo(**{key: value for key, value in self.publish.items() if key in known})
        if not self.versions:
            self.versions = package_versions()

    @property
    def is_complete(self) -> bool:
        return self.status in ("finished", "published")

    def to_dict(self) -> dict[str, Any]:
        return redact_secrets(asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "StageManifest":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


def write_manifest(stage_dir: str | Path, manifest: StageManifest) -> Path:
    """Atomically write ``stage_dir/stage_manifest.json`` (call it after every other file is written)."""

    data = manifest.to_dict()
    data["manifest_sha256"] = manifest.manifest_sha256 = manifest_digest(data)
    text = json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True)
    return atomic_write_text(Path(stage_dir) / MANIFEST_NAME, text + "\n")


def manifest_digest(data: dict[str, Any]) -> str:
    """sha256 of the manifest's content without its own checksum (key order and whitespace do not count)."""
    content = {key: value for key, value in data.items() if key != "manifest_sha256"}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def read_manifest(stage_dir: str | Path) -> StageManifest:
    """The manifest of ``stage_dir``; CheckpointError naming the file when it is missing, unreadable,
    edited (its checksum does not match) or holds a field of the wrong type or value."""
    path = Path(stage_dir) / MANIFEST_NAME
    fix = f"delete {stage_dir} or rerun with --force"
    if not path.is_file():
        raise CheckpointError(f"{stage_dir}: no {MANIFEST_NAME}, so this stage never finished; {fix}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{path}: unreadable manifest ({err}); {fix}") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: the manifest is not a JSON object; {fix}")
    if data.get("schema_version") != MANIFEST_SCHEMA_VERSION:
        raise CheckpointError(
            f"{path}: manifest schema_version {data.get('schema_version')!r}, this hf_itt "
            f"reads {MANIFEST_SCHEMA_VERSION}; {fix}"
        )
    if data.get("manifest_sha256") != manifest_digest(data):
        raise CheckpointError(
            f"{path}: the manifest does not match its manifest_sha256 (edited by hand or corrupt); {fix}"
        )
    try:
        check_field_types(data)
        return StageManifest.from_dict(data)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: invalid manifest ({err}); {fix}") from None


def check_field_types(data: dict[str, Any]) -> None:
    """Each known field of the JSON type the dataclass declares (TypeError naming the first that is not)."""

    hints = typing.get_type_hints(StageManifest)
    kinds = {dict: dict, list: list, str: str, int: int}
    for name, value in data.items():
        hint = hints.get(name)
        if hint is None:
            continue
        options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
        wanted = tuple(
            kinds.get(typing.get_origin(option) or option, object) for option in options if option is not type(None)
        )
        if name == "publish":
            wanted = (dict, PublishInfo)
        if (value is None and type(None) in options) or (isinstance(value, wanted) and not isinstance(value, bool)):
            continue
        raise TypeError(f"field {name!r} is {value!r}")
    check_budgets(data)


def check_budgets(data: dict[str, Any]) -> None:
    """The stage's ``budget`` and those of its lineage entries hold what ``training_budget`` writes."""
    check_budget(data.get("budget") or {})
    for entry in data.get("lineage") or []:
        budget = entry.get("budget") if isinstance(entry, dict) else None
        if budget is not None:
            if not isinstance(budget, dict):
                raise TypeError(f"lineage budget of stage {entry.get('stage')!r} is {budget!r}")
            check_budget(budget)


def finish_manifest(stage_dir: str | Path, manifest: StageManifest) -> StageManifest:
    """Checksum the stage's files, mark it finished and write the manifest: the stage's last write."""
    manifest.checksums = compute_checksums(stage_dir)
    manifest.status = "finished"
    manifest.timings.setdefault("finished_at", utc_now())
    write_manifest(stage_dir, manifest)
    return manifest


def verify_checkpoint(stage_dir: str | Path) -> StageManifest:
    """Return the manifest if the stage finished and every checksummed file matches; else CheckpointError."""
    manifest = read_manifest(stage_dir)
    fix = f"delete {stage_dir} or rerun with --force"
    if not manifest.is_complete:
        raise CheckpointError(
            f"{stage_dir}: stage {manifest.stage!r} is marked {manifest.status!r} "
            f"(interrupted before it finished); {fix}"
        )
    if not manifest.checksums:
        raise CheckpointError(f"{stage_dir}: the manifest lists no files; {fix}")
    for name, expected in sorted(manifest.checksums.items()):
        _verify_file(Path(stage_dir), name, expected, fix)
    return manifest


def compute_checksums(stage_dir: str | Path) -> dict[str, dict[str, Any]]:
    """sha256 and size of every regular file under ``stage_dir`` (hidden files, manifest and card left out)."""

    root = Path(stage_dir)
    checksums = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if not path.is_file() or relative.as_posix() in NOT_CHECKSUMMED:
            continue
        if any(part.startswith(".") for part in relative.parts):
            continue
        checksums[relative.as_posix()] = {"sha256": sha256_file(path), "size": path.stat().st_size}
    return checksums


def next_lineage(
    parent: StageManifest | None,
    *,
    base_model: str,
    base_revision: str | None,
    stage: str,
    stage_hash: str,
    tasks: list[str],
    budget: dict | None = None,
    kind: str | None = None,
) -> list[dict[str, Any]]:
    """This stage's lineage: the parent's (or just the base model) followed by this stage (with its
    ``kind``, itt or target, and ``budget`` when given)."""
    if parent is not None:
        ancestors = [dict(entry) for entry in parent.lineage]
    else:
        ancestors = [{"stage": "base", "hash": None, "ref": f"{base_model}@{base_revision or 'main'}", "tasks": []}]
    entry = {"stage": stage, "hash": stage_hash, "ref": None, "tasks": list(tasks)}
    if kind is not None:
        entry["kind"] = kind
    if budget is not None:
        entry["budget"] = dict(budget)
    return ancestors + [entry]


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that decide how a stage was trained (absent ones left out)."""
    versions = {}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def redact_secrets(value: Any, key: str | None = None) -> Any:
    """Copy of ``value`` with token-like keys and token-shaped strings replaced by ``<redacted>``."""
    if key is not None and SECRET_KEY_PATTERN.search(key) and _may_hold_secret(value):
        return REDACTED
    if isinstance(value, dict):
        return {name: redact_secrets(item, str(name)) for name, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_secrets(item) for item in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


def redact_text(text: str) -> str:
    return TOKEN_PATTERN.sub(REDACTED, text)


def _may_hold_secret(value: Any) -> bool:
    # numbers and flags under a "*token*" key (max_tokens, include_num_input_tokens_seen) are not secrets
    return value is not None and not isinstance(value, (bool, int, float))


def _verify_file(root: Path, name: str, expected: dict[str, Any], fix: str) -> None:

    path = root / name
    if not path.is_file():
        raise CheckpointError(f"{path}: listed in the manifest but missing; {fix}")
    size = path.stat().st_size
    if size != expected.get("size", size):
        raise CheckpointError(
            f"{path}: {size} bytes, the manifest records {expected['size']} (truncated or partial write); {fix}"
        )
    if sha256_file(path) != expected["sha256"]:
        raise CheckpointError(f"{path}: content does not match the manifest's sha256 (corrupt or overwritten); {fix}")
