"""roundtrip.py BH_ENCODE NODE — our BlurHash beside npm's blurhash, on images
made here and on real photographs (Debian's plasma-workspace-wallpapers, one
of each wallpaper downscaled to fit 32x32).

For each image: our encoder (BH_ENCODE, tests/blurhash/bh_encode.c) and npm's
(encode.js) give the same string, for 4x3 components and one other count;
npm's decoder (decode.js) reads ours back, at 4 times the source's size, to
the source's average colour (each channel within 6 of it, averaged in linear
light on both sides) and its DC to that colour rounded (within 1). NODE_PATH names npm's blurhash
(tests/blurhash/CMakeLists.txt sets it). Prints what it compared; exit 1 on
any difference, or when the photographs are not installed.
"""

import glob
import json
import os
import random
import subprocess
import sys
import tempfile

from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
WALLPAPERS = "/usr/share/wallpapers/*/contents/images/*.jpg"
AVERAGE_TOLERANCE = 6
# The decoder samples its cosines at x = 0..w-1, not at pixel centres, so each
# odd AC component adds 1/w of itself to the decoded mean: up to 7 levels on a
# 32 px wide photo with a strong gradient (Kite). Decoded 4 times as large,
# that share is a quarter, and what is left is the hash's own error.
DECODE_SCALE = 4
# The other component count, one per image in turn.
OTHER_COMPONENTS = [(1, 1), (9, 9), (5, 2), (3, 7), (6, 6), (2, 9), (9, 1)]


def to_linear(v):
    v /= 255
    return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4


def to_srgb(v):
    v = min(1.0, max(0.0, v))
    return (v * 12.92 if v <= 0.0031308 else 1.055 * v ** (1 / 2.4) - 0.055) * 255


def average(img):
    """The mean colour of img, taken in linear light, as sRGB floats."""
    pixels = list(img.getdata())
    return [to_srgb(sum(to_linear(p[c]) for p in pixels) / len(pixels)) for c in range(3)]


def synthetic():
    """A few images that stress different parts of the encoding."""
    def image(w, h, f):
        img = Image.new("RGB", (w, h))
        img.putdata([f(x, y) for y in range(h) for x in range(w)])
        return img

    rng = random.Random(18)
    yield "solid 20x20", Image.new("RGB", (20, 20), (90, 140, 200))
    yield "gradient 32x24", image(32, 24, lambda x, y: (255 * x // 31, 60, 255 - 255 * x // 31))
    yield "black|white 30x20", image(30, 20, lambda x, y: (0, 0, 0) if x < 15 else (255,) * 3)
    yield "rings 24x32", image(
        24, 32, lambda x, y: ((x - 12) ** 2 + (y - 16) ** 2 < 64 and (250, 200, 40)) or (30, 40, 90))
    yield "noise 32x32", image(32, 32, lambda x, y: tuple(rng.randrange(256) for _ in range(3)))


def photos():
    """One photograph per wallpaper (its smallest JPEG), downscaled to fit 32x32."""
    files = sorted(glob.glob(WALLPAPERS))
    if not files:
        sys.exit(f"roundtrip.py: no photographs at {WALLPAPERS}: install Debian's "
                 "plasma-workspace-wallpapers (scripts/dev.sh installs it)")
    smallest = {}
    for f in files:
        name = f.split(os.sep)[-4]
        if name not in smallest or os.path.getsize(f) < os.path.getsize(smallest[name]):
            smallest[name] = f
    for name, f in sorted(smallest.items()):
        with Image.open(f) as img:
            img.draft("RGB", (128, 128))
            small = img.convert("RGB")
        small.thumbnail((32, 32), Image.LANCZOS)
        yield f"{name}/{os.path.basename(f)}", small


def run(*args):
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout.strip()


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: roundtrip.py BH_ENCODE NODE")
    bh_encode, node = sys.argv[1:]
    failures = []
    images = list(synthetic()) + list(photos())
    print(f"{'image':34} {'size':6}  {'comp':4} {'ours, = npm':29} {'source avg':>17} "
          f"{'decoded avg':>17} {'dc':>11}")
    with tempfile.TemporaryDirectory() as tmp:
        for n, (name, img) in enumerate(images):
            w, h = img.size
            ppm = os.path.join(tmp, f"{n}.ppm")
            img.save(ppm)
            other = OTHER_COMPONENTS[n % len(OTHER_COMPONENTS)]
            hashes = {}
            for xc, yc in [(4, 3), other]:
                ours = run(bh_encode, ppm, str(xc), str(yc))
                npm = run(node, os.path.join(HERE, "encode.js"), ppm, str(xc), str(yc))
                hashes[(xc, yc)] = (ours, npm)
                if ours != npm:
                    failures.append(f"{name} {xc}x{yc}: ours {ours}, npm's {npm}")
            hash43 = hashes[(4, 3)][0]
            src = average(img)
            decoded = json.loads(run(node, os.path.join(HERE, "decode.js"), hash43,
                                     str(w * DECODE_SCALE), str(h * DECODE_SCALE)))
            off = max(abs(a - b) for a, b in zip(src, decoded["average"]))
            dc_off = max(abs(a - b) for a, b in zip(src, decoded["dc"]))
            if off > AVERAGE_TOLERANCE:
                failures.append(f"{name}: decoded average {decoded['average']} is {off:.2f} from "
                                f"the source's {[round(c, 2) for c in src]}")
            if dc_off > 1:
                failures.append(f"{name}: DC {decoded['dc']} is {dc_off:.2f} from the source's "
                                f"average {[round(c, 2) for c in src]}")
            ours, npm = hashes[(4, 3)]
            print(f"{name:34} {w:>2}x{h:<3}  4x3  {ours:28}{'=' if ours == npm else '!'} "
                  f"{'%5.1f %5.1f %5.1f' % tuple(src)} "
                  f"{'%5.1f %5.1f %5.1f' % tuple(decoded['average'])} "
                  f"{'%3d %3d %3d' % tuple(decoded['dc'])}")
            ours, npm = hashes[other]
            shown = ours if len(ours) <= 28 else ours[:25] + "..."
            print(f"{'':34} {'':6}  {other[0]}x{other[1]}  {shown:28}{'=' if ours == npm else '!'}")
    print(f"{len(images)} images: ours and npm's encoder on each at 4x3 and one other count "
          f"('=': the same string); npm's decoder on ours at {DECODE_SCALE} times the size, "
          f"average within {AVERAGE_TOLERANCE} and DC within 1 of the source's")
    for f in failures:
        print("FAIL:", f)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
