#!/usr/bin/env python3
"""soak.py — mixed load against a real `cllama serve` on 127.0.0.1 for a
while, sampling the server's RSS and descriptor count every SAMPLE seconds.

Load (modest: the machine is shared): chat streams that the client cuts off
at a random point, /api/embed batches, creates and deletes of derived
models, and pulls from the loopback registry fixture
(test/registry_fixture.py) with faults switched on and off (dropped
connections, 500s, a corrupted byte). Only loopback traffic.

Writes, in --out: soak.dat (minute, rss_kib, fds, requests, expected
errors, unexpected errors), soak.log (the unexpected errors) and
soak-summary.txt; bench/soak.sh draws soak.png from soak.dat.

Usage: soak.py --bin build/release/cllama --shared ../shared --minutes 30
"""
import argparse
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ap = argparse.ArgumentParser()
ap.add_argument("--bin", required=True)
ap.add_argument("--shared", required=True)
ap.add_argument("--fixture", default=os.path.join(os.path.dirname(__file__), "..", "test",
                                                  "registry_fixture.py"))
ap.add_argument("--minutes", type=float, default=30)
ap.add_argument("--sample", type=float, default=60)
ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "out"))
ap.add_argument("--workers", type=int, default=1, help="threads per kind of load")
A = ap.parse_args()

LOCK = threading.Lock()
COUNT = {"requests": 0, "expected": 0, "unexpected": 0}
KINDS = {}
STOP = threading.Event()
os.makedirs(A.out, exist_ok=True)
ERRLOG = open(os.path.join(A.out, "soak.log"), "w")


def note(kind, ok, expected=False, detail=""):
    with LOCK:
        COUNT["requests"] += 1
        k = KINDS.setdefault(kind, {"ok": 0, "expected": 0, "unexpected": 0})
        if ok:
            k["ok"] += 1
        elif expected:
            COUNT["expected"] += 1
            k["expected"] += 1
        else:
            COUNT["unexpected"] += 1
            k["unexpected"] += 1
            ERRLOG.write("%s %s %s\n" % (time.strftime("%H:%M:%S"), kind, detail[:300]))
            ERRLOG.flush()


def request(port, method, path, body=None, timeout=120):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path, body=json.dumps(body) if body is not None else None,
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        data = r.read()
        return r.status, data
    finally:
        c.close()


# ------------------------------------------------------------------ setup
tmp = tempfile.mkdtemp(prefix="cllama-soak-")
models = os.path.join(tmp, "models")
os.makedirs(os.path.join(models, "blobs"))
os.makedirs(os.path.join(models, "manifests"))
gguf = os.path.realpath(os.path.join(A.shared, "models", "stories260K-f32.gguf"))
reg_root = os.path.join(tmp, "registry")
for i in range(3):
    subprocess.run([sys.executable, A.fixture, "package", "--root", reg_root, "--name",
                    "library/soak%d:latest" % i, "--gguf", gguf, "--template",
                    "{{ .Prompt }} %d" % i], check=True, stdout=subprocess.DEVNULL)
fx = subprocess.Popen([sys.executable, A.fixture, "serve", "--root", reg_root],
                      stdout=subprocess.PIPE, stderr=open(os.path.join(tmp, "fixture.log"), "w"),
                      text=True)
reg_port = int(fx.stdout.readline().split()[1])
portfile = os.path.join(tmp, "port")
env = dict(os.environ, OLLAMA_MODELS=models, OLLAMA_HOST="127.0.0.1:0",
           CLLAMA_PORT_FILE=portfile, CLLAMA_PULL_RETRY_MS="100", CLLAMA_PULL_STALL_MS="2000",
           CLLAMA_PULL_PART_BYTES="300000", HOME=tmp)
srv = subprocess.Popen([A.bin, "serve"], env=env, stderr=open(os.path.join(tmp, "server.log"), "w"))
for _ in range(3000):  # 60 s (a sanitizer build starts slowly)
    if os.path.exists(portfile) and open(portfile).read().strip():
        break
    if srv.poll() is not None:
        sys.exit("soak: the server exited at start")
    time.sleep(0.02)
port = int(open(portfile).read())

st, body = request(port, "POST", "/api/create",
                   {"model": "stories", "from": gguf, "template": "{{ .Prompt }}", "stream": False})
assert st == 200, body


