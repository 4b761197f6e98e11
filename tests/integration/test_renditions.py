"""Renditions: one job, every size and format a page needs. Four renditions of
one source, each in three formats, with the sizes and types promised; the
image route's choice among a rendition's encodings (Accept, ?format=, Vary,
an ETag each); the options (background, focus, animated, progressive); the
placeholder, decoded by npm's blurhash (tests/blurhash, TH_BLURHASH_MODULES)."""

import io
import json
import os
import subprocess

import pytest
from PIL import Image

import helpers
from helpers import MIME_OF_FORMAT, decode_image, error_of

SIZES = [320, 640, 1280, 1920]
FORMATS = ["avif", "webp", "jpeg"]
SRCSET = [{"name": f"w{w}", "width": w, "format": FORMATS} for w in SIZES]
CHROME_ACCEPT = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"


def rendition(doc, name):
    found = [r for r in doc["result"]["renditions"] if r["name"] == name]
    assert len(found) == 1, doc["result"]
    return found[0]


@pytest.fixture(scope="module")
def srcset_job(daemon, source):
    """One job of four renditions (2400x1350 source), each avif, webp and jpeg."""
    assert not helpers.avif_missing, helpers.avif_missing
    return daemon.run(url=source.url("img/wide.jpg"), renditions=SRCSET)


def test_every_rendition_and_format(daemon, srcset_job):
    doc = srcset_job
    assert doc["request"]["renditions"][0]["format"] == FORMATS
    assert [r["name"] for r in doc["result"]["renditions"]] == [f"w{w}" for w in SIZES]
    for w in SIZES:
        r = rendition(doc, f"w{w}")
        expect = (w, round(w * 1350 / 2400))
        assert (r["width"], r["height"]) == expect, r
        # The fallback (the last listed) is what the rendition's own fields describe.
        assert r["mime"] == "image/jpeg"
        assert [f["format"] for f in r["formats"]] == FORMATS
        for f in r["formats"]:
            got = daemon.get(f["image_url"])
            assert got.status_code == 200, got.text[:300]
            assert got.headers["Content-Type"] == MIME_OF_FORMAT[f["format"]] == f["mime"]
            assert len(got.content) == f["bytes"]
            fmt, gw, gh, _ = decode_image(got.content)
            assert (fmt, gw, gh) == (f["format"], *expect), f
    # The one-rendition fields are the first rendition's fallback, as before.
    first = rendition(doc, "w320")
    assert (doc["result"]["mime"], doc["result"]["bytes"]) == (first["mime"], first["bytes"])
    assert (doc["result"]["width"], doc["result"]["height"]) == (first["width"], first["height"])


def test_accept_negotiation(daemon, srcset_job):
    url = f"/v1/thumbnails/{srcset_job['id']}/image/w640"
    cases = [(CHROME_ACCEPT, "image/avif"), ("image/avif,image/webp,*/*", "image/avif"),
             ("image/webp,*/*", "image/webp"), ("*/*", "image/jpeg"), (None, "image/jpeg"),
             ("image/png", "image/jpeg"), ("image/avif;q=0.5,image/webp", "image/webp")]
    etags = {}
    for accept, mime in cases:
        for attempt in range(2):  # from Redis, then (where this node keeps it) the cache
            headers = {"Accept": accept} if accept else {}
            r = daemon.get(url, headers=headers)
            assert r.status_code == 200, r.text[:300]
            assert r.headers["Content-Type"] == mime, (accept, attempt)
            assert r.headers.get("Vary") == "Accept", r.headers
            assert decode_image(r.content)[0] == mime.split("/")[1]
            etags.setdefault(mime, r.headers["ETag"])
            assert r.headers["ETag"] == etags[mime], "one ETag per encoding"
    assert len(set(etags.values())) == 3, etags
    # ?format= wins over Accept, and then the answer does not vary by it.
    r = daemon.get(url + "?format=jpeg", headers={"Accept": CHROME_ACCEPT})
    assert r.headers["Content-Type"] == "image/jpeg" and "Vary" not in r.headers
    r = daemon.get(url + "?format=webp")
    assert r.headers["Content-Type"] == "image/webp"
    # Each encoding validates with its own ETag.
    r = daemon.get(url, headers={"Accept": CHROME_ACCEPT,
                                 "If-None-Match": etags["image/avif"]})
    assert r.status_code == 304
    r = daemon.get(url, headers={"Accept": "*/*", "If-None-Match": etags["image/avif"]})
    assert r.status_code == 200 and r.headers["Content-Type"] == "image/jpeg"
    # HEAD tells each encoding's length.
    avif = [f for f in rendition(srcset_job, "w640")["formats"] if f["format"] == "avif"][0]
    r = daemon.request("HEAD", url, headers={"Accept": CHROME_ACCEPT})
    assert r.status_code == 200 and int(r.headers["Content-Length"]) == avif["bytes"]
    # /image is the first rendition.
    r = daemon.get(f"/v1/thumbnails/{srcset_job['id']}/image", headers={"Accept": "*/*"})
    assert decode_image(r.content)[1:3] == (320, 180)


