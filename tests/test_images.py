"""labutils.images: any photo a student drops in img_in/ is read upright as RGB; anything else is skipped by name."""
from __future__ import annotations

import io
import logging

import numpy as np
import pytest
from PIL import Image

from labutils import images

RED, BLUE = (255, 0, 0), (0, 0, 255)


def _halves(size=(40, 20)) -> Image.Image:
    """Left half red, right half blue (width x height = ``size``)."""
    image = Image.new("RGB", size, BLUE)
    image.paste(RED, (0, 0, size[0] // 2, size[1]))
    return image


def _jpeg_bytes(image: Image.Image, **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=95, **kwargs)
    return buf.getvalue()


def test_reads_every_accepted_format_and_mode(tmp_path):
    photo = _halves()
    photo.save(tmp_path / "a.jpg", quality=95)
    photo.save(tmp_path / "b.bmp")
    photo.save(tmp_path / "c.webp", lossless=True)
    photo.convert("L").save(tmp_path / "gray.png")
    photo.convert("P", palette=Image.Palette.ADAPTIVE).save(tmp_path / "palette.png")
    photo.convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    # 16-bit grayscale: full scale 65535 must come out white, not clipped.
    Image.fromarray(np.full((20, 40), 65535, np.uint16)).save(tmp_path / "gray16.png")
    rgba = photo.convert("RGBA")
    rgba.putalpha(0)
    rgba.paste((255, 0, 0, 255), (0, 0, 20, 20))  # left half opaque red, right half fully transparent
    rgba.save(tmp_path / "rgba.png")
    frames = [Image.new("RGB", (40, 20), RED), Image.new("RGB", (40, 20), BLUE)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)

    photos, skipped = images.load_folder(tmp_path)

    assert skipped == []
    got = {p.path.name: p.rgb for p in photos}
    assert sorted(got) == sorted(["a.jpg", "anim.gif", "b.bmp", "c.webp", "cmyk.jpg", "gray.png",
                                  "gray16.png", "palette.png", "rgba.png"])
    for name, rgb in got.items():
        assert rgb.shape == (20, 40, 3) and rgb.dtype == np.uint8, name
    for name in ("a.jpg", "b.bmp", "c.webp", "palette.png", "cmyk.jpg"):
        assert np.allclose(got[name][10, 5], RED, atol=40) and np.allclose(got[name][10, 35], BLUE, atol=40), name
    assert np.all(got["gray.png"][..., 0] == got["gray.png"][..., 2])  # gray stays gray, in 3 channels
    assert np.all(got["gray16.png"] == 255)
    assert tuple(got["rgba.png"][10, 5]) == RED and tuple(got["rgba.png"][10, 35]) == (255, 255, 255)
    assert tuple(got["anim.gif"][10, 20]) == RED  # the first frame, not the last


@pytest.mark.parametrize("orientation, top_left", [(1, RED), (3, BLUE), (6, RED), (8, BLUE)])
def test_exif_orientation_is_applied(tmp_path, orientation, top_left):
    exif = Image.Exif()
    exif[0x0112] = orientation
    (tmp_path / "phone.jpg").write_bytes(_jpeg_bytes(_halves(), exif=exif.tobytes()))

    rgb = images.load_rgb(tmp_path / "phone.jpg")

    # Stored 40 wide x 20 high; orientations 6 and 8 (rotated 90 degrees) stand it upright, 20 x 40.
    assert rgb.shape == ((40, 20, 3) if orientation in (6, 8) else (20, 40, 3))
    assert np.allclose(rgb[2, 2], top_left, atol=40)


def test_bad_files_are_skipped_by_name_with_a_reason(tmp_path, caplog):
    good = _jpeg_bytes(_halves((64, 64)))
    (tmp_path / "good.jpg").write_bytes(good)
    (tmp_path / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (tmp_path / "garbage.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    (tmp_path / "notes.jpg").write_text("this is not a photo\n")
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    _halves().save(tmp_path / "scan.tiff")
    (tmp_path / "holiday").mkdir()
    (tmp_path / "README.md").write_text("documentation, skipped silently\n")

    with caplog.at_level(logging.WARNING, logger="labutils.images"):
        photos, skipped = images.load_folder(tmp_path)

    assert [p.path.name for p in photos] == ["good.jpg"]
    reasons = {s.path.name: s.reason for s in skipped}
    assert sorted(reasons) == sorted([".DS_Store", "empty.png", "garbage.png", "holiday", "notes.jpg",
                                      "scan.tiff", "truncated.jpg"])
    assert reasons[".DS_Store"] == "hidden file"
    assert reasons["empty.png"] == "empty file"
    assert reasons["holiday"].startswith("a folder")
    assert "not a JPEG, PNG, BMP, GIF or WebP image" in reasons["notes.jpg"]
    assert "not a JPEG, PNG, BMP, GIF or WebP image" in reasons["scan.tiff"]
    assert "truncated or corrupt" in reasons["truncated.jpg"]
    assert "header is damaged" in reasons["garbage.png"]
    # One warning line per skipped file, naming it; nothing about README.md.
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == len(skipped) and all("\n" not in m for m in messages)
    for name in reasons:
        assert sum(name in m for m in messages) == 1, name
    assert not any("README" in m for m in messages)


def test_missing_and_empty_folders_give_nothing(tmp_path):
    assert images.load_folder(tmp_path / "absent") == ([], [])
    assert images.load_folder(tmp_path) == ([], [])


def test_to_batch_squashes_whole_images_to_the_network_size():
    tall = np.zeros((300, 100, 3), np.uint8)
    tall[:150] = 255  # top half white: after squashing, still the top half
    small = np.full((10, 20, 3), 7, np.uint8)

    batch = images.to_batch([tall, small], 64)

    assert batch.shape == (2, 64, 64, 3) and batch.dtype == np.float32
    assert batch[0, :30].min() == 255 and batch[0, 34:].max() == 0
    assert np.all(batch[1] == 7)
    assert images.to_batch([], 64).shape == (0, 64, 64, 3)


def test_every_shipped_photo_is_attributed_with_its_hash():
    """img_in/ATTRIBUTION.md lists every image shipped in img_in/ with the SHA-256 of the file as it is."""
    import hashlib
    import re

    from labutils import config

    listed = dict((name, digest) for digest, name in
                  re.findall(r"^\s+([0-9a-f]{64})  (\S+)$", (config.IMG_IN / "ATTRIBUTION.md").read_text(), re.M))
    shipped = [p for p in sorted(config.IMG_IN.iterdir()) if p.is_file() and p.name not in images.DOC_FILES]
    assert shipped, "img_in/ ships sample photos"
    for path in shipped:
        assert path.name in listed, f"{path.name} is not listed in img_in/ATTRIBUTION.md"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == listed[path.name], f"{path.name}: hash differs"
    names = {p.name for p in shipped}
    assert any(n.startswith("freya") for n in names) and any(n.startswith("artemis") for n in names)


def test_a_decompression_bomb_is_skipped_before_it_is_decoded(tmp_path, caplog):
    """A small PNG claiming 10000x10000 pixels (1.77 GB decoded once) is refused from its header."""
    Image.new("1", (10_000, 10_000)).save(tmp_path / "bomb.png", optimize=True)
    assert (tmp_path / "bomb.png").stat().st_size < 2_000_000
    photos, skipped = images.load_folder(tmp_path)
    assert photos == [] and "10000x10000 pixels, over the 40-megapixel limit" in skipped[0].reason


def test_large_photos_are_kept_only_as_large_as_the_overlays_need(tmp_path):
    from labutils import config

    Image.new("RGB", (5000, 2500), (200, 30, 30)).save(tmp_path / "wide.jpg")
    photos, _ = images.load_folder(tmp_path)
    assert photos[0].rgb.shape == (config.MAX_SIDE // 2, config.MAX_SIDE, 3)


def test_overlay_names_never_collide():
    from pathlib import Path

    from labutils import overlay

    stems = overlay.output_stems([Path("a.jpg"), Path("a.png"), Path("a_png.gif"), Path("b.png")])
    assert len(set(stems)) == 4 and stems[-1] == "b"


def test_a_file_name_cannot_forge_a_warning_line(tmp_path, caplog):
    (tmp_path / "x.jpg\nSkipping fake.jpg: all good").write_bytes(b"not an image")
    with caplog.at_level(logging.WARNING):
        images.load_folder(tmp_path)
    assert len(caplog.records) == 1 and "\n" not in caplog.records[0].getMessage()
    assert "x.jpg\\nSkipping" in caplog.records[0].getMessage()