def rss_fds():
    rss = 0
    with open("/proc/%d/status" % srv.pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return rss, len(os.listdir("/proc/%d/fd" % srv.pid))


# ------------------------------------------------------------------ loads
def chat_streams():
    while not STOP.is_set():
        cut = random.random() < 0.5
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=60)
            b = json.dumps({"model": "stories", "stream": True,
                            "messages": [{"role": "user", "content": "Once upon a time"}],
                            "options": {"num_predict": random.randint(8, 64)}}).encode()
            s.sendall(b"POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                      b"application/json\r\nContent-Length: %d\r\n\r\n" % len(b) + b)
            got = b""
            limit = random.randint(1, 2000) if cut else 1 << 30
            while len(got) < limit:
                d = s.recv(4096)
                if not d:
                    break
                got += d
                if got.endswith(b"0\r\n\r\n"):
                    break
            if cut and random.random() < 0.5:  # a reset rather than a close
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
            s.close()
            ok = got.startswith(b"HTTP/1.1 200")
            note("chat-stream" + (" (cut)" if cut else ""), ok, detail=got[:200].decode("latin1"))
        except Exception as e:
            note("chat-stream", False, detail=repr(e))
        time.sleep(0.05)


def embeds():
    while not STOP.is_set():
        n = random.randint(1, 8)
        try:
            st, body = request(port, "POST", "/api/embed",
                               {"model": "stories", "input": ["text %d" % i for i in range(n)]})
            note("embed", st == 200, detail="%d %s" % (st, body[:200]))
        except Exception as e:
            note("embed", False, detail=repr(e))
        time.sleep(0.2)


def creates():
    i = 0
    while not STOP.is_set():
        i += 1
        name = "derived%d" % (i % 3)
        try:
            st, body = request(port, "POST", "/api/create",
                               {"model": name, "from": "stories", "system": "soak %d" % i,
                                "stream": False})
            note("create", st == 200, detail="%d %s" % (st, body[:200]))
            st, body = request(port, "DELETE", "/api/delete", {"model": name})
            note("delete", st == 200, detail="%d %s" % (st, body[:200]))
        except Exception as e:
            note("create", False, detail=repr(e))
        time.sleep(0.5)


FAULTS = ['{}', '{"close_after":200000,"times":3}', '{"blob_status":500,"blob_status_count":2}',
          '{"flip_at":1000}', '{"blob_status":500,"blob_status_count":1000}']


def pulls():
    i = 0
    while not STOP.is_set():
        i += 1
        fault = random.choice(FAULTS)
        model = "127.0.0.1:%d/library/soak%d" % (reg_port, i % 3)
        try:
            c = http.client.HTTPConnection("127.0.0.1", reg_port, timeout=10)
            c.request("POST", "/_fault", body=fault)
            c.getresponse().read()
            c.close()
            st, body = request(port, "POST", "/api/pull",
                               {"model": model, "insecure": True, "stream": False})
            text = body.decode("utf-8", "replace")
            bad_fault = '"flip_at"' in fault or "1000}" in fault
            ok = st == 200 and "success" in text
            expected = (not ok) and bad_fault and ("digest mismatch" in text or
                                                   "max retries" in text)
            note("pull" + (" (fault)" if fault != '{}' else ""), ok, expected,
                 detail="%s -> %d %s" % (fault, st, text[:200]))
            if ok and random.random() < 0.7:
                st, body = request(port, "DELETE", "/api/delete", {"model": model})
                note("delete", st == 200, detail="%d %s" % (st, body[:200]))
        except Exception as e:
            note("pull", False, detail=repr(e))
        time.sleep(1)


def uploads():
    """Blob uploads (POST /api/blobs): one 2 MiB blob with its digest (stored
    once, then answered 200 at once), and the same bytes under a wrong
    digest (streamed, refused, the temporary removed)."""
    import hashlib
    data = os.urandom(2 << 20)
    good = hashlib.sha256(data).hexdigest()
    while not STOP.is_set():
        for hexd, want in ((good, (200, 201)), ("0" * 64, (400,))):
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                c.request("POST", "/api/blobs/sha256:" + hexd, body=data)
                r = c.getresponse()
                r.read()
                c.close()
                note("blob upload", r.status in want, detail="%s -> %d" % (hexd[:8], r.status))
            except Exception as e:
                note("blob upload", False, detail=repr(e))
        time.sleep(1)


threads = []
for fn in (chat_streams, embeds, creates, pulls, uploads):
    for _ in range(A.workers):
        t = threading.Thread(target=fn, daemon=True)
        t.start()
        threads.append(t)

dat = open(os.path.join(A.out, "soak.dat"), "w")
dat.write("# minute rss_kib fds requests expected_errors unexpected_errors\n")
t0 = time.time()
end = t0 + A.minutes * 60
samples = []
while True:
    rss, fds = rss_fds()
    with LOCK:
        row = (round((time.time() - t0) / 60, 2), rss, fds, COUNT["requests"], COUNT["expected"],
               COUNT["unexpected"])
    samples.append(row)
    dat.write("%.2f %d %d %d %d %d\n" % row)
    dat.flush()
    print("soak: %5.1f min  rss %6d KiB  fds %4d  requests %6d  expected errors %4d  "
          "unexpected %d" % row, flush=True)
    if time.time() >= end or srv.poll() is not None:
        break
    time.sleep(max(0, min(A.sample, end - time.time())))

STOP.set()
for t in threads:
    t.join(timeout=120)
alive = srv.poll() is None
# Quiet again: the last sample after the load stopped.
time.sleep(2)
rss, fds = rss_fds() if alive else (0, 0)
srv.send_signal(signal.SIGTERM)
try:
    rc = srv.wait(timeout=30)
except subprocess.TimeoutExpired:
    srv.kill()
    rc = "killed (did not stop after SIGTERM)"
fx.terminate()
with open(os.path.join(A.out, "soak-summary.txt"), "w") as f:
    first, last = samples[0], samples[-1]
    warm = samples[min(2, len(samples) - 1)]
    lines = [
        "soak: %.1f minutes, %d requests, %d expected errors (injected pull faults), "
        "%d unexpected" % (last[0], COUNT["requests"], COUNT["expected"], COUNT["unexpected"]),
        "server alive through the run: %s; exit after SIGTERM: %s" % (alive, rc),
        "RSS KiB: start %d, after warm-up (min %.0f) %d, end %d, idle after load %d" %
        (first[1], warm[0], warm[1], last[1], rss),
        "fds: start %d, end %d, idle after load %d" % (first[2], last[2], fds),
        "per kind: " + json.dumps(KINDS, sort_keys=True),
    ]
    f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
if not os.environ.get("SOAK_KEEP"):
    shutil.rmtree(tmp, ignore_errors=True)
else:
    print("soak: kept " + tmp)
sys.exit(0 if alive and COUNT["unexpected"] == 0 else 1)
