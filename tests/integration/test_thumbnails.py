"""Jobs that succeed: fit modes, output formats, EXIF rotation, uploads, the job
document, and how the image is served (ETag, HEAD, Cache-Control)."""

import io
import re
import socket

import pytest
from PIL import Image

import helpers
from helpers import MIME_OF_FORMAT, decode_image, error_of, iso_time, unique_jpeg

SOURCES = {"landscape": ("land.jpg", 640, 400), "portrait": ("port.jpg", 400, 640)}
BOXES = [(200, 100), (100, 200), (150, 150)]


def expected_inside(sw, sh, bw, bh):
    scale = min(bw / sw, bh / sh)
    return sw * scale, sh * scale


@pytest.mark.parametrize("box", BOXES, ids=lambda b: f"{b[0]}x{b[1]}")
@pytest.mark.parametrize("orientation", SOURCES)
@pytest.mark.parametrize("fit", ["inside", "cover", "contain", "fill"])
def test_fit_mode_dimensions(daemon, source, fit, orientation, box):
    name, sw, sh = SOURCES[orientation]
    bw, bh = box
    doc = daemon.run(url=source.url(f"img/{name}"), width=bw, height=bh, fit=fit, format="png")
    fmt, w, h, _ = decode_image(daemon.image(doc).content)
    assert fmt == "png"
    assert (doc["result"]["width"], doc["result"]["height"]) == (w, h)
    if fit == "inside":
        ew, eh = expected_inside(sw, sh, bw, bh)
        assert w <= bw and h <= bh, (w, h)
        assert w == bw or h == bh, f"no side touches the {bw}x{bh} box: {w}x{h}"
        # Aspect kept: each side within rounding of the exact scaled size.
        assert abs(w - ew) <= 1 and abs(h - eh) <= 1, f"{w}x{h}, expected ~{ew:.1f}x{eh:.1f}"
    else:
        assert (w, h) == (bw, bh), f"fit={fit} gave {w}x{h}, not {bw}x{bh}"


def test_height_defaults_to_width(daemon, source):
    doc = daemon.run(url=source.url("img/land.jpg"), width=120, fit="cover")
    assert doc["request"]["height"] == 120
    _, w, h, _ = decode_image(daemon.image(doc).content)
    assert (w, h) == (120, 120)


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp", "avif", "gif"])
def test_output_format(daemon, source, fmt, images):
    # AVIF is part of what is promised: a machine without its encoder fails.
    assert not (fmt == "avif" and helpers.avif_missing), helpers.avif_missing
    doc = daemon.run(url=source.url("img/land.jpg"), width=160, height=100, fit="fill", format=fmt)
    r = daemon.image(doc)
    assert r.headers["Content-Type"] == MIME_OF_FORMAT[fmt]
    assert doc["result"]["mime"] == MIME_OF_FORMAT[fmt]
    got, w, h, _ = decode_image(r.content)
    assert got == fmt
    assert (w, h) == (160, 100)
    assert doc["result"]["bytes"] == len(r.content)


@pytest.mark.parametrize("name,fmt", [("land.jpg", "jpeg"), ("land.png", "png"),
                                      ("land.webp", "webp"), ("land.gif", "gif"),
                                      ("land.avif", "avif")])
def test_original_keeps_source_format(daemon, source, name, fmt, images):
    assert name in images, helpers.avif_missing
    doc = daemon.run(url=source.url(f"img/{name}"), width=100, format="original")
    assert doc["source"]["mime"] == MIME_OF_FORMAT[fmt]
    r = daemon.image(doc)
    assert r.headers["Content-Type"] == MIME_OF_FORMAT[fmt]
    got, w, h, _ = decode_image(r.content)
    assert got == fmt
    assert (w, h) == (100, 62) or (w, h) == (100, 63)


def test_format_defaults_to_original(daemon, source):
    doc = daemon.run(url=source.url("img/land.webp"), width=100)
    assert doc["request"]["format"] == "original"
    assert daemon.image(doc).headers["Content-Type"] == "image/webp"


def test_png_alpha_is_kept(daemon, source):
    doc = daemon.run(url=source.url("img/alpha.png"), width=160, height=100, fit="fill")
    fmt, w, h, bands = decode_image(daemon.image(doc).content)
    assert (fmt, w, h) == ("png", 160, 100)
    assert bands == 4, "the alpha channel was dropped"


