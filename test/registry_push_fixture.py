#!/usr/bin/env python3
"""registry_push_fixture.py — a loopback registry that takes pushes, for tests.

Standard library only.

  serve --root DIR [--auth none|bearer] [--log FILE]

Starts an HTTP/1.1 server on 127.0.0.1 port 0 and prints "PORT <port>". It
keeps models in DIR the way registry_fixture.py does (DIR/manifests/NS/MODEL/
TAG, DIR/blobs/sha256-<hex>) and answers the distribution API a push and a
pull use:

  HEAD|GET /v2/<ns>/<model>/blobs/<digest>      200 (GET honours Range) or 404
  POST     /v2/<ns>/<model>/blobs/uploads/      202, Location: .../uploads/<uuid>
  PATCH    /v2/<ns>/<model>/blobs/uploads/<id>  appends; Content-Range must start
                                                where the upload is; 202 + Location
  PUT      /v2/<ns>/<model>/blobs/uploads/<id>?digest=sha256:<hex>
                                                appends the body, checks the digest,
                                                201; 400 DIGEST_INVALID otherwise
  PUT|GET  /v2/<ns>/<model>/manifests/<tag>     PUT refuses (400 BLOB_UNKNOWN) a
                                                manifest naming a blob it lacks
With --auth bearer, /v2 requests without "Authorization: Bearer <token>" get
401 and a challenge whose realm is /token on this port (the anonymous flow).

Control:
  GET  /_stats  {"heads":N,"posts":N,"patches":N,"puts":N,"manifest_puts":N,
                 "upload_bytes":N,"faults_hit":N,"requests":[[method, path], ...]}
  POST /_reset  zero the counters and clear faults
  POST /_fault  JSON body, replaces the fault set (all optional):
      patch_status: S, patch_count: N   answer the first N PATCHes with S
                                        (the body is discarded)
      put_status: S, put_count: N       the same for blob PUTs
      patch_close: N                    close the connection of the first N
                                        PATCHes (after patch_close_skip: K
                                        good ones) before answering
      patch_hang: N                     hold the first N PATCHes unanswered
                                        until the client goes away (counted
                                        in patch_aborted)
      redirect: true                    answer a PATCH that carries Ollama's
                                        "X-Redirect-Uploads: 1" with 307:
                                        Location is this fixture's storage (a
                                        second port, another host for the
                                        client), Docker-Upload-Location the
                                        next PATCH's URL
      storage_status: S, storage_count: N  the first N storage PUTs get S
The storage takes PUT /storage/<uid>/<offset> (the part's bytes, which must
continue the upload) and refuses one that carries an Authorization header
(403, counted in storage_auth). A commit PUT checks the etag Ollama sends
(md5 of the parts' md5s, "-<parts>") against the parts it saw.
"""

import hashlib
import http.server
import select
import socket
import urllib.parse
import json
import os
import re
import socketserver
import sys
import threading
import uuid

LOCK = threading.Lock()
STATS = {}
FAULTS = {}
ARGS = None
PORT = [0]
STORAGE_PORT = [0]
PARTS = {}  # upload uid -> md5 digests of its parts, in order
TOKEN = "tok-push-5b1e"
BLOB = re.compile(r"^/v2/([^/]+)/([^/]+)/blobs/(sha256:[0-9a-f]{64})$")
UPLOADS = re.compile(r"^/v2/([^/]+)/([^/]+)/blobs/uploads/([0-9a-f-]*)$")
MANIFEST = re.compile(r"^/v2/([^/]+)/([^/]+)/manifests/([^/]+)$")


def reset():
    with LOCK:
        STATS.clear()
        STATS.update(heads=0, gets=0, posts=0, patches=0, puts=0, manifest_puts=0,
                     upload_bytes=0, faults_hit=0, token_gets=0, unauthorized=0, requests=[],
                     redirects=0, storage_puts=0, storage_auth=0, etag_ok=0, etag_bad=0,
                     commits_without_etag=0, patch_hangs=0, patch_aborted=0)
        FAULTS.clear()
        PARTS.clear()