def test_image_route_errors(daemon, srcset_job):
    base = f"/v1/thumbnails/{srcset_job['id']}/image"
    err = error_of(daemon.get(base + "/w999"), 404, "not_found")
    assert "w320" in err["message"] and "w1920" in err["message"]
    err = error_of(daemon.get(base + "/w640?format=gif"), 404, "not_found")
    assert "avif" in err["message"]
    error_of(daemon.get(base + "/w640?format=bmp"), 400, "invalid_param", "format")
    error_of(daemon.get(base + "/w640?format=jpeg&format=webp"), 400, "invalid_param", "format")
    error_of(daemon.get(base + "/Not_A_Name"), 404, "not_found")
    error_of(daemon.get(base + "/" + "a" * 33), 404, "not_found")


def test_submit_errors(daemon, source):
    url = source.url("img/land.jpg")
    cases = [
        ({"width": 100, "renditions": [{"name": "a"}]}, "width"),
        ({"renditions": []}, "renditions"),
        ({"renditions": [{"name": "a"}] * 2}, "renditions[1].name"),
        ({"renditions": [{"name": "a", "colour": "red"}]}, "renditions[0].colour"),
        ({"renditions": [{"name": f"r{i}"} for i in range(9)]}, "renditions"),
        ({"format": ["webp", "webp"]}, "format"),
        ({"background": "white"}, "background"),
        ({"fit": "cover", "focus": {"x": 2, "y": 0}}, "focus"),
        ({"focus": {"x": 0.5, "y": 0.5}}, "focus"),
        ({"animated": "yes"}, "animated"),
        ({"renditions": [{"name": f"r{i}", "width": 2048, "fit": "cover", "format": FORMATS}
                         for i in range(2)]}, "renditions"),
    ]
    for body, field in cases:
        r = daemon.post("/v1/thumbnails", json={"url": url, **body})
        error_of(r, 400, "invalid_param", field)


def test_one_output_form_unchanged(daemon, source):
    doc = daemon.run(url=source.url("img/land.jpg"), width=200, format="webp")
    assert "renditions" not in doc["request"]
    r = doc["result"]
    assert [x["name"] for x in r["renditions"]] == ["default"]
    assert r["renditions"][0]["mime"] == r["mime"] == "image/webp"
    assert daemon.get(f"/v1/thumbnails/{doc['id']}/image/default").content == \
        daemon.image(doc).content


def test_dedup_covers_renditions(daemon, source):
    url = source.url("img/land.jpg")
    def submit(width):
        r = daemon.post("/v1/thumbnails", json={"url": url,
                                                "renditions": [{"name": "a", "width": width}]})
        assert r.status_code in (200, 202), r.text
        return r.json()["id"]
    a, b, c = submit(50), submit(50), submit(51)
    assert a == b != c


def pixel(data, xy):
    return Image.open(io.BytesIO(data)).convert("RGBA").getpixel(xy)


def near(a, b, tol=12):
    return all(abs(x - y) <= tol for x, y in zip(a, b))


def test_background(daemon, source):
    doc = daemon.run(url=source.url("img/land.jpg"), renditions=[
        {"name": "jpg", "width": 200, "fit": "contain", "format": "jpeg", "background": "#ff0000"},
        {"name": "png", "width": 200, "fit": "contain", "format": "png",
         "background": "#00ff0080"}])
    base = f"/v1/thumbnails/{doc['id']}/image/"
    # 640x400 in 200x200: bands of padding above and below.
    got = pixel(daemon.get(base + "jpg").content, (100, 3))
    assert near(got[:3], (255, 0, 0)), got
    got = pixel(daemon.get(base + "png").content, (100, 3))
    assert near(got, (0, 255, 0, 128), 2), got


def test_focus_keeps_the_corner(daemon, source):
    # quads.png: red | green over blue | yellow, 200x100; cover 50x50 keeps a
    # 100x50 scaled image's left or right half.
    doc = daemon.run(url=source.url("img/quads.png"), renditions=[
        {"name": "tl", "width": 50, "fit": "cover", "format": "png", "focus": {"x": 0, "y": 0}},
        {"name": "br", "width": 50, "fit": "cover", "format": "png", "focus": {"x": 1, "y": 1}},
        {"name": "mid", "width": 50, "fit": "cover", "format": "png"}])
    base = f"/v1/thumbnails/{doc['id']}/image/"
    tl = daemon.get(base + "tl").content  # all of the left half: red over blue
    for xy, colour in [((3, 3), (255, 0, 0)), ((46, 3), (255, 0, 0)), ((46, 46), (0, 0, 255))]:
        assert near(pixel(tl, xy)[:3], colour), (xy, pixel(tl, xy))
    br = daemon.get(base + "br").content  # all of the right half: green over yellow
    for xy, colour in [((3, 3), (0, 255, 0)), ((3, 46), (255, 255, 0)), ((46, 46), (255, 255, 0))]:
        assert near(pixel(br, xy)[:3], colour), (xy, pixel(br, xy))
    mid = daemon.get(base + "mid").content  # centre: the seam between the halves
    assert near(pixel(mid, (3, 3))[:3], (255, 0, 0)) and near(pixel(mid, (46, 3))[:3], (0, 255, 0))


