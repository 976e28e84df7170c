"""An experiment's `prepare:` hook (it builds data or a base model before anything is planned), run once
on rank 0 while the other ranks wait, and the load-time checks that needed what it built."""

from __future__ import annotations

from importlib import import_module

from hf_itt.config.data_paths import check_data_paths
from hf_itt.config.model_limits import check_max_lengths
from hf_itt.errors import ConfigError
from hf_itt.training.distributed import is_main_process, wait_for_file


def prepare_and_check(configs, data: bool = True) -> None:
    """Run the prepare hook, then the checks that needed what it builds: model limits, and (``data``) that
    every local data path exists (a dry run lists missing data instead: ``missing_data``)."""
    run_prepare(configs[0])
    for config in configs:
        if config.prepare:  # the hook built the base model
            check_max_lengths(config)
        if data:
            check_data_paths(config)


def missing_data(config) -> str | None:
    """Why the experiment's local data is incomplete (the check's message), or None."""
    try:
        check_data_paths(config)
    except ConfigError as err:
        return str(err)
    return None


def run_prepare(config) -> None:
    """The experiment's `prepare:` hook, on rank 0 first (it builds files every rank then reads)."""
    if not config.prepare:
        return
    module, _, function = config.prepare.partition(":")
    try:
        hook = getattr(import_module(module), function)
    except (ImportError, AttributeError) as err:
        raise ConfigError(
            f"prepare {config.prepare!r} cannot be imported ({err}); check the module and function"
        ) from None
    marker = config.run_dir / ".prepared"
    if is_main_process():
        hook(config)
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
    else:
        wait_for_file(marker)
