"""Loading trained models safely: checkpoints are read with ``weights_only=True`` (or from
safetensors), never by unpickling arbitrary objects."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict

from edge_speech.converters._deps import import_torch


def read_state_dict(path: "str | Path") -> Dict[str, "object"]:
    """The tensors of a .pt/.pth/.ckpt/.bin state dict (optionally under a ``state_dict``/``model``
    key) or a .safetensors file. A checkpoint that holds pickled objects other than tensors and
    plain containers is refused."""
    torch = import_torch()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise ImportError("reading .safetensors needs: pip install safetensors") from None
        try:
            state = load_file(str(path))
        except Exception as err:  # safetensors raises its own SafetensorError
            raise ValueError(f"{path}: not a readable safetensors file ({str(err).splitlines()[0]})") from None
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # torch raises UnpicklingError and friends
            if "Unsupported global" in str(err) or "GLOBAL" in str(err):
                raise ValueError(
                    f"{path}: the checkpoint contains pickled Python objects, which are refused for "
                    "safety; save model.state_dict() (or use safetensors) instead"
                ) from None
            raise ValueError(f"{path}: not a readable PyTorch checkpoint ({str(err).splitlines()[0]})") from None
    if isinstance(state, dict):
        for key in ("state_dict", "model", "model_state_dict"):
            if key in state and isinstance(state[key], dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: expected a state dict of tensors")
    return state


def load_checkpoint(path: "str | Path", factory: Callable[[], "object"], strict: bool = True):
    """A model built by ``factory()`` with the weights from ``path`` (see :func:`read_state_dict`),
    in eval mode."""
    state = read_state_dict(path)
    model = factory()
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as err:  # shape mismatches
        raise ValueError(
            f"{path}: weights do not fit the factory's model ({str(err).splitlines()[-1].strip()})"
        ) from None
    if strict and (missing or unexpected):
        raise ValueError(
            f"{path}: weights do not fit the factory's model (missing {list(missing)[:5]}, "
            f"unexpected {list(unexpected)[:5]})"
        )
    return model.eval()


def with_modules_replaced(model, names, replacement):
    """A deep copy of ``model`` (in eval mode) where each submodule named in ``names`` is
    ``replacement(that submodule)``; ``model`` itself is untouched."""
    import copy

    copied = copy.deepcopy(model)
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = copied.get_submodule(parent_name) if parent_name else copied
        setattr(parent, child, replacement(getattr(parent, child)))
    return copied.eval()
