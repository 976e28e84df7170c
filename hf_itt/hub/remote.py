"""Publishing to and downloading from the Hugging Face Hub, with retries and clear errors.

``HubPublisher`` creates the repo (private by default), the branch when the revision is not
"main", and uploads the stage folder in one commit. Network errors, 5xx and 429 are retried with
exponential backoff (``backoff * 2**attempt`` seconds, capped, at least the server's Retry-After);
401/403/404 and other client errors are not: they need the user to act, and ``HubError`` says how.
The local folder is never touched. Tokens are passed to ``HfApi`` only: never logged, never in
messages (messages also go through ``redact_text``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
from huggingface_hub import HfApi, snapshot_download
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from hf_itt.errors import HubError
from hf_itt.hub.local import UPLOAD_IGNORE, PublishedRef
from hf_itt.hub.manifest import redact_text

logger = logging.getLogger(__name__)

LOGIN_HELP = "log in with `hf auth login` or set HF_TOKEN to a token with write access"
NETWORK_ERRORS = (ConnectionError, TimeoutError, httpx2.TransportError)


class HubPublisher:
    """Publishes stage folders to the Hub with ``huggingface_hub.HfApi``."""

    def __init__(
        self,
        token: str | None = None,
        private: bool = True,
        max_retries: int = 5,
        backoff: float = 2.0,
        max_backoff: float = 120.0,
        sleep: Callable[[float], None] | None = None,
        api: HfApi | None = None,
    ):
        self.api = api or HfApi(token=token)
        self._token = token
        self.private = private
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.sleep = sleep or wait

    def __repr__(self) -> str:  # no token in reprs, tracebacks or logs
        return f"HubPublisher(private={self.private}, max_retries={self.max_retries})"

    def publish(
        self, stage_dir: str | Path, repo_id: str, revision: str = "main", commit_message: str = ""
    ) -> PublishedRef:
        folder = Path(stage_dir)
        if not folder.is_dir():
            raise HubError(f"cannot publish {folder}: not a folder")
        self._call(
            "create the repo",
            self.api.create_repo,
            repo_id=repo_id,
            private=self.private,
            repo_type="model",
            exist_ok=True,
        )
        if revision != "main":
            self._call(
                f"create branch {revision!r} in",
                self.api.create_branch,
                repo_id=repo_id,
                branch=revision,
                repo_type="model",
                exist_ok=True,
            )
        info = self._call(
            "upload to",
            self.api.upload_folder,
            repo_id=repo_id,
            folder_path=str(folder),
            revision=revision,
            commit_message=commit_message or f"Upload {folder.name}",
            repo_type="model",
            ignore_patterns=UPLOAD_IGNORE,
        )
        url = getattr(info, "commit_url", None) or f"https://huggingface.co/{repo_id}/tree/{revision}"
        return PublishedRef(repo_id, revision, url, commit=getattr(info, "oid", None))

    def fetch(self, repo_id: str, revision: str = "main") -> Path:
        return download_snapshot(repo_id, revision, token=self._token)

    def _call(self, action: str, method: Callable[..., Any], **kwargs: Any) -> Any:
        """Run one Hub call; retry transient failures, turn the rest into a HubError."""
        repo_id = kwargs["repo_id"]
        for attempt in range(self.max_retries + 1):
            try:
                return method(**kwargs)
            except Exception as err:  # noqa: BLE001 - classified below, unknown errors re-raised
                if not is_transient(err):
                    raise hub_error(err, action, repo_id) from None
                if attempt == self.max_retries:
                    raise HubError(
                        f"could not {action} {repo_id} after {attempt + 1} attempts "
                        f"(last error: {_describe(err)}); the stage stays on disk: publish it "
                        f"later with publish_pending / `hf-itt publish`"
                    ) from None
                delay = self._delay(attempt, err)
                logger.warning(
                    "Hub: could not %s %s (%s); retry %d/%d in %.0f s",
                    action,
                    repo_id,
                    _describe(err),
                    attempt + 1,
                    self.max_retries,
                    delay,
                )
                self.sleep(delay)
        raise AssertionError("unreachable")

    def _delay(self, attempt: int, err: Exception) -> float:
        delay = min(self.max_backoff, self.backoff * 2**attempt)
        return max(delay, _retry_after(err) or 0.0)


def wait(seconds: float) -> None:
    """The pause between retries (a module function, so tests of the whole runner can replace it)."""
    time.sleep(seconds)


def is_transient(err: BaseException) -> bool:
    """Worth retrying: network trouble, rate limiting (429) and server errors (5xx)."""
    if isinstance(err, OfflineModeIsEnabled):
        return False
    if isinstance(err, HfHubHTTPError):
        status = _status(err)
        return status is not None and (status == 429 or status >= 500)
    return isinstance(err, NETWORK_ERRORS)


def hub_error(err: BaseException, action: str, repo_id: str) -> BaseException:
    """A HubError with what to do for a non-transient Hub failure; other exceptions are returned as is."""
    namespace = repo_id.split("/")[0] if "/" in repo_id else repo_id
    if isinstance(err, OfflineModeIsEnabled):
        return HubError(
            f"cannot {action} {repo_id}: HF_HUB_OFFLINE=1 is set; unset it to publish, "
            f"or use the local publisher (hub.publisher: local)"
        )
    if not isinstance(err, HfHubHTTPError):
        return err
    status = _status(err)
    if status == 401:
        return HubError(f"the Hub rejected the credentials (401) to {action} {repo_id}: {LOGIN_HELP}")
    if status == 403:
        return HubError(
            f"no permission (403) to {action} {repo_id}: your token cannot write to namespace "
            f"{namespace!r}; use a write token for it, or change hub.namespace / hub.repo_template"
        )
    if status == 404 or isinstance(err, RepositoryNotFoundError):
        return HubError(
            f"not found (404) while trying to {action} {repo_id}: check that namespace {namespace!r} "
            f"exists and you belong to it, and fix hub.namespace / hub.repo_template; {LOGIN_HELP}"
        )
    return HubError(f"the Hub refused to {action} {repo_id} ({_describe(err)}); fix the request and publish again")


def download_snapshot(
    repo_id: str, revision: str = "main", token: str | None = None, cache_dir: str | Path | None = None
) -> Path:
    """``snapshot_download`` into the HF cache (a warm cache works offline); failures become HubError."""
    from huggingface_hub import constants

    reference = f"{repo_id}@{revision}"
    try:
        return Path(snapshot_download(repo_id, revision=revision, token=token, cache_dir=cache_dir))
    except GatedRepoError:
        raise HubError(
            f"{repo_id} is gated: request access on https://huggingface.co/{repo_id}, then {LOGIN_HELP}"
        ) from None
    except RepositoryNotFoundError:
        raise HubError(
            f"{reference}: repository not found, or private and you are not logged in; check the "
            f"repo id, or {LOGIN_HELP}"
        ) from None
    except RevisionNotFoundError:
        raise HubError(
            f"{reference}: revision {revision!r} does not exist in {repo_id}; see its branches at "
            f"https://huggingface.co/{repo_id}/tree/main and fix the reference"
        ) from None
    except LocalEntryNotFoundError:
        if constants.is_offline_mode():
            raise HubError(
                f"{reference} is not in the Hugging Face cache and HF_HUB_OFFLINE=1 is set: download it "
                f"once online (`hf download {repo_id} --revision {revision}`) or unset HF_HUB_OFFLINE"
            ) from None
        raise HubError(
            f"{reference}: the Hub cannot be reached and it is not in the Hugging Face cache; check "
            f"the network or download it once online (`hf download {repo_id} --revision {revision}`)"
        ) from None
    except HfHubHTTPError as err:
        raise hub_error(err, "download", reference) from None


def _status(err: HfHubHTTPError) -> int | None:
    response = getattr(err, "response", None)
    return getattr(response, "status_code", None)


def _retry_after(err: BaseException) -> float | None:
    response = getattr(err, "response", None)
    value = response.headers.get("Retry-After") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _describe(err: BaseException) -> str:
    status = _status(err) if isinstance(err, HfHubHTTPError) else None
    text = str(err).splitlines()[0] if str(err) else ""
    return redact_text(f"{type(err).__name__}{f' {status}' if status else ''}: {text}"[:300])
