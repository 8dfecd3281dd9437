"""Photos from a folder anyone can drop files into (``img_in/``), read defensively.

``load_folder(folder)`` returns every readable image as an RGB ``uint8`` array
of shape ``(height, width, 3)`` at its full resolution, upright (EXIF
orientation applied), and skips everything else with one warning line naming
the file and the reason: hidden files, folders, empty files, non-images,
formats other than JPEG/PNG/BMP/GIF/WebP, truncated or corrupt files. One bad
file never stops the others. ``to_batch`` resizes images for a network.
"""
from __future__ import annotations

import dataclasses
import logging
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps

from labutils import config

log = logging.getLogger(__name__)

# Pillow decoders tried, by Pillow format name. Naming them stops Pillow from
# running its other, rarely used decoders on untrusted bytes. (The JPEG decoder
# also opens the multi-picture JPEGs, "MPO", that many phone cameras write.)
FORMATS = ("JPEG", "PNG", "BMP", "GIF", "WEBP")
# Documentation that lives beside the photos: skipped without a warning.
DOC_FILES = frozenset({"README.md", "ATTRIBUTION.md"})


class UnreadableImageError(ValueError):
    """A file that cannot be used as an image; the message is the reason."""


@dataclasses.dataclass(frozen=True)
class Photo:
    """A readable image: ``rgb`` is ``uint8`` ``(height, width, 3)``, upright."""

    path: Path
    rgb: np.ndarray


@dataclasses.dataclass(frozen=True)
class Skipped:
    """A file left out, and why."""

    path: Path
    reason: str


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode as RGB; transparent pixels become white, not black."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        # 16-bit grayscale PNGs: scale to 8 bits instead of clipping at 255.
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if values.max() > 255 else 255.0
        image = Image.fromarray(np.round(values * (255.0 / top)).astype(np.uint8), "L")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def load_rgb(path: str | Path) -> np.ndarray:
    """The image at ``path`` as RGB ``uint8`` ``(height, width, 3)``, full size, upright.

    GIF and WebP animations give their first frame. Raises
    :class:`UnreadableImageError` with the reason for anything that is not a
    complete JPEG, PNG, BMP, GIF or WebP image.
    """
    path = Path(path)
    if path.is_dir():
        raise UnreadableImageError("a folder (images in sub-folders are not read)")
    if path.stat().st_size == 0:
        raise UnreadableImageError("empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow warns about odd metadata; we judge the pixels
            with Image.open(path, formats=FORMATS) as image:
                # The header alone says how big the decoded image would be: refuse before decoding.
                if image.width * image.height > config.MAX_PIXELS:
                    raise UnreadableImageError(
                        f"{image.width}x{image.height} pixels, over the {config.MAX_PIXELS / 1e6:g}-megapixel limit "
                        f"(config.MAX_PIXELS): shrink the photo and add it again")
                image.draft("RGB", (config.MAX_SIDE, config.MAX_SIDE))  # JPEG: decode at a reduced size
                image.load()  # decodes now, so a truncated file fails here
                try:
                    upright = ImageOps.exif_transpose(image)
                except Exception:  # a photo with broken EXIF is still a photo
                    upright = image
                rgb = _to_rgb(upright)
                if max(rgb.size) > config.MAX_SIDE:  # keep only what the overlays need
                    rgb.thumbnail((config.MAX_SIDE, config.MAX_SIDE), Image.LANCZOS)
                return np.ascontiguousarray(rgb, dtype=np.uint8)
    except UnreadableImageError:
        raise
    except Image.UnidentifiedImageError:
        raise UnreadableImageError("not a JPEG, PNG, BMP, GIF or WebP image (or its header is damaged)") from None
    except Image.DecompressionBombError as err:
        raise UnreadableImageError(f"too many pixels to decode safely ({err})") from None
    except Exception as err:  # Pillow raises OSError, SyntaxError, ValueError... for bad bytes
        detail = " ".join(str(err).split())  # one line, whatever the decoder said
        raise UnreadableImageError(f"truncated or corrupt image ({type(err).__name__}: {detail})") from None


def load_folder(folder: str | Path) -> tuple[list[Photo], list[Skipped]]:
    """Every readable image directly in ``folder``, sorted by file name, and the files skipped.

    Each skipped file is also logged as one warning line. A missing folder
    counts as empty.
    """
    folder = Path(folder)
    photos: list[Photo] = []
    skipped: list[Skipped] = []
    entries = sorted(folder.iterdir()) if folder.is_dir() else []
    for path in entries:
        if path.name in DOC_FILES:
            continue
        try:
            if path.name.startswith("."):
                raise UnreadableImageError("hidden file")
            photos.append(Photo(path, load_rgb(path)))
        except (UnreadableImageError, OSError) as err:
            skipped.append(Skipped(path, str(err)))
            # repr-style: a name with a newline or escape codes cannot forge another line
            log.warning("Skipping %s: %s", ascii(path.name), err)
    return photos, skipped


def to_batch(images: list[np.ndarray], size: int) -> np.ndarray:
    """Images squashed to ``size`` x ``size``: float32 ``(N, size, size, 3)``, RGB 0-255.

    The whole picture is kept (no crop), as ``keras.utils.load_img(target_size=...)``
    does, so a heatmap maps back onto the original by a plain resize.
    """
    out = np.empty((len(images), size, size, 3), np.float32)
    for i, rgb in enumerate(images):
        # INTER_AREA averages when shrinking (no aliasing on big photos).
        shrink = rgb.shape[0] * rgb.shape[1] > size * size
        out[i] = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return out