def fault(kind):
    """The status of a one-shot fault of this kind, or None (uses one up)."""
    with LOCK:
        n = FAULTS.get(kind + "_count", 0)
        if n > 0:
            FAULTS[kind + "_count"] = n - 1
            STATS["faults_hit"] += 1
            return FAULTS.get(kind + "_status", 500)
    return None


def blob_path(hexd):
    return os.path.join(ARGS.root, "blobs", "sha256-" + hexd)


def upload_path(uid):
    return os.path.join(ARGS.root, "uploads", uid)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        if ARGS.log:
            with LOCK, open(ARGS.log, "a") as f:
                f.write("%s %s\n" % (self.command, self.path))

    def reply(self, status, body=b"", headers=None, ctype="application/json"):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if body or status not in (204,):
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def error(self, status, code, msg):
        self.reply(status, {"errors": [{"code": code, "message": msg}]})

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        data = b""
        while len(data) < n:
            chunk = self.rfile.read(n - len(data))
            if not chunk:
                break
            data += chunk
        return data

    def authorized(self):
        if ARGS.auth != "bearer" or not self.path.startswith("/v2/"):
            return True
        if self.headers.get("Authorization") == "Bearer " + TOKEN:
            return True
        with LOCK:
            STATS["unauthorized"] += 1
        m = re.match(r"^/v2/([^/]+/[^/]+)/", self.path)
        scope = "repository:%s:push,pull" % (m.group(1) if m else "")
        self.body()
        self.reply(401, {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
                   {"WWW-Authenticate": 'Bearer realm="http://127.0.0.1:%d/token",service="push-fixture",scope="%s"'
                    % (PORT[0], scope)})
        return False

    def handle_any(self):
        path, _, query = self.path.partition("?")
        with LOCK:
            STATS["requests"].append([self.command, path])
        if path == "/_stats":
            with LOCK:
                return self.reply(200, dict(STATS))
        if path == "/_reset":
            self.body()
            reset()
            return self.reply(200, {})
        if path == "/_fault":
            f = json.loads(self.body() or b"{}")
            with LOCK:
                FAULTS.clear()
                FAULTS.update(f)
                for kind in ("patch", "put", "storage"):
                    if kind + "_status" in f and kind + "_count" not in f:
                        FAULTS[kind + "_count"] = 1
            return self.reply(200, {})
        if path == "/token":
            with LOCK:
                STATS["token_gets"] += 1
            return self.reply(200, {"token": TOKEN})
        if not self.authorized():
            return
        m = BLOB.match(path)
        if m and self.command in ("HEAD", "GET"):
            return self.get_blob(m.group(3)[7:])
        m = UPLOADS.match(path)
        if m:
            return self.upload(m, query)
        m = MANIFEST.match(path)
        if m:
            return self.manifest(*m.groups())
        self.body()
        self.error(404, "NOT_FOUND", "no route for %s %s" % (self.command, path))

    def get_blob(self, hexd):
        p = blob_path(hexd)
        with LOCK:
            STATS["heads" if self.command == "HEAD" else "gets"] += 1
        if not os.path.exists(p):
            return self.error(404, "BLOB_UNKNOWN", "blob unknown to registry")
        size = os.path.getsize(p)
        rng = self.headers.get("Range")
        start, end = 0, size - 1
        status = 200
        if rng:
            mm = re.match(r"bytes=(\d+)-(\d*)", rng)
            if mm:
                start = int(mm.group(1))
                end = int(mm.group(2)) if mm.group(2) else size - 1
                status = 206
        with open(p, "rb") as f:
            f.seek(start)
            data = f.read(end - start + 1) if self.command == "GET" else b""
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(end - start + 1))
        if status == 206:
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, end, size))
        self.send_header("Docker-Content-Digest", "sha256:" + hexd)
        self.end_headers()
        if self.command == "GET":
            self.wfile.write(data)

    def upload(self, m, query):
        ns, model, uid = m.groups()
        base = "/v2/%s/%s/blobs/uploads/" % (ns, model)
        if self.command == "POST" and not uid:
            self.body()
            uid = str(uuid.uuid4())
            os.makedirs(os.path.join(ARGS.root, "uploads"), exist_ok=True)
            open(upload_path(uid), "wb").close()
            with LOCK:
                STATS["posts"] += 1
            return self.reply(202, b"", {"Location": base + uid, "Docker-Upload-UUID": uid,
                                         "Range": "0-0"})
        if not uid or not os.path.exists(upload_path(uid)):
            self.body()
            return self.error(404, "BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry")
        up = upload_path(uid)
        if self.command == "PATCH":
            with LOCK:
                STATS["patches"] += 1
                close = 0
                if FAULTS.get("patch_close_skip", 0) > 0:
                    FAULTS["patch_close_skip"] -= 1
                else:
                    close = FAULTS.get("patch_close", 0)
                if close > 0:
                    FAULTS["patch_close"] = close - 1
                    STATS["faults_hit"] += 1
                hang = FAULTS.get("patch_hang", 0)
                if hang > 0:
                    FAULTS["patch_hang"] = hang - 1
                    STATS["patch_hangs"] += 1
                redirect = FAULTS.get("redirect") and self.headers.get("X-Redirect-Uploads") == "1"
            data = self.body()
            if close > 0:
                self.close_connection = True
                self.connection.shutdown(2)
                return
            if hang > 0:
                return self.hang()
            st = fault("patch")
            if st:
                return self.error(st, "UNKNOWN", "injected fault")
            if redirect:
                with LOCK:
                    STATS["redirects"] += 1
                cr = self.headers.get("Content-Range", "")
                mm = re.match(r"^(\d+)-(\d+)$", cr)
                off = int(mm.group(1)) if mm else -1
                return self.reply(307, b"", {
                    "Location": "http://127.0.0.1:%d/storage/%s/%d?sig=s3cr3t" % (STORAGE_PORT[0], uid, off),
                    "Docker-Upload-Location": base + uid})
            have = os.path.getsize(up)
            cr = self.headers.get("Content-Range", "")
            mm = re.match(r"^(\d+)-(\d+)$", cr)
            if not mm or int(mm.group(1)) != have or int(mm.group(2)) - int(mm.group(1)) + 1 != len(data):
                return self.error(416, "BLOB_UPLOAD_INVALID",
                                  "Content-Range %r does not continue the upload at %d" % (cr, have))
            with open(up, "ab") as f:
                f.write(data)
            with LOCK:
                STATS["upload_bytes"] += len(data)
                PARTS.setdefault(uid, []).append(hashlib.md5(data).digest())
            size = os.path.getsize(up)
            return self.reply(202, b"", {"Location": base + uid, "Range": "0-%d" % (size - 1)})
        if self.command == "PUT":
            with LOCK:
                STATS["puts"] += 1
            data = self.body()
            st = fault("put")
            if st:
                return self.error(st, "UNKNOWN", "injected fault")
            with open(up, "ab") as f:
                f.write(data)
            with LOCK:
                STATS["upload_bytes"] += len(data)
            mm = re.search(r"(?:^|&)digest=sha256:([0-9a-f]{64})", query)
            if not mm:
                return self.error(400, "DIGEST_INVALID", "digest missing")
            h = hashlib.sha256()
            with open(up, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            etag = urllib.parse.parse_qs(query).get("etag", [None])[0]
            with LOCK:
                parts = PARTS.pop(uid, [])
                want = "%s-%d" % (hashlib.md5(b"".join(parts)).hexdigest(), len(parts))
                if parts and etag is None:
                    STATS["commits_without_etag"] += 1
                elif parts and etag != want:
                    STATS["etag_bad"] += 1
                elif parts:
                    STATS["etag_ok"] += 1
            if parts and etag is not None and etag != want:
                os.unlink(up)
                return self.error(400, "ETAG_INVALID", "etag %s does not match the parts (%s)" % (etag, want))
            if h.hexdigest() != mm.group(1):
                os.unlink(up)
                return self.error(400, "DIGEST_INVALID", "provided digest did not match uploaded content")
            os.makedirs(os.path.join(ARGS.root, "blobs"), exist_ok=True)
            os.replace(up, blob_path(mm.group(1)))
            return self.reply(201, b"", {"Location": "/v2/%s/%s/blobs/sha256:%s" % (ns, model, mm.group(1)),
                                         "Docker-Content-Digest": "sha256:" + mm.group(1)})
        self.body()
        self.error(405, "UNSUPPORTED", "method not allowed")

    def hang(self):
        """Holds a request unanswered until its client closes the connection."""
        while True:
            r, _, _ = select.select([self.connection], [], [], 0.2)
            if r and not self.connection.recv(1, socket.MSG_PEEK):
                break
        with LOCK:
            STATS["patch_aborted"] += 1
        self.close_connection = True

    def manifest(self, ns, model, tag):
        p = os.path.join(ARGS.root, "manifests", ns, model, tag)
        if self.command == "GET":
            if not os.path.exists(p):
                return self.error(404, "MANIFEST_UNKNOWN", "manifest unknown")
            with open(p, "rb") as f:
                data = f.read()
            return self.reply(200, data, ctype="application/vnd.docker.distribution.manifest.v2+json")
        if self.command != "PUT":
            self.body()
            return self.error(405, "UNSUPPORTED", "method not allowed")
        data = self.body()
        with LOCK:
            STATS["manifest_puts"] += 1
        try:
            man = json.loads(data)
        except ValueError:
            return self.error(400, "MANIFEST_INVALID", "manifest invalid")
        for layer in [man.get("config", {})] + man.get("layers", []):
            d = layer.get("digest", "")
            if not d.startswith("sha256:") or not os.path.exists(blob_path(d[7:])):
                return self.error(400, "BLOB_UNKNOWN", "blob unknown to registry: %s" % d)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data)
        self.reply(201, b"", {"Docker-Content-Digest": "sha256:" + hashlib.sha256(data).hexdigest()})

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any


