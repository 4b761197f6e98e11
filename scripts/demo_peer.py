#!/usr/bin/python3
"""demo_peer.py — the other end of `scripts/dev.sh demo`, on loopback: serves
the files of a folder (the demo's source images) and receives callbacks,
checking their Standard Webhooks signature and printing each one.

Usage: demo_peer.py DIR PORT SECRET   (SECRET: the whsec_... of callback.secret)
Only the Python standard library."""
import base64
import hashlib
import hmac
import http.server
import json
import os
import sys


def verify(secret, headers, body):
    key = base64.b64decode(secret.split("_", 1)[1])
    signed = f"{headers.get('webhook-id')}.{headers.get('webhook-timestamp')}.".encode() + body
    want = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(s == "v1," + want for s in (headers.get("webhook-signature") or "").split())


class Peer(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *a, **kw):
        super().__init__(*a, directory=a[2].folder, **kw)  # a = (request, address, server)

    def log_message(self, fmt, *args):
        pass  # the demo prints what matters itself

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        ok = verify(self.server.secret, self.headers, body)
        try:
            doc = json.loads(body)
            what = f"job {doc.get('id')} {doc.get('status')}"
        except ValueError:
            what = "a body that is not JSON"
        print(f"demo: callback received on {self.path}: {what}, signature "
              f"{'verified' if ok else 'WRONG'}", flush=True)
        self.send_response(200 if ok else 400)
        self.send_header("Content-Length", "0")
        self.end_headers()


def main():
    folder, port, secret = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), Peer)
    srv.folder, srv.secret = os.path.abspath(folder), secret
    srv.serve_forever()


if __name__ == "__main__":
    main()
