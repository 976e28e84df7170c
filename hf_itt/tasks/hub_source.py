"""One split of one Hub source of a task, with Hub trouble turned into one clear error."""

from __future__ import annotations

from hf_itt.errors import DataError, HubError


def load_hub_split(spec, source, lang: str, split_name: str):
    """``datasets.load_dataset`` for one source split, with Hub trouble turned into one clear HubError."""
    import datasets

    config = source.config_for(lang, spec.code_for(lang))
    where = source.path + (f"/{config}" if config else "")
    try:
        return datasets.load_dataset(source.path, config, split=split_name, revision=source.revision)
    except datasets.exceptions.DatasetNotFoundError as err:
        raise HubError(
            f"task {spec.name}: dataset {where} was not found on the Hugging Face Hub or is gated "
            f"(log in with `hf auth login`); pass local files with `data_files:` ({err})"
        ) from None
    except ValueError as err:  # unknown config or split
        raise DataError(f"task {spec.name}: {where} has no config/split {split_name!r}: {err}") from None
    except Exception as err:
        if _is_connection_error(err):
            raise HubError(
                f"could not reach the Hugging Face Hub for {spec.name} ({where}); pass local files with "
                f"`data_files:` (see docs), or check the network / HF_HUB_OFFLINE ({type(err).__name__}: {err})"
            ) from None
        raise


def _is_connection_error(err: Exception) -> bool:
    if isinstance(err, (ConnectionError, TimeoutError, OSError)):
        return True
    try:
        import httpx
        from huggingface_hub.errors import HfHubHTTPError
    except ImportError:  # pragma: no cover - both ship with huggingface_hub 1.x
        return False
    return isinstance(err, (httpx.HTTPError, HfHubHTTPError))