@pytest.mark.parametrize("name", ["anim.gif", "anim.webp"])
def test_animated(daemon, source, name):
    fmt = name.split(".")[1]
    doc = daemon.run(url=source.url(f"img/{name}"), renditions=[
        {"name": "moving", "width": 60, "format": [fmt, "png"], "animated": True},
        {"name": "still", "width": 60, "format": fmt}])
    base = f"/v1/thumbnails/{doc['id']}/image/"
    moving = Image.open(io.BytesIO(daemon.get(base + f"moving?format={fmt}").content))
    assert getattr(moving, "n_frames", 1) == 3 and moving.size == (60, 40)
    # its png and the rendition without animated: the first frame only
    png = Image.open(io.BytesIO(daemon.get(base + "moving?format=png").content))
    assert getattr(png, "n_frames", 1) == 1
    still = Image.open(io.BytesIO(daemon.get(base + "still").content))
    assert getattr(still, "n_frames", 1) == 1
    assert near(still.convert("RGB").getpixel((30, 20)), (200, 30, 30))


def test_progressive(daemon, source):
    doc = daemon.run(url=source.url("img/land.jpg"), renditions=[
        {"name": "p", "width": 300, "format": ["jpeg", "png"], "progressive": True},
        {"name": "b", "width": 300, "format": ["jpeg", "png"]}])
    base = f"/v1/thumbnails/{doc['id']}/image/"

    def magic(data):
        return subprocess.run(["file", "-b", "-"], input=data, capture_output=True,
                              check=True, timeout=30).stdout.decode()
    assert "progressive" in magic(daemon.get(base + "p?format=jpeg").content)
    assert "baseline" in magic(daemon.get(base + "b?format=jpeg").content)
    assert "interlaced" in magic(daemon.get(base + "p?format=png").content)
    assert "non-interlaced" in magic(daemon.get(base + "b?format=png").content)


def blurhash_average(source_dir, hash_, w, h):
    """npm's blurhash decodes hash_ (tests/blurhash/decode.js): the mean colour."""
    modules = os.environ.get("TH_BLURHASH_MODULES")
    assert modules and os.path.isdir(modules), \
        f"npm's blurhash is not installed (TH_BLURHASH_MODULES={modules!r}: ctest's blurhash.npm_ci)"
    script = source_dir / "tests" / "blurhash" / "decode.js"
    out = subprocess.run(["node", str(script), hash_, str(w), str(h)], capture_output=True,
                         check=True, timeout=60, env={**os.environ, "NODE_PATH": modules})
    return json.loads(out.stdout)["average"]


def linear_average(img):
    """The mean colour in linear light, in sRGB 0..255 (as a BlurHash's DC)."""
    def lin(v):
        v /= 255
        return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4

    def srgb(v):
        return 255 * (v * 12.92 if v <= 0.0031308 else 1.055 * v ** (1 / 2.4) - 0.055)
    px = list(img.convert("RGB").getdata())
    return [srgb(sum(lin(p[c]) for p in px) / len(px)) for c in range(3)]


@pytest.mark.parametrize("name", ["wide.jpg", "land.png", "quads.png"])
def test_placeholder_decodes_to_the_thumbnail(daemon, source, source_dir, name):
    doc = daemon.run(url=source.url(f"img/{name}"), width=200, format="png")
    ph = doc["result"]["placeholder"]
    assert len(ph["blurhash"]) == 28 and ph["color"].startswith("#") and len(ph["color"]) == 7
    thumb = Image.open(io.BytesIO(daemon.image(doc).content))
    want = linear_average(thumb)
    got = blurhash_average(source_dir, ph["blurhash"], thumb.width, thumb.height)
    assert all(abs(a - b) <= 8 for a, b in zip(got, want)), (got, want)
    # The dominant colour is one the thumbnail has in quantity: at least 2 %
    # of its pixels are near it.
    dom = tuple(int(ph["color"][i:i + 2], 16) for i in (1, 3, 5))
    px = list(thumb.convert("RGB").getdata())
    share = sum(near(p, dom, 24) for p in px) / len(px)
    assert share >= 0.02, (dom, share)
