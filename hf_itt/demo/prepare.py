"""`prepare:` hook of run_scripts/demo.yaml: build the synthetic world and the tiny base encoder once.

``model.name_or_path`` names ``<world>/base``: the world's task files go to its parent folder and the
base (a 3-layer XLM-R-shaped encoder with a tokenizer trained on the world's text, warmed up with
multilingual masked-LM so that the synthetic languages share representations, as XLM-R's pretraining
makes real languages share them) to ``base``. See ``hf_itt.demo.build``; a second run finds both
built and returns at once. The hook also sets torch to one CPU thread for the whole demo run.
"""

from __future__ import annotations

from pathlib import Path

from hf_itt.demo.build import BASE_DIR, build
from hf_itt.errors import ConfigError


def prepare(config) -> Path:
    import torch

    # The demo's matrices are tiny: one thread is as fast as several, and immune to a busy CPU, where
    # threads spin-wait against each other and the run gets several times slower.
    torch.set_num_threads(1)

    base = Path(config.resolve_path(config.model.name_or_path))
    if base.name != BASE_DIR:
        raise ConfigError(
            f"demo: model.name_or_path must end in /{BASE_DIR} (the world is built in its "
            f"parent folder), got {config.model.name_or_path!r}"
        )
    print(f"demo: synthetic world and tiny base encoder in {base.parent} (built once, minutes)", flush=True)
    return Path(build(base.parent)["base_model"])
