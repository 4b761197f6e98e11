#!/usr/bin/python3
"""One real thumbnail through the HTTP API of a running daemon: wait until
/readyz answers 200, upload a JPEG (POST /v1/thumbnails?width=64), poll the
job until it is done, download /image and check it is a 64 px wide JPEG;
then the API's description: /openapi.json, and /docs with Swagger UI's files
(compiled into the binary). Every wait is bounded. Usage: thumbnail_roundtrip.py BASE_URL IMAGE"""

import io
import json
import sys
import time
import urllib.error
import urllib.request

from PIL import Image


def request(method, url, data=None, headers=None, timeout=10):
    req = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def main():
    base, image = sys.argv[1], sys.argv[2]
    deadline = time.monotonic() + 60
    while True:
        try:
            status, body = request("GET", base + "/readyz", timeout=2)
            if status == 200:
                break
        except OSError as e:
            body = str(e).encode()
        if time.monotonic() > deadline:
            sys.exit(f"not ready within 60 s: {body!r}")
        time.sleep(0.2)
    print("readyz: 200")
    with open(image, "rb") as f:
        status, body = request("POST", base + "/v1/thumbnails?width=64&format=jpeg", f.read(),
                               {"Content-Type": "image/jpeg"})
    if status != 202:
        sys.exit(f"submit: {status} {body!r}")
    job = json.loads(body)
    print(f"submit: 202, job {job['id']}")
    deadline = time.monotonic() + 60
    while job["status"] not in ("done", "failed", "canceled"):
        if time.monotonic() > deadline:
            sys.exit(f"job not finished within 60 s: {job}")
        time.sleep(0.2)
        status, body = request("GET", f"{base}/v1/thumbnails/{job['id']}")
        job = json.loads(body)
    if job["status"] != "done":
        sys.exit(f"job ended {job['status']}: {job}")
    status, body = request("GET", f"{base}/v1/thumbnails/{job['id']}/image")
    thumb = Image.open(io.BytesIO(body))
    if status != 200 or thumb.format != "JPEG" or thumb.width != 64:
        sys.exit(f"image: {status}, {thumb.format} {thumb.size}")
    print(f"thumbnail: {thumb.format} {thumb.width}x{thumb.height}, {len(body)} bytes")
    status, body = request("GET", base + "/openapi.json")
    if status != 200 or not json.loads(body).get("openapi", "").startswith("3.1"):
        sys.exit(f"/openapi.json: {status} {body[:200]!r}")
    print(f"/openapi.json: 200, {len(body)} bytes")
    for path, least in (("/docs", 200), ("/docs/init.js", 100),
                        ("/docs/swagger-ui-bundle.js", 100000), ("/docs/swagger-ui.css", 10000)):
        status, body = request("GET", base + path)
        if status != 200 or len(body) < least:
            sys.exit(f"{path}: {status}, {len(body)} bytes")
        print(f"{path}: 200, {len(body)} bytes")


if __name__ == "__main__":
    main()
