"""The publisher interface and its offline default, a folder laid out like the Hub.

``LocalPublisher(root)`` stores ``repo_id@revision`` at ``root/<namespace>/<name>/<revision>/``
with the files a Hub repo would hold, so switching to ``HubPublisher`` changes where stages go,
not what they contain. Each publish is atomic (built aside, then renamed into place).
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from hf_itt.errors import HubError
from hf_itt.fileio import atomic_publish_dir

# Branch-like revisions only: they become folder names locally and branch names on the Hub.
REVISION_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
UPLOAD_IGNORE = [".*", "*.tmp", "__pycache__"]  # hidden files, half-written temp files


@dataclass(frozen=True)
class PublishedRef:
    """Where a stage was published; ``commit`` pins the exact upload when the Hub returns one."""

    repo_id: str
    revision: str
    url: str
    commit: str | None = None

    @property
    def reference(self) -> str:
        """``repo@revision``, the form ``from:`` and ``resolve_reference`` accept."""
        return f"{self.repo_id}@{self.revision}"


@runtime_checkable
class Publisher(Protocol):
    def publish(
        self, stage_dir: str | Path, repo_id: str, revision: str = "main", commit_message: str = ""
    ) -> PublishedRef: ...

    def fetch(self, repo_id: str, revision: str = "main") -> Path: ...


class LocalPublisher:
    """Publishes stage folders under ``root`` (the default: no network, no account needed)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path_for(self, repo_id: str, revision: str = "main") -> Path:
        namespace, _, name = repo_id.partition("/")
        if not namespace or not name or "/" in name or namespace in (".", "..") or name in (".", ".."):
            raise HubError(f"repo id {repo_id!r} must look like 'namespace/name' for the local publisher")
        check_revision(revision)
        return self.root / namespace / name / revision

    def publish(
        self, stage_dir: str | Path, repo_id: str, revision: str = "main", commit_message: str = ""
    ) -> PublishedRef:

        stage_dir = Path(stage_dir)
        if not stage_dir.is_dir():
            raise HubError(f"cannot publish {stage_dir}: not a folder")
        dest = atomic_publish_dir(
            stage_dir, self.path_for(repo_id, revision), ignore=shutil.ignore_patterns(*UPLOAD_IGNORE)
        )
        return PublishedRef(repo_id, revision, dest.resolve().as_uri())

    def fetch(self, repo_id: str, revision: str = "main") -> Path:
        path = self.path_for(repo_id, revision)
        if not path.is_dir():
            raise HubError(
                f"{repo_id}@{revision} is not in the local publisher folder {self.root} "
                f"(looked for {path}); publish that stage first, or use the Hub publisher"
            )
        return path

    def has(self, repo_id: str, revision: str = "main") -> bool:
        return self.path_for(repo_id, revision).is_dir()


def check_revision(revision: str) -> str:
    if not REVISION_PATTERN.fullmatch(revision or "") or ".." in revision:
        raise HubError(
            f"revision {revision!r} is not a usable branch name: use letters, digits, '.', '_' or '-' (no '/', no '..')"
        )
    return revision