class Storage(http.server.BaseHTTPRequestHandler):
    """Object storage a redirected part goes to: PUT /storage/<uid>/<offset>."""
    protocol_version = "HTTP/1.1"
    reply = Handler.reply
    error = Handler.error
    body = Handler.body

    def log_message(self, fmt, *args):
        pass

    def do_PUT(self):
        data = self.body()
        mm = re.match(r"^/storage/([0-9a-f-]+)/(\d+)\?sig=s3cr3t$", self.path)
        with LOCK:
            STATS["requests"].append(["PUT", "storage"])
            STATS["storage_puts"] += 1
            if self.headers.get("Authorization") is not None:
                STATS["storage_auth"] += 1
                return self.error(403, "ACCESS_DENIED", "the registry's credentials were sent to the storage")
        st = fault("storage")
        if st:
            return self.error(st, "UNKNOWN", "injected storage fault")
        up = upload_path(mm.group(1)) if mm else ""
        if not mm or not os.path.exists(up) or os.path.getsize(up) != int(mm.group(2)):
            return self.error(400, "BAD_PART", "part does not continue the upload")
        with open(up, "ab") as f:
            f.write(data)
        with LOCK:
            STATS["upload_bytes"] += len(data)
            PARTS.setdefault(mm.group(1), []).append(hashlib.md5(data).digest())
        self.reply(200, b"", {"ETag": '"%s"' % hashlib.md5(data).hexdigest()})


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    global ARGS
    import argparse
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--root", required=True)
    s.add_argument("--auth", default="none", choices=["none", "bearer"])
    s.add_argument("--log")
    ARGS = ap.parse_args()
    os.makedirs(os.path.join(ARGS.root, "blobs"), exist_ok=True)
    reset()
    srv = Server(("127.0.0.1", 0), Handler)
    PORT[0] = srv.server_address[1]
    storage = Server(("127.0.0.1", 0), Storage)
    STORAGE_PORT[0] = storage.server_address[1]
    threading.Thread(target=storage.serve_forever, daemon=True).start()
    print("PORT %d" % PORT[0], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