def test_png_alpha_to_jpeg(daemon, source):
    doc = daemon.run(url=source.url("img/alpha.png"), width=160, format="jpeg")
    fmt, w, h, bands = decode_image(daemon.image(doc).content)
    assert (fmt, w, h, bands) == ("jpeg", 160, 100, 3)


def test_exif_rotated_source_comes_out_upright(daemon, source):
    # Stored 640x400 with orientation 6: displayed 400x640, so inside 200x200 is 125x200.
    doc = daemon.run(url=source.url("img/exif6.jpg"), width=200, height=200, fit="inside",
                     format="jpeg")
    _, w, h, _ = decode_image(daemon.image(doc).content)
    assert (w, h) == (125, 200)
    assert (doc["result"]["width"], doc["result"]["height"]) == (125, 200)


def test_exif_rotated_original_has_no_orientation_left(daemon, source):
    # The pixels are rotated, so no orientation tag may survive to rotate them again.
    doc = daemon.run(url=source.url("img/exif6.jpg"), width=200, height=200)
    img = Image.open(io.BytesIO(daemon.image(doc).content))
    assert img.size == (125, 200)
    assert img.getexif().get(0x0112, 1) == 1


def test_upload(daemon):
    data = unique_jpeg(320, 200)
    r = daemon.post("/v1/thumbnails", params={"width": 80, "fit": "cover", "format": "png"},
                    data=data, headers={"Content-Type": "image/jpeg"})
    assert r.status_code == 202, r.text
    job = r.json()
    assert r.headers["Location"] == f"/v1/thumbnails/{job['id']}"
    assert job["request"]["width"] == 80 and job["request"]["fit"] == "cover"
    assert "url" not in job["request"]
    doc = daemon.wait(job["id"])
    assert doc["status"] == "done", doc
    assert doc["source"]["mime"] == "image/jpeg"
    assert doc["source"]["bytes"] == len(data)
    assert (doc["source"]["width"], doc["source"]["height"]) == (320, 200)
    img = daemon.image(doc)
    assert img.headers["Content-Type"] == "image/png"
    assert decode_image(img.content)[:3] == ("png", 80, 80)


def test_upload_as_octet_stream(daemon):
    doc = daemon.upload(unique_jpeg(320, 200), content_type="application/octet-stream", width=64)
    doc = daemon.wait(doc["id"])
    assert doc["status"] == "done", doc
    assert decode_image(daemon.image(doc).content)[:3] == ("jpeg", 64, 40)


def test_submit_answers_202_with_location_and_queued_document(daemon, source):
    url = source.url("img/land.jpg")
    r = daemon.post("/v1/thumbnails", json={"url": url, "width": 64, "format": "webp",
                                            "quality": 70, "fit": "cover"})
    assert r.status_code == 202, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.headers.get("X-Request-Id")
    doc = r.json()
    assert re.fullmatch(r"[A-Za-z0-9_-]{22,}", doc["id"]), doc["id"]
    assert r.headers["Location"] == f"/v1/thumbnails/{doc['id']}"
    assert doc["status"] == "queued"
    assert iso_time(doc["created_at"])
    assert doc["request"] == {"url": url, "width": 64, "height": 64, "fit": "cover",
                              "crop": "centre", "format": "webp", "quality": 70}
    daemon.wait(doc["id"])


def test_job_document_when_done(daemon, source, images):
    url = source.url("img/land.jpg")
    job = daemon.submit(url=url, width=200, height=120, fit="cover", format="webp", quality=60)
    doc = daemon.wait(job["id"])
    assert doc["status"] == "done", doc
    assert doc["id"] == job["id"]
    for key in ("created_at", "started_at", "finished_at"):
        assert iso_time(doc.get(key)), (key, doc.get(key))
    assert doc["created_at"] <= doc["started_at"] <= doc["finished_at"]
    assert doc["attempts"] == 1
    assert doc["request"]["url"] == url
    assert (doc["request"]["width"], doc["request"]["height"]) == (200, 120)
    assert (doc["request"]["fit"], doc["request"]["format"]) == ("cover", "webp")
    assert doc["request"]["quality"] == 60
    assert doc["source"] == {"mime": "image/jpeg", "bytes": images["land.jpg"].stat().st_size,
                             "width": 640, "height": 400}
    res = doc["result"]
    assert res["mime"] == "image/webp"
    assert (res["width"], res["height"]) == (200, 120)
    assert res["image_url"] == f"/v1/thumbnails/{doc['id']}/image"
    assert res["bytes"] == len(daemon.image(doc).content)
    assert "error" not in doc


