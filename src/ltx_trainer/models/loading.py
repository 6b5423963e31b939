"""Building a component on the meta device and filling it strictly from a state dict (every family uses this)."""

from collections.abc import Callable

import diffusers
import transformers
from accelerate import init_empty_weights
from torch import nn

from ltx_trainer.models.errors import ModelLoadError
from ltx_trainer.models.formats.common import StateDict, load_state_dict_strict

# Tiny and local loads finish in milliseconds; the libraries' per-shard progress bars are only noise.
diffusers.utils.logging.disable_progress_bar()
transformers.utils.logging.disable_progress_bar()


def build_module(
    cls: type[nn.Module],
    config: dict,
    sd: StateDict,
    source: str,
    component: str,
    file_key: Callable[[str], str] | None = None,
    frozen: bool = True,
) -> nn.Module:
    """Instantiate ``cls`` on the meta device from ``config`` and fill it strictly from ``sd``, in eval mode.

    Args:
        file_key: diffusers key -> the key the file would hold it under; missing tensors are then also named that way.
        frozen: ``requires_grad_(False)`` on the result.
    """
    config = {k: v for k, v in config.items() if not k.startswith("_")}
    with init_empty_weights():
        module = cls.from_config(config) if hasattr(cls, "from_config") else cls(**config)
    try:
        load_state_dict_strict(module, sd, source, component)
    except ModelLoadError as e:
        missing = sorted(set(module.state_dict()) - set(sd))
        if file_key is None or not missing:
            raise
        shown = ", ".join(file_key(k) for k in missing[:5])
        raise ModelLoadError(f"{e} In the file the missing tensor(s) are: {shown}.") from e
    module = module.eval()
    return module.requires_grad_(False) if frozen else module
