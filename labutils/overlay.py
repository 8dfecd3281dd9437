"""Heatmaps drawn over photos with OpenCV, saved to ``img_out/``, and shown in a grid.

``overlay(rgb, heatmap)`` resizes an ``(h, w)`` heatmap in [0, 1] to the
photo's full resolution, colours it (``cv2.applyColorMap``, JET: blue = 0,
red = 1) and blends it over a copy of the photo: ``(1 - alpha) * photo + alpha
* colours``. The photo itself is never modified.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import cv2
import matplotlib.pyplot as plt
import numpy as np

from labutils import atomic, config

THUMBNAIL = 320  # longest side, in pixels, of the pictures in the notebook's grid


def overlay(rgb: np.ndarray, heatmap: np.ndarray, alpha: float = config.CAM_ALPHA,
            colormap: int = cv2.COLORMAP_JET) -> np.ndarray:
    """``heatmap`` (float ``(h, w)`` in [0, 1]) over ``rgb`` (``uint8`` ``(H, W, 3)``): a new array like ``rgb``."""
    height, width = rgb.shape[:2]
    # Bilinear keeps values in [0, 1] (bicubic would overshoot).
    full = cv2.resize(np.asarray(heatmap, np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    colours = cv2.applyColorMap(np.uint8(np.clip(full, 0.0, 1.0) * 255), colormap)  # BGR, as OpenCV draws
    return cv2.addWeighted(rgb, 1.0 - alpha, cv2.cvtColor(colours, cv2.COLOR_BGR2RGB), alpha, 0.0)


def output_stems(paths: list[Path]) -> list[str]:
    """Distinct names for each photo's overlays: the file stem, or stem + extension where two photos
    share a stem, with a number added where even that is taken (``a.png`` and ``a_png.gif``)."""
    counts = Counter(p.stem for p in paths)
    wanted = [p.stem if counts[p.stem] == 1 else p.name.replace(".", "_") for p in paths]
    taken: set[str] = set()
    stems = []
    for stem in wanted:
        unique, n = stem, 2
        while unique in taken or (unique != stem and unique in wanted):
            unique, n = f"{stem}_{n}", n + 1
        taken.add(unique)
        stems.append(unique)
    return stems


def output_name(stem: str, target: str) -> str:
    """``<stem>_cam.jpg`` for the top-1 class, ``<stem>_cam_<target>.jpg`` for any other target."""
    return f"{stem}_cam.jpg" if target == "top1" else f"{stem}_cam_{target}.jpg"


def save_jpeg(path: Path, rgb: np.ndarray, quality: int = 90) -> Path:
    """Write ``rgb`` (``uint8`` ``(H, W, 3)``) as a JPEG, atomically: temp file, then rename."""
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise OSError(f"OpenCV could not encode {path.name}")
    return atomic.write_bytes(path, data.tobytes())


def thumbnail(rgb: np.ndarray, size: int = THUMBNAIL) -> np.ndarray:
    """``rgb`` shrunk so its longest side is at most ``size`` pixels."""
    scale = size / max(rgb.shape[:2])
    if scale >= 1:
        return rgb
    return cv2.resize(rgb, (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale))),
                      interpolation=cv2.INTER_AREA)


def write_overlays(photos: list, heatmaps: dict[str, np.ndarray], out_dir: Path = config.IMG_OUT,
                   alpha: float = config.CAM_ALPHA) -> tuple[list[dict[str, Path]], list[dict[str, np.ndarray]]]:
    """Save every photo's overlay for every target in ``out_dir``.

    ``photos``: :class:`labutils.images.Photo` list; ``heatmaps``: target ->
    float ``(N, h, w)``, in the same order. Returns, per photo, target -> file
    written, and target -> thumbnail (the photo itself under ``"photo"``) for
    :func:`plot_grid`; full-size overlays are not kept in memory.
    """
    stems = output_stems([p.path for p in photos])
    files, thumbs = [], []
    for i, (photo, stem) in enumerate(zip(photos, stems)):
        files.append({})
        thumbs.append({"photo": thumbnail(photo.rgb)})
        for target, maps in heatmaps.items():
            blended = overlay(photo.rgb, maps[i], alpha)
            files[-1][target] = save_jpeg(out_dir / output_name(stem, target), blended)
            thumbs[-1][target] = thumbnail(blended)
    return files, thumbs


def _titles(row: dict) -> dict[str, str]:
    """Titles for one grid row from a :func:`labutils.cam.summary` row."""
    top = "\n".join(f"{t['label']} {t['probability']:.2f}" for t in row["top3"])
    titles = {"photo": f"{row['image']}\n{top}"}
    if row["top3"]:
        titles["top1"] = f"top-1: {row['top3'][0]['label']}"
    titles.update({name: f"{name}: p = {score:.3f}" for name, score in row["groups"].items()})
    return titles


def plot_grid(rows: list[dict], thumbs: list[dict[str, np.ndarray]], cell: float = 3.0):
    """One row per photo: the photo with its top-3 labels, then each target's overlay; returns the figure.

    ``rows`` from :func:`labutils.cam.summary`, ``thumbs`` from :func:`write_overlays`
    (same order). Returns ``None`` when there is nothing to show.
    """
    if not rows:
        return None
    keys = list(thumbs[0])
    # Each row as tall as its photo's shape needs, plus room for the titles.
    aspects = [max(p.shape[0] / p.shape[1] for p in pictures.values()) for pictures in thumbs]
    heights = [cell * aspect + 0.8 for aspect in aspects]
    # Constrained layout makes room for each row's titles (tight_layout let four-line titles overlap the row above).
    fig, axes = plt.subplots(len(rows), len(keys), figsize=(cell * len(keys), sum(heights)), squeeze=False,
                             gridspec_kw={"height_ratios": heights}, layout="constrained")
    for ax_row, row, pictures in zip(axes, rows, thumbs):
        titles = _titles(row)
        for ax, key in zip(ax_row, keys):
            ax.imshow(pictures[key])
            ax.set_title(titles.get(key, key), fontsize=9)
            ax.axis("off")
    return fig