def test_default_quality_and_fit(daemon, source):
    doc = daemon.run(url=source.url("img/land.jpg"))
    assert doc["request"]["fit"] == "inside"
    assert doc["request"]["quality"] == 80
    assert (doc["request"]["width"], doc["request"]["height"]) == (256, 256)
    assert (doc["result"]["width"], doc["result"]["height"]) == (256, 160)


@pytest.mark.parametrize("crop", ["centre", "attention", "entropy"])
def test_cover_crops(daemon, source, crop):
    doc = daemon.run(url=source.url("img/land.jpg"), width=90, height=90, fit="cover", crop=crop)
    assert doc["request"]["crop"] == crop
    assert decode_image(daemon.image(doc).content)[1:3] == (90, 90)


def test_image_headers_etag_and_304(daemon, source):
    doc = daemon.run(url=source.url("img/land.jpg"), width=100, format="jpeg")
    r = daemon.image(doc)
    assert r.headers["Content-Length"] == str(len(r.content))
    etag = r.headers["ETag"]
    assert re.fullmatch(r'"[^"]+"', etag), f"not a strong ETag: {etag}"
    m = re.fullmatch(r"private, max-age=(\d+)", r.headers["Cache-Control"])
    assert m and 0 < int(m.group(1)) <= 86400, r.headers["Cache-Control"]
    again = daemon.get(doc["result"]["image_url"], headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers.get("ETag") == etag
    other = daemon.get(doc["result"]["image_url"], headers={"If-None-Match": '"nope"'})
    assert other.status_code == 200 and other.content == r.content


def _raw(daemon, request):
    """Sends a raw HTTP/1.1 request with Connection: close; returns (head, body) bytes."""
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as s:
        s.sendall(request)
        chunks = []
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    data = b"".join(chunks)
    head, _, body = data.partition(b"\r\n\r\n")
    return head.decode("latin-1"), body


def _headers(head):
    lines = head.split("\r\n")
    return lines[0], {k.strip().lower(): v.strip()
                      for k, v in (line.split(":", 1) for line in lines[1:])}


def test_head_image_same_headers_no_body(daemon, source):
    doc = daemon.run(url=source.url("img/land.jpg"), width=100, format="png")
    path = doc["result"]["image_url"]
    get = daemon.image(doc)
    req = f"HEAD {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
    head, body = _raw(daemon, req)
    status, headers = _headers(head)
    assert status.split()[1] == "200", status
    assert body == b"", f"HEAD answered with {len(body)} body bytes"
    for name in ("Content-Type", "Content-Length", "ETag"):
        assert headers.get(name.lower()) == get.headers[name], \
            (name, headers.get(name.lower()), get.headers[name])
    # max-age counts down, so only its form is compared.
    assert re.fullmatch(r"private, max-age=\d+", headers.get("cache-control", "")), headers
    assert headers.get("x-request-id")


def test_image_of_failed_job_is_409(daemon, source):
    job = daemon.submit(url=source.url("missing.jpg"), width=100)
    doc = daemon.wait(job["id"])
    assert doc["status"] == "failed"
    r = daemon.get(f"/v1/thumbnails/{job['id']}/image")
    error_of(r, 409, "not_ready")


def test_image_of_queued_job_is_409(daemon, source):
    # Hold both workers with slow sources, then the next job has to wait in the queue.
    slow = [daemon.submit(url=source.url("slow/4000/land.jpg"), width=50)["id"] for _ in range(2)]
    for job_id in slow:
        daemon.wait_until(job_id, ("processing",), timeout=10)
    job = daemon.submit(url=source.url("img/land.jpg"), width=50)
    assert daemon.job(job["id"])["status"] == "queued"
    r = daemon.get(f"/v1/thumbnails/{job['id']}/image")
    error_of(r, 409, "not_ready")
    for job_id in slow:
        r = daemon.get(f"/v1/thumbnails/{job_id}/image")
        error_of(r, 409, "not_ready")
    for job_id in slow + [job["id"]]:
        assert daemon.wait(job_id)["status"] == "done"
