"""Model surgery in the course's vocabulary, for any Keras functional model or ``keras.applications`` backbone.

* removing layers: :func:`cut` keeps a model from its input up to a named layer;
* grafting layers: :func:`graft` puts a new head on a (cut) model;
* freezing layers: :func:`freeze` / :func:`unfreeze` by name, regular expression or index range;
* :func:`summary`: one line of trainable vs frozen parameter counts.
"""
from __future__ import annotations

import re
from typing import Iterable, Iterator, Sequence

import keras
import numpy as np


def cut(model: keras.Model, layer: str, name: str | None = None) -> keras.Model:
    """Removing layers: a model from ``model``'s inputs to the output of its layer named ``layer``.

    The layers are shared, not copied: training the cut model trains ``model`` too.
    """
    return keras.Model(model.inputs, model.get_layer(layer).output, name=name or f"{model.name}_to_{layer}")


def graft(base: keras.Model, head: keras.Layer | Sequence[keras.Layer], name: str | None = None) -> keras.Model:
    """Grafting layers: ``head`` (a layer, a model, or layers applied in order) on top of ``base``'s output."""
    x = base.output
    for layer in ([head] if isinstance(head, keras.Layer) else head):
        x = layer(x)
    return keras.Model(base.inputs, x, name=name or base.name)


def layers(model: keras.Model) -> Iterator[keras.Layer]:
    """Every layer inside ``model``, nested models' layers included (depth first), ``model`` excluded."""
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from layers(layer)


def select(model: keras.Model, *, names: Iterable[str] | None = None, pattern: str | None = None,
           index_range: tuple[int | None, int | None] | None = None) -> list[keras.Layer]:
    """The layers of ``model`` (top level: ``model.layers``) chosen by exact names, a regular
    expression searched in the name, or a ``(start, stop)`` range of ``model.layers`` indices
    (Python slice semantics). Criteria combine with "and"; none given selects every layer.
    """
    chosen = list(model.layers)
    if index_range is not None:
        chosen = chosen[slice(*index_range)]
    if names is not None:
        wanted = set(names)
        unknown = wanted - {layer.name for layer in model.layers}
        if unknown:
            raise ValueError(f"{model.name} has no layer named {sorted(unknown)}.")
        chosen = [layer for layer in chosen if layer.name in wanted]
    if pattern is not None:
        chosen = [layer for layer in chosen if re.search(pattern, layer.name)]
    return chosen


def freeze(model: keras.Model, *, names: Iterable[str] | None = None, pattern: str | None = None,
           index_range: tuple[int | None, int | None] | None = None) -> list[str]:
    """Freezing layers: make the selected layers (see :func:`select`; default all) non-trainable.

    Returns the names of the layers frozen.
    """
    if names is None and pattern is None and index_range is None:
        model.trainable = False
        return [layer.name for layer in model.layers]
    chosen = select(model, names=names, pattern=pattern, index_range=index_range)
    for layer in chosen:
        layer.trainable = False
    return [layer.name for layer in chosen]


def unfreeze(model: keras.Model, *, names: Iterable[str] | None = None, pattern: str | None = None,
             index_range: tuple[int | None, int | None] | None = None,
             keep_batchnorm_frozen: bool = True) -> list[str]:
    """Make the selected layers (see :func:`select`; default all) trainable; leave the others as they were.

    BatchNormalization layers stay frozen unless ``keep_batchnorm_frozen=False``: their statistics
    were learnt on ImageNet and a small fine-tuning set would overwrite them.
    Returns the names of the layers unfrozen.
    """
    chosen = [layer for layer in select(model, names=names, pattern=pattern, index_range=index_range)
              if not (keep_batchnorm_frozen and isinstance(layer, keras.layers.BatchNormalization))]
    # `model.trainable = True` (else the container's own trainable_weights stay empty, though an
    # enclosing model would train the chosen layers) unfreezes every nested layer, so remember
    # which were frozen and restore them.
    frozen = [layer for layer in layers(model) if not layer.trainable]
    model.trainable = True
    for layer in frozen:
        layer.trainable = False
    for layer in chosen:
        layer.trainable = True
    return [layer.name for layer in chosen]


def trainable_layers(model: keras.Model) -> list[str]:
    """Names of the layers (nested included) that own trainable weights."""
    return [layer.name for layer in layers(model)
            if not isinstance(layer, keras.Model) and layer.trainable_weights]


def count(weights: Iterable) -> int:
    """Number of scalar parameters in ``weights`` (a list of Keras variables)."""
    return int(sum(np.prod(w.shape) for w in weights))


def counts(model: keras.Model) -> dict[str, int]:
    """Trainable and frozen parameters (frozen includes BatchNorm moving statistics, never trained)."""
    return {"trainable": count(model.trainable_weights), "frozen": count(model.non_trainable_weights)}


def summary(model: keras.Model) -> str:
    """One line: total, trainable and frozen parameters (see :func:`counts`)."""
    trainable, frozen = counts(model).values()
    return (f"{model.name}: {trainable + frozen:,} parameters = {trainable:,} trainable"
            f" + {frozen:,} frozen")
