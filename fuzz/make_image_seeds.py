#!/usr/bin/python3
"""make_image_seeds.py OUTDIR — (re)makes OUTDIR, the seed corpus of fuzz_image: tiny
images in every allowed format and a few layouts (grey, alpha, 16-bit, palette, CMYK,
progressive, tiled, animated, EXIF-rotated), truncated files and headers that claim
huge sizes.

Each seed is the image followed by the harness's option byte (fuzz_image.c); every
image gets two, for different output formats and fit modes. Made with the vips
command (libvips-tools) and, when python3-pil is installed, Pillow for what the
vips command cannot write (animation, EXIF orientation). All under 4 KB.
"""
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib


def vips(*args):
    subprocess.run(["vips", *args], check=True, stdout=subprocess.DEVNULL)


def make_sources(tmp):
    """Encoded images by name, from 20x14 noise."""
    t = lambda name: os.path.join(tmp, name)
    for band in ("r", "g", "b", "a"):
        vips("gaussnoise", t(band + "_f.v"), "20", "14", "--mean", "128", "--sigma", "50")
        vips("cast", t(band + "_f.v"), t(band + ".v"), "uchar")
    vips("bandjoin", " ".join(t(b + ".v") for b in "rgb"), t("rgb_raw.v"))
    vips("copy", t("rgb_raw.v"), t("rgb.v"), "--interpretation", "srgb")
    vips("bandjoin", " ".join(t(b + ".v") for b in "rgba"), t("rgba_raw.v"))
    vips("copy", t("rgba_raw.v"), t("rgba.v"), "--interpretation", "srgb")
    vips("copy", t("rgba_raw.v"), t("cmyk.v"), "--interpretation", "cmyk")
    vips("copy", t("r.v"), t("grey.v"), "--interpretation", "b-w")
    vips("linear", t("r.v"), t("grey16_f.v"), "257", "0")
    vips("cast", t("grey16_f.v"), t("grey16_u.v"), "ushort")
    vips("copy", t("grey16_u.v"), t("grey16.v"), "--interpretation", "grey16")

    saves = [
        ("rgb.jpg", "rgb.v", "[Q=60]"),
        ("rgb_progressive.jpg", "rgb.v", "[Q=40,interlace]"),
        ("grey.jpg", "grey.v", "[Q=60]"),
        ("cmyk.jpg", "cmyk.v", "[Q=60]"),
        ("rgb.png", "rgb.v", ""),
        ("rgba.png", "rgba.v", ""),
        ("grey.png", "grey.v", ""),
        ("grey16.png", "grey16.v", ""),
        ("palette.png", "rgba.v", "[palette]"),
        ("interlaced.png", "rgb.v", "[interlace]"),
        ("rgb.webp", "rgb.v", "[Q=50]"),
        ("rgba_lossless.webp", "rgba.v", "[lossless]"),
        ("rgb.gif", "rgb.v", ""),
        ("rgba.gif", "rgba.v", ""),
        ("rgb.avif", "rgb.v", "[Q=30,compression=av1]"),
        ("rgb.heic", "rgb.v", "[Q=30,compression=hevc]"),
        ("rgb.tif", "rgb.v", ""),
        ("rgba_lzw_tiled.tif", "rgba.v", "[compression=lzw,tile,tile-width=16,tile-height=16]"),
        ("grey16_deflate.tif", "grey16.v", "[compression=deflate]"),
    ]
    out = {}
    for name, src, opts in saves:
        path = t(name)
        try:
            vips("copy", t(src), path + opts)
        except subprocess.CalledProcessError:
            print(f"make_image_seeds: vips cannot write {name}; skipped", file=sys.stderr)
            continue
        with open(path, "rb") as f:
            out[name] = f.read()
    return out


def pillow_sources():
    """Animated and EXIF-rotated images; none when Pillow is missing."""
    try:
        from io import BytesIO
        from PIL import Image
    except ImportError:
        print("make_image_seeds: no python3-pil; animated seeds skipped", file=sys.stderr)
        return {}
    frames = [Image.effect_noise((12, 10), 40 + 20 * i).convert("RGB") for i in range(12)]
    out = {}

    def save(name, im, **kw):
        buf = BytesIO()
        try:
            im.save(buf, **kw)
        except (KeyError, OSError, ValueError):
            return
        out[name] = buf.getvalue()

    save("anim3.gif", frames[0], format="GIF", save_all=True, append_images=frames[1:3],
         duration=50, loop=0)
    small = [f.resize((6, 5)) for f in frames]
    save("anim12.gif", small[0], format="GIF", save_all=True, append_images=small[1:12],
         duration=50, loop=0)
    save("anim3.webp", frames[0], format="WEBP", save_all=True, append_images=frames[1:3],
         duration=50, quality=30)
    save("pages3.tif", frames[0], format="TIFF", save_all=True, append_images=frames[1:3])
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 CW to display
    save("exif_rot6.jpg", frames[0].resize((16, 8)), format="JPEG", quality=50, exif=exif.tobytes())
    return out


def png_with_size(png, width, height):
    """The PNG with its IHDR claiming width x height (CRC fixed)."""
    ihdr = png[16:29]
    ihdr = struct.pack(">II", width, height) + ihdr[8:]
    crc = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr) & 0xFFFFFFFF)
    return png[:16] + ihdr + crc + png[33:]


def jpeg_with_size(jpeg, width, height):
    """The JPEG with its first SOFn frame header claiming width x height."""
    i = 2
    while i + 9 < len(jpeg) and jpeg[i] == 0xFF:
        marker, seglen = jpeg[i + 1], struct.unpack(">H", jpeg[i + 2:i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            return jpeg[:i + 5] + struct.pack(">HH", height, width) + jpeg[i + 9:]
        i += 2 + seglen
    return jpeg


def main():
    if len(sys.argv) != 2:
        print("usage: make_image_seeds.py OUTDIR", file=sys.stderr)
        return 2
    outdir = sys.argv[1]
    tmp = tempfile.mkdtemp(prefix="th-fuzz-seeds-")
    try:
        images = make_sources(tmp)
    finally:
        shutil.rmtree(tmp)
    images.update(pillow_sources())
    if "rgb.jpg" in images:
        jpg = images["rgb.jpg"]
        images["truncated.jpg"] = jpg[: len(jpg) // 2]
        images["huge_header.jpg"] = jpeg_with_size(jpg, 60000, 60000)
        images["tall_header.jpg"] = jpeg_with_size(jpg, 1, 65000)
    if "rgb.png" in images:
        png = images["rgb.png"]
        images["truncated.png"] = png[: len(png) * 2 // 3]
        images["huge_header.png"] = png_with_size(png, 50000, 50000)
    if "rgb.gif" in images:
        images["truncated.gif"] = images["rgb.gif"][:40]

    shutil.rmtree(outdir, ignore_errors=True)
    os.makedirs(outdir)
    for i, (name, data) in enumerate(sorted(images.items())):
        for j, sel in enumerate(((i * 7) % 72, (i * 7 + 39) % 72)):
            with open(os.path.join(outdir, f"{name}.{j}"), "wb") as f:
                f.write(data + bytes([sel]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
