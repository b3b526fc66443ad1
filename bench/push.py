#!/usr/bin/env python3
"""bench/push.py — a push of one large blob to the loopback push fixture.

  python3 bench/push.py [CLLAMA_BIN] [MIB] [PART_BYTES]

Builds a throwaway store with one model whose layer is MIB MiB of random
bytes (default 256), starts the fixture (test/registry_push_fixture.py) and
`cllama serve` on it, pushes the model, and prints the upload rate, the
server's peak RSS (the blob is streamed, never held whole) and the latency
of GET / while idle and during the push, with their ratio, measured in this
one run. PART_BYTES sets CLLAMA_PUSH_PART_BYTES (default: the server's
100 MB parts). The fixture is Python and writes every byte to disk, so the
rate is a floor, not cllama's ceiling.
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))


def get_latencies(port, stop, out):
    while not stop[0]:
        t = time.monotonic()
        urllib.request.urlopen("http://127.0.0.1:%d/" % port).read()
        out.append(time.monotonic() - t)
        time.sleep(0.02)


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]


def main():
    binp = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "build/release/cllama")
    mib = int(sys.argv[2]) if len(sys.argv) > 2 else 256
    root = tempfile.mkdtemp(prefix="cllama-push-bench-")
    procs = []
    try:
        blobs = os.path.join(root, "models", "blobs")
        os.makedirs(blobs)
        fx = subprocess.Popen([sys.executable, os.path.join(HERE, "..", "test/registry_push_fixture.py"),
                               "serve", "--root", os.path.join(root, "reg")], stdout=subprocess.PIPE, text=True)
        procs.append(fx)
        fport = int(fx.stdout.readline().split()[1])
        h = hashlib.sha256()
        tmp = os.path.join(blobs, "tmp")
        with open(tmp, "wb") as f:
            chunk = os.urandom(1 << 20)
            for _ in range(mib):
                f.write(chunk)
                h.update(chunk)
        layer = h.hexdigest()
        os.rename(tmp, os.path.join(blobs, "sha256-" + layer))
        cfg_bytes = b'{"model_format":"gguf","model_family":"llama"}'
        cfg = hashlib.sha256(cfg_bytes).hexdigest()
        with open(os.path.join(blobs, "sha256-" + cfg), "wb") as f:
            f.write(cfg_bytes)
        man = {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
               "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                          "digest": "sha256:" + cfg, "size": len(cfg_bytes)},
               "layers": [{"mediaType": "application/vnd.ollama.image.model",
                           "digest": "sha256:" + layer, "size": mib << 20}]}
        mdir = os.path.join(root, "models", "manifests", "127.0.0.1:%d" % fport, "bench", "big")
        os.makedirs(mdir)
        with open(os.path.join(mdir, "latest"), "w") as f:
            json.dump(man, f)
        env = dict(os.environ, OLLAMA_MODELS=os.path.join(root, "models"), OLLAMA_HOST="127.0.0.1:0", HOME=root)
        if len(sys.argv) > 3:
            env["CLLAMA_PUSH_PART_BYTES"] = sys.argv[3]
        srv = subprocess.Popen([binp, "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        procs.append(srv)
        sport = None
        while sport is None:
            line = srv.stdout.readline()
            if not line:
                sys.exit("the server did not start")
            if "listening on" in line:
                sport = int(line.split("listening on ")[1].split()[0].rsplit(":", 1)[1])
        idle, busy, stop = [], [], [False]
        th = threading.Thread(target=get_latencies, args=(sport, stop, idle))
        th.start()
        time.sleep(1.0)
        stop[0] = True
        th.join()
        stop = [False]
        th = threading.Thread(target=get_latencies, args=(sport, stop, busy))
        th.start()
        body = json.dumps({"model": "127.0.0.1:%d/bench/big" % fport, "insecure": True, "stream": False})
        t0 = time.monotonic()
        out = urllib.request.urlopen(urllib.request.Request("http://127.0.0.1:%d/api/push" % sport,
                                                            data=body.encode()), timeout=3600).read()
        dt = time.monotonic() - t0
        stop[0] = True
        th.join()
        with open("/proc/%d/status" % srv.pid) as f:
            hwm = [l.split()[1] for l in f if l.startswith("VmHWM")][0]
        print("push: %s" % out.decode().strip())
        print("%d MiB in %.2f s: %.0f MiB/s; server peak RSS %.1f MiB" % (mib, dt, mib / dt, int(hwm) / 1024))
        print("GET / median: idle %.2f ms, during the push %.2f ms (x%.2f); max during the push %.1f ms"
              % (median(idle) * 1e3, median(busy) * 1e3, median(busy) / median(idle), max(busy) * 1e3))
    finally:
        for p in procs:
            p.terminate()
            p.wait()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
