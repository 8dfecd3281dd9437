"""Grids of images with captions, for looking at data (matplotlib)."""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np


def show_images(images: np.ndarray, captions: Sequence[str], cols: int = 8, size: float = 1.4) -> plt.Figure:
    """Plot uint8 (or [0, 1] float) images ``(N, H, W, 3)`` in a grid, each with its caption."""
    rows = max(1, int(np.ceil(len(images) / cols)))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * size, rows * (size + 0.3)), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, caption in zip(axes.flat, images, captions):
        ax.imshow(image)
        ax.set_title(caption, fontsize=8)
    fig.tight_layout()
    return fig
