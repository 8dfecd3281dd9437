"""``keras.applications`` classifiers by lower-case name, with their own preprocessing.

``build("resnet50", include_top=False, weights="imagenet", input_shape=(160, 160, 3))``
returns the Keras model; ``preprocess_input("resnet50")`` and
``decode_predictions("resnet50")`` the functions of the same family. Any
``keras.applications`` constructor works by its lower-case name ("vgg16",
"mobilenet", "efficientnetb0"...). ``"mobilenet_025"`` is MobileNet v1 with
``alpha=0.25``: the small ImageNet model the tests and the smoke profile use.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

import keras

from labutils import assets, config

ALIASES = {"mobilenet_025": ("mobilenet", {"alpha": 0.25})}
# Where the lab names a layer itself; other backbones use their last 4-D output.
DEFAULT_CAM_LAYERS = {"vgg16": "block5_conv3", "vgg19": "block5_conv4", "resnet50": "conv5_block3_out"}


def names() -> list[str]:
    """Every backbone name ``build`` accepts."""
    return sorted([n.lower() for n in dir(keras.applications) if n[:1].isupper()] + list(ALIASES))


def _constructor(name: str) -> tuple[Callable[..., keras.Model], dict]:
    base, kwargs = ALIASES.get(name.lower(), (name.lower(), {}))
    for attr in dir(keras.applications):
        if attr.lower() == base:
            return getattr(keras.applications, attr), dict(kwargs)
    raise ValueError(f"Unknown backbone {name!r}; choose one of: {', '.join(names())}.")


def _family(name: str):
    return sys.modules[_constructor(name)[0].__module__]


def preprocess_input(name: str) -> Callable:
    """The backbone's own ``preprocess_input`` (float RGB 0-255 in, what the network expects out)."""
    return _family(name).preprocess_input


def decode_predictions(name: str) -> Callable:
    """The backbone's own ``decode_predictions`` (needs the cached ImageNet class index)."""
    decode = _family(name).decode_predictions

    def decode_offline_aware(preds, top: int = 5):
        with assets.explain_missing(subdir="models"):
            return decode(preds, top=top)

    return decode_offline_aware


def build(name: str, /, *, include_top: bool, weights: str | Path | None = "imagenet",
          input_shape: tuple[int, int, int] | None = None, **kwargs) -> keras.Model:
    """The ``keras.applications`` model ``name``.

    ``weights``: ``"imagenet"`` (Keras' cache under ``$KERAS_HOME``, downloaded if
    missing), ``None`` (random initialisation) or the path of a weights file
    saved from the same architecture (``.weights.h5`` or Keras' ``.h5``). Other keyword
    arguments go to the constructor (``name="conv_base"``, ``alpha=0.5``...).

    ImageNet weights neither cached nor downloadable raise :class:`labutils.assets.AssetMissingError`
    naming the file and the fix, except when the current profile
    (:func:`labutils.config.current_profile`) has ``stand_ins_if_offline`` (smoke), which says so
    and builds the model with random weights. ``model.weights_used`` tells which weights it has.
    """
    constructor, alias_kwargs = _constructor(name)
    kwargs = {**alias_kwargs, **kwargs}
    local = None if weights in (None, "imagenet") else Path(weights)
    if local is not None and not local.is_file():
        raise FileNotFoundError(f"Weights file {local} does not exist: pass weights='imagenet', "
                                f"weights=None, or the path of a saved weights file.")
    used = None if weights is None else str(weights)
    try:
        with assets.explain_missing(subdir="models"):
            model = constructor(include_top=include_top, input_shape=input_shape,
                                weights="imagenet" if weights == "imagenet" else None, **kwargs)
    except (OSError, ValueError) as err:  # h5py on a truncated file: no path, no fix; find the file
        broken = assets.damaged("models") if weights == "imagenet" else []
        if not broken:
            raise
        raise assets.AssetMissingError("\n".join(assets.damaged_message(a) for a in broken)) from err
    except assets.AssetMissingError as err:
        active = config.current_profile()
        if not active.stand_ins_if_offline:
            raise
        print(f"Profile {active.name}: {str(err).splitlines()[0]}\n  Using random weights instead: "
              f"the model runs, but its predictions mean nothing.")
        model, used = constructor(include_top=include_top, input_shape=input_shape, weights=None, **kwargs), None
    if local is not None:
        model.load_weights(str(local))
    model.weights_used = used
    return model
