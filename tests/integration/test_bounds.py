"""Output bounds (image.max_output_pixels, image.max_result_bytes): a small
source asked for at a huge size. The case of the issue: a 12 KB noise PNG
asked for at width=4096&height=4096&fit=fill&format=png made a 46 MB result
that Redis kept for a day. One daemon for the module, on the default
image.max_output_pixels (2048 x 2048) and a small image.max_result_bytes
(20K), with worker.max_attempts = 5 so that a retry would show in attempts."""

import io
import random

import pytest
from PIL import Image

from conftest import DaemonFactory
from helpers import RedisServer, decode_image, error_of

MAX_OUTPUT_PIXELS = 2048 * 2048  # the shipped default
MAX_RESULT_BYTES = 20 * 1024

BOUNDS_CONFIG = {
    "image": {"max_result_bytes": "20K"},
    "worker": {"processes": "2", "max_attempts": "5", "retry_delay": "100ms"},
}


@pytest.fixture(scope="module")
def bd(thumbnailed_bin, tmp_path_factory):
    factory = DaemonFactory(thumbnailed_bin, tmp_path_factory)
    yield factory(BOUNDS_CONFIG)
    factory.stop_all()


def embedded_redis(daemon):
    """The daemon's embedded redis-server, reached on its socket in
    daemon.runtime_dir (only query() is used: it is not ours to start or stop)."""
    return RedisServer(daemon.dir / "run")


def noise_png(width, height):
    """RGB noise, a band of its own each (so it does not compress), as PNG bytes
    no other test uploads."""
    bands = [Image.effect_noise((width, height), 100 + random.random()) for _ in range(3)]
    buf = io.BytesIO()
    Image.merge("RGB", bands).save(buf, "PNG")
    return buf.getvalue()


def solid_png(width, height):
    buf = io.BytesIO()
    colour = tuple(random.randrange(256) for _ in range(3))
    Image.new("RGB", (width, height), colour).save(buf, "PNG")
    return buf.getvalue()


def upload(daemon, data, **params):
    return daemon.post("/v1/thumbnails", params=params, data=data,
                       headers={"Content-Type": "image/png"})


@pytest.mark.parametrize("fit", ["fill", "cover", "contain"])
def test_box_over_the_bound_is_refused_at_submit(bd, fit):
    # The thumbnail of cover, contain and fill is the box: 4096 x 4096 = 16.8 M
    # pixels, over 2048 x 2048, is known to be too large before any work.
    data = noise_png(64, 64)
    assert len(data) < 16 * 1024  # the small source
    err = error_of(upload(bd, data, width=4096, height=4096, fit=fit, format="png"), 400,
                   "invalid_param", "width")
    assert "max_output_pixels" in err["message"], err
    # The same through a JSON body.
    r = bd.post("/v1/thumbnails", json={"url": "http://127.0.0.1:9/a.png", "width": 4096,
                                        "height": 4096, "fit": fit})
    error_of(r, 400, "invalid_param", "width")
    # At the bound it is taken, and the worker does not refuse its size.
    r = upload(bd, solid_png(16, 16), width=2048, height=2048, fit=fit, format="webp")
    assert r.status_code == 202, r.text
    doc = bd.wait(r.json()["id"])
    assert doc["status"] == "done", doc
    assert (doc["result"]["width"], doc["result"]["height"]) == (2048, 2048), doc


def test_inside_over_the_bound_fails_output_too_large(bd):
    # inside only fits the source within the box: its size comes from the
    # source's aspect, so the job is taken and the worker refuses it from the
    # header: a square source in 4096 x 4096 would be 4096 x 4096.
    r = upload(bd, noise_png(64, 64), width=4096, height=4096, fit="inside", format="png")
    assert r.status_code == 202, r.text
    doc = bd.wait(r.json()["id"])
    assert doc["status"] == "failed", doc
    assert doc["error"]["code"] == "output_too_large", doc
    assert "4096x4096" in doc["error"]["message"], doc
    assert doc["attempts"] == 1, f"a permanent failure was retried: {doc}"
    assert doc["source"]["width"] == 64 and doc["source"]["height"] == 64, doc
    assert "result" not in doc, doc


def test_inside_at_the_bound_is_done(bd):
    # A 4:1 source in the same box makes 4096 x 1024, exactly 2048 x 2048 pixels.
    r = upload(bd, solid_png(64, 16), width=4096, height=4096, fit="inside", format="webp")
    assert r.status_code == 202, r.text
    doc = bd.wait(r.json()["id"])
    assert doc["status"] == "done", doc
    assert (doc["result"]["width"], doc["result"]["height"]) == (4096, 1024), doc
    assert doc["result"]["width"] * doc["result"]["height"] == MAX_OUTPUT_PIXELS
    assert decode_image(bd.image(doc).content)[:3] == ("webp", 4096, 1024)


def test_result_over_max_result_bytes_fails_and_is_not_stored(bd):
    # 300 x 300 of noise as PNG is some 270 KB, over image.max_result_bytes (20K).
    r = upload(bd, noise_png(300, 300), width=300, format="png")
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    doc = bd.wait(job_id)
    assert doc["status"] == "failed", doc
    assert doc["error"]["code"] == "result_too_large", doc
    assert doc["attempts"] == 1, f"a permanent failure was retried: {doc}"
    assert "result" not in doc, doc
    error_of(bd.get(f"/v1/thumbnails/{job_id}/image"), 409, "not_ready")
    redis = embedded_redis(bd)
    assert redis.query("EXISTS", f"{{thumbnailed}}:res:{job_id}") == 0
    assert redis.query("HGET", f"{{thumbnailed}}:job:{job_id}", "res_bytes") is None
    assert redis.query("HGET", f"{{thumbnailed}}:job:{job_id}", "err_code") == "result_too_large"
    # A smaller one of the same source is under the bound and done.
    small = bd.wait(upload(bd, noise_png(300, 300), width=40, format="png").json()["id"])
    assert small["status"] == "done", small
    assert small["result"]["bytes"] <= MAX_RESULT_BYTES, small
