"""`model.freeze`: keep parts of the shared encoder fixed while the heads and the rest train.

On a CPU the 250k-row word embedding of an XLM-R vocabulary is most of the parameters: its dense
gradient and Adam update cost more than the layers' own backward. Freezing it (and, if need be, the
lower layers, whose backward pass is then skipped) is the usual way to fit real encoders in CPU time.
Frozen parameters get ``requires_grad=False``, so the Trainer gives them no optimizer state.
"""

from __future__ import annotations

import logging

from hf_itt.errors import ConfigError

logger = logging.getLogger(__name__)


def freeze_encoder(model, prefixes) -> int:
    """Freeze the encoder parameters whose names (relative to the encoder) start with a prefix; returns
    how many values were frozen. A prefix that matches nothing is a ConfigError naming the real ones."""
    if not prefixes:
        return 0
    encoder = model.encoder
    names = [name for name, _ in encoder.named_parameters()]
    unmatched = [prefix for prefix in prefixes if not any(name.startswith(prefix) for name in names)]
    if unmatched:
        tops = sorted({".".join(name.split(".")[:2]) + "." for name in names})
        raise ConfigError(
            f"model.freeze {unmatched[0]!r} matches no parameter of the {type(encoder).__name__} "
            f"encoder; its parameter names start with: {', '.join(tops[:12])}" + (" ..." if len(tops) > 12 else "")
        )
    frozen = 0
    for name, parameter in encoder.named_parameters():
        if name.startswith(tuple(prefixes)):
            parameter.requires_grad_(False)
            frozen += parameter.numel()
    total = sum(parameter.numel() for parameter in model.parameters())
    logger.info("model.freeze: %d of %d parameters frozen (%s)", frozen, total, ", ".join(prefixes))
    return frozen
