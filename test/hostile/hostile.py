#!/usr/bin/env python3
"""hostile.py — the attack campaign of issue 13 against a real `cllama serve`
on 127.0.0.1: each attack runs, then the server must still be up, answer
correctly, and (once the attack's connections are gone) hold no more
descriptors than before and not much more memory. Prints a table:

  attack | result | RSS before/after (KiB) | fds before/after

Exit status 0 when every attack passed. Run by test/test_hostile.c in
`make test`; by hand: python3 test/hostile/hostile.py --bin build/release/cllama
--shared ../shared [--table FILE]. Only loopback traffic.
"""
import argparse
import json
import os
import resource
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

ap = argparse.ArgumentParser()
ap.add_argument("--bin", required=True)
ap.add_argument("--shared", required=True)
ap.add_argument("--table", default="")
ap.add_argument("--only", default="")
A = ap.parse_args()

RSS_SLACK_KIB = 64 * 1024  # allocator caches: growth allowed per attack
with open(A.bin, "rb") as _f:
    if b"__asan_init" in _f.read():
        # ASan keeps freed memory in quarantine (256 MiB by default): under
        # `make check` memory is ASan's to judge (leaks fail at exit).
        RSS_SLACK_KIB = 1024 * 1024


class Server:
    def __init__(self, env_extra=None):
        self.tmp = tempfile.mkdtemp(prefix="cllama-hostile-")
        self.models = os.path.join(self.tmp, "models")
        os.makedirs(os.path.join(self.models, "blobs"))
        os.makedirs(os.path.join(self.models, "manifests"))
        portfile = os.path.join(self.tmp, "port")
        env = dict(os.environ, OLLAMA_MODELS=self.models, OLLAMA_HOST="127.0.0.1:0",
                   CLLAMA_PORT_FILE=portfile, HOME=self.tmp)
        env.update(env_extra or {})
        self.log = open(os.path.join(self.tmp, "server.log"), "w")
        self.p = subprocess.Popen([A.bin, "serve"], env=env, stderr=self.log,
                                  stdout=subprocess.DEVNULL)
        for _ in range(1000):
            if os.path.exists(portfile) and open(portfile).read().strip():
                break
            if self.p.poll() is not None:
                raise RuntimeError("server exited at start")
            time.sleep(0.01)
        self.port = int(open(portfile).read())

    def rss_fds(self):
        rss = 0
        with open("/proc/%d/status" % self.p.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
        return rss, len(os.listdir("/proc/%d/fd" % self.p.pid))

    def alive(self):
        return self.p.poll() is None

    def stop(self):
        """SIGTERM; returns the exit status (a sanitizer's leak report makes
        it non-zero), or None when it had to be killed."""
        rc = None
        if self.alive():
            self.p.send_signal(signal.SIGTERM)
            try:
                rc = self.p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        else:
            rc = self.p.poll()
        (os.environ.get("CLLAMA_HOSTILE_KEEP") or shutil.rmtree(self.tmp, ignore_errors=True))
        return rc


def conn(port, timeout=10):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_all(s, limit=1 << 22):
    out = b""
    try:
        while len(out) < limit:
            d = s.recv(65536)
            if not d:
                break
            out += d
    except (socket.timeout, ConnectionResetError):
        pass
    return out


def status_of(data):
    try:
        return int(data.split(b" ", 2)[1])
    except Exception:
        return 0


def http(port, method, path, body=None, headers=None, timeout=60):
    s = conn(port, timeout)
    b = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    h = "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" % (method, path)
    for k, v in (headers or {}).items():
        h += "%s: %s\r\n" % (k, v)
    if b is not None:
        h += "Content-Type: application/json\r\nContent-Length: %d\r\n" % len(b)
    s.sendall(h.encode() + b"\r\n" + (b or b""))
    data = read_all(s)
    s.close()
    head, _, rest = data.partition(b"\r\n\r\n")
    return status_of(data), head, rest


def raw(port, payload, shut=False, timeout=5):
    s = conn(port, timeout)
    s.sendall(payload)
    if shut:
        s.shutdown(socket.SHUT_WR)
    data = read_all(s)
    s.close()
    return data


def healthy(srv):
    """The server answers correctly: version, tags with the model, a generate."""
    st, _, body = http(srv.port, "GET", "/api/version")
    if st != 200 or b"version" not in body:
        return "version: %d" % st
    st, _, body = http(srv.port, "GET", "/api/tags")
    if st != 200 or b"stories" not in body:
        return "tags: %d %r" % (st, body[:100])
    st, _, body = http(srv.port, "POST", "/api/generate",
                       {"model": "stories", "prompt": "Once", "stream": False,
                        "options": {"num_predict": 3, "temperature": 0}})
    if st != 200 or b"response" not in body:
        return "generate: %d %r" % (st, body[:200])
    return None


# ---------------------------------------------------------------- attacks
# Each returns None when the server behaved, else what went wrong.

def a_upgrade_h2c(srv):
    d = raw(srv.port, b"GET /api/version HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade, "
            b"HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n"
            b"GET /api/version HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    if status_of(d) != 200 or b"Connection: close" not in d or d.count(b"HTTP/1.1") != 1:
        return "answer %r" % d[:120]


def a_upgrade_websocket(srv):
    d = raw(srv.port, b"GET /api/version HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\n"
            b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n\x81\x85\x37\xfa\x21\x3d\x7f")
    if status_of(d) == 101 or b"Connection: close" not in d:
        return "answer %r" % d[:120]


def a_connect(srv):
    d = raw(srv.port, b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
    if status_of(d) in (0, 200, 101):
        return "answer %r" % d[:120]


def a_curl_http2(srv):
    url = "http://127.0.0.1:%d/api/version" % srv.port
    r = subprocess.run(["curl", "-s", "--http2", "-o", "/dev/null", "-o", "/dev/null",
                        "-w", "%{http_code}\n",
                        url, url], capture_output=True, text=True, timeout=20)
    if r.returncode != 0 or r.stdout.split() != ["200", "200"]:
        return "curl rc %d: %r" % (r.returncode, r.stdout)


def a_chunk_no_crlf(srv):
    d = raw(srv.port, b"POST /api/show HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked"
            b"\r\n\r\n5\r\n{\"a\":XX0\r\n\r\n")
    if status_of(d) != 400:
        return "status %d" % status_of(d)


def a_chunk_size_overflow(srv):
    d = raw(srv.port, b"POST /api/show HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked"
            b"\r\n\r\nffffffffffffffffffff\r\nx\r\n0\r\n\r\n")
    if status_of(d) not in (400, 413):
        return "status %d" % status_of(d)


def a_cl_te_smuggling(srv):
    d = raw(srv.port, b"POST /api/show HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 4\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /api/tags HTTP/1.1\r\nHost: x\r\n\r\n")
    if status_of(d) != 400 or d.count(b"HTTP/1.1 ") != 1:
        return "answer %r" % d[:120]


def a_oversized_head(srv):
    d = raw(srv.port, b"GET /api/version HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 200000 +
            b"\r\n\r\n")
    if status_of(d) != 431:
        return "status %d" % status_of(d)


def a_oversized_body(srv):
    s = conn(srv.port)
    s.sendall(b"POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10000000000\r\n\r\n")
    d = read_all(s)
    s.close()
    if status_of(d) != 413:
        return "status %d" % status_of(d)


def a_deep_json(srv):
    for body in (b"[" * 200000, b'{"a":' * 100000, b'{"model":"stories","messages":' +
                 b"[" * 50000):
        st, _, _ = http(srv.port, "POST", "/api/chat", body)
        if st != 400:
            return "status %d" % st


def a_path_traversal(srv):
    cases = [("POST", "/api/show", {"model": "../../../etc/passwd"}),
             ("POST", "/api/show", {"model": "..%2f..%2fetc/passwd"}),
             ("DELETE", "/api/delete", {"model": "../blobs/x"}),
             ("POST", "/api/copy", {"source": "stories", "destination": "../../x"}),
             ("POST", "/api/create", {"model": "../../x", "from": "stories"}),
             ("POST", "/api/pull", {"model": "127.0.0.1:1/../../x", "insecure": True}),
             ("HEAD", "/api/blobs/sha256:..%2f..%2fetc%2fpasswd", None),
             ("POST", "/api/blobs/sha256:../../../../tmp/x", b"x"),
             ("POST", "/api/create", {"model": "x", "files": {"../../m.gguf": "sha256:" + "0" * 64}})]
    for m, p, b in cases:
        st, _, body = http(srv.port, m, p, b)
        if st not in (400, 404, 405):
            return "%s %s -> %d %r" % (m, p, st, body[:100])
    if os.path.exists("/tmp/x") and os.path.getmtime("/tmp/x") > time.time() - 60:
        return "a file was written outside the store"


def a_create_fifo_devices(srv):
    fifo = os.path.join(srv.tmp, "fifo")
    os.mkfifo(fifo)
    secret = os.path.join(srv.tmp, "secret.txt")
    open(secret, "w").write("root:x:0:0\n")
    for path in (fifo, "/dev/zero", "/dev/urandom", secret, "/etc/passwd", srv.tmp):
        st, _, body = http(srv.port, "POST", "/api/create",
                           {"model": "evil", "from": path, "stream": False}, timeout=15)
        if st != 400:
            return "%s -> %d %r" % (path, st, body[:100])
        if srv.tmp.encode() in body:
            return "error names a server path: %r" % body[:200]
    names = os.listdir(os.path.join(srv.models, "blobs"))
    if any("partial" in n or "tmp" in n for n in names):
        return "left %r" % names


def a_options_not_object(srv):
    st, _, body = http(srv.port, "POST", "/api/generate",
                       {"model": "stories", "prompt": "x", "options": [1]})
    if st != 400:
        return "status %d %r" % (st, body[:100])


def a_reset_mid_head(srv):
    for _ in range(500):
        s = conn(srv.port)
        s.sendall(b"POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\nX-")
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
        s.close()


def a_half_close(srv):
    body = json.dumps({"model": "stories", "input": "hello"}).encode()
    d = raw(srv.port, b"POST /api/embed HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n"
            % len(body) + body, shut=True, timeout=30)
    final = [p for p in d.split(b"HTTP/1.1 ")[1:] if not p.startswith(b"1")]
    if not final or not final[0].startswith(b"200") or b"embeddings" not in d:
        return "answer %r" % d[:200]


def a_pipeline_no_read(srv):
    s = conn(srv.port)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    req = b"GET /api/tags HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    s.setblocking(False)
    sent = 0
    try:
        for _ in range(20000):
            sent += s.send(req)
    except BlockingIOError:
        pass
    time.sleep(1.0)
    err = healthy(srv)
    s.close()
    return err


def a_slowloris(srv):
    socks = []
    for _ in range(300):
        s = conn(srv.port)
        s.sendall(b"GET /api/version HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        socks.append(s)
    for _ in range(3):
        for s in socks:
            try:
                s.sendall(b"X-a: b\r\n")
            except OSError:
                pass
        err = healthy(srv)
        if err:
            break
        time.sleep(0.5)
    for s in socks:
        s.close()
    return err


def a_2000_connections(srv):
    socks = []
    try:
        for _ in range(2000):
            socks.append(conn(srv.port))
        err = healthy(srv)
    finally:
        for s in socks:
            s.close()
    return err


def a_disconnect_storm(srv):
    body = json.dumps({"model": "stories", "stream": True, "prompt": "Once upon a time",
                       "options": {"num_predict": 200}}).encode()
    req = (b"POST /api/generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n"
           % len(body) + body)
    socks = []
    for i in range(60):
        s = conn(srv.port)
        s.sendall(req)
        socks.append(s)
    for i, s in enumerate(socks):
        try:
            s.recv(200)
        except OSError:
            pass
        if i % 2:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
        s.close()


def a_big_embed_batch(srv):
    st, _, body = http(srv.port, "POST", "/api/embed",
                       {"model": "stories", "input": ["t%d" % i for i in range(50)]})
    if st != 200:
        return "status %d %r" % (st, body[:100])


def a_upload_abandoned(srv):
    """Blob uploads cut off mid-body (close and reset): no temporary stays."""
    for reset in (False, True):
        s = conn(srv.port)
        s.sendall(b"POST /api/blobs/sha256:" + b"ab" * 32 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  b"Content-Length: 100000000\r\n\r\n")
        for _ in range(100):
            s.sendall(b"x" * 65536)
        if reset:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
        s.close()
    for _ in range(100):
        left = [n for n in os.listdir(os.path.join(srv.models, "blobs")) if "tmp" in n]
        if not left:
            return None
        time.sleep(0.1)
    return "temporaries left: %r" % left


ATTACKS = [
    ("Upgrade: h2c + next request", a_upgrade_h2c),
    ("Upgrade: websocket + frames", a_upgrade_websocket),
    ("CONNECT + TLS bytes", a_connect),
    ("curl --http2 URL URL", a_curl_http2),
    ("chunk data without CRLF", a_chunk_no_crlf),
    ("chunk-size overflow", a_chunk_size_overflow),
    ("CL+TE smuggling", a_cl_te_smuggling),
    ("oversized head (200 KB)", a_oversized_head),
    ("oversized body (10 GB CL)", a_oversized_body),
    ("deep JSON nesting", a_deep_json),
    ("path traversal names/digests", a_path_traversal),
    ("create from FIFO/dev/non-GGUF", a_create_fifo_devices),
    ("options not an object", a_options_not_object),
    ("RST mid-head x500", a_reset_mid_head),
    ("half-close (SHUT_WR)", a_half_close),
    ("pipelining, never reading", a_pipeline_no_read),
    ("slowloris x300", a_slowloris),
    ("2,000 connections", a_2000_connections),
    ("disconnect storm mid-stream x60", a_disconnect_storm),
    ("embed batch > OLLAMA_MAX_QUEUE", a_big_embed_batch),
    ("blob uploads cut off mid-body", a_upload_abandoned),
]


KEY = "hostile-test-key-0123456789"


def access_control():
    """A server with CLLAMA_API_KEYS and a test certificate: plain HTTP on its
    port is refused, no/wrong key is 401 with Ollama's JSON error, / and
    /api/version are open, the right key works over TLS, and the CLI passes
    OLLAMA_API_KEY."""
    d = tempfile.mkdtemp(prefix="cllama-tls-")
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
                        "-days", "1", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=IP:127.0.0.1"], capture_output=True)
    if r.returncode != 0:
        return "openssl: %r" % r.stderr[:200]
    srv = Server({"CLLAMA_API_KEYS": "other-key-aaaaaaaaaaaaaaaa," + KEY,
                  "CLLAMA_TLS_CERT": cert, "CLLAMA_TLS_KEY": key})
    try:
        d0 = raw(srv.port, b"GET /api/tags HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        if status_of(d0) != 400 or b"HTTPS" not in d0:
            return "plain HTTP on the TLS port: %r" % d0[:100]
        ctx = ssl.create_default_context(cafile=cert)

        def tls(path, auth=None):
            s = ctx.wrap_socket(conn(srv.port), server_hostname="127.0.0.1")
            h = "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" % path
            if auth:
                h += "Authorization: Bearer %s\r\n" % auth
            s.sendall(h.encode() + b"\r\n")
            out = read_all(s)
            s.close()
            return status_of(out), out.partition(b"\r\n\r\n")[2]

        for auth in (None, "wrong", KEY[:-1], KEY + "x"):
            st, body = tls("/api/tags", auth)
            if st != 401 or json.loads(body) != {"error": "unauthorized"}:
                return "key %r: %d %r" % (auth, st, body[:100])
        st, _ = tls("/api/tags", KEY)
        if st != 200:
            return "right key: %d" % st
        for path in ("/", "/api/version"):
            st, _ = tls(path)
            if st != 200:
                return "%s without a key: %d" % (path, st)
        # The CLI over TLS: the scheme of OLLAMA_HOST is kept, SSL_CERT_FILE
        # names the CA (as for Go's clients) and OLLAMA_API_KEY the key.
        env = dict(os.environ, OLLAMA_HOST="https://127.0.0.1:%d" % srv.port,
                   SSL_CERT_FILE=cert)
        env.pop("OLLAMA_API_KEY", None)
        bad = subprocess.run([A.bin, "list"], env=env, capture_output=True, text=True, timeout=20)
        env["OLLAMA_API_KEY"] = KEY
        good = subprocess.run([A.bin, "list"], env=env, capture_output=True, text=True, timeout=20)
        if bad.returncode == 0 or "unauthorized" not in bad.stderr:
            return "cllama list over TLS without OLLAMA_API_KEY: rc %d %r" % (
                bad.returncode, (bad.stdout + bad.stderr)[:200])
        if good.returncode != 0 or not good.stdout.startswith("NAME"):
            return "cllama list over TLS with OLLAMA_API_KEY: rc %d %r" % (
                good.returncode, (good.stdout + good.stderr)[:200])
        if not srv.alive():
            return "server died"
    finally:
        srv.stop()
        shutil.rmtree(d, ignore_errors=True)
    return None


def settle(srv, base_fds, timeout=10):
    t0 = time.time()
    rss, fds = srv.rss_fds()
    while fds > base_fds and time.time() - t0 < timeout:
        time.sleep(0.1)
        rss, fds = srv.rss_fds()
    return rss, fds


def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    srv = Server({"OLLAMA_MAX_QUEUE": "4"})
    gguf = os.path.realpath(os.path.join(A.shared, "models", "stories260K-f32.gguf"))
    st, _, body = http(srv.port, "POST", "/api/create",
                       {"model": "stories", "from": gguf, "template": "{{ .Prompt }}",
                        "stream": False})
    if st != 200:
        print("setup: create failed: %d %r" % (st, body))
        return 1
    err = healthy(srv)  # warm: the model is loaded once
    if err:
        print("setup: " + err)
        return 1
    rows = []
    failed = 0
    for name, fn in ATTACKS:
        if A.only and A.only not in name:
            continue
        if not srv.alive():
            rows.append((name, "SKIP (server gone)", 0, 0, 0, 0))
            failed += 1
            continue
        rss0, fds0 = srv.rss_fds()
        try:
            err = fn(srv)
        except Exception as e:  # noqa
            err = "client error: %r" % e
        if err is None:
            if not srv.alive():
                err = "server died (rc %s)" % srv.p.poll()
            else:
                err = healthy(srv)
        rss1, fds1 = settle(srv, fds0) if srv.alive() else (0, 0)
        if err is None and fds1 > fds0:
            err = "descriptors %d -> %d" % (fds0, fds1)
        if err is None and rss1 > rss0 + RSS_SLACK_KIB:
            err = "RSS grew %d KiB" % (rss1 - rss0)
        result = "ok" if err is None else "FAIL: " + err
        failed += err is not None
        rows.append((name, result, rss0, rss1, fds0, fds1))
    alive = srv.alive()
    rc = srv.stop()
    if alive and rc != 0:
        rows.append(("clean exit after SIGTERM", "FAIL: exit status %s" % rc, 0, 0, 0, 0))
        failed += 1
    if not A.only or "TLS" in A.only or "bearer" in A.only:
        err = access_control()
        rows.append(("bearer keys + TLS server (cllama serve)", "ok" if err is None else
                     "FAIL: " + err, 0, 0, 0, 0))
        failed += err is not None
    w = max(len(r[0]) for r in rows)
    lines = ["%-*s | %-10s | %-22s | %s" % (w, "attack", "result", "RSS KiB before -> after",
                                            "fds before -> after"),
             "-" * (w + 60)]
    for name, result, r0, r1, f0, f1 in rows:
        lines.append("%-*s | %-10s | %9d -> %9d | %4d -> %4d" % (w, name, result, r0, r1, f0, f1))
    lines.append("%d attacks, %d failed; server %s at the end" %
                 (len(rows), failed, "up" if alive else "DOWN"))
    text = "\n".join(lines)
    print(text)
    if A.table:
        with open(A.table, "w") as f:
            f.write(text + "\n")
    return 0 if failed == 0 and alive else 1


sys.exit(main())
