#!/usr/bin/python3
"""Checks a Prometheus text exposition (0.0.4) read from a file strictly and
prints its samples as JSON ({"name{label=\"v\",...}": value}).

The file is parsed with prometheus_client's parser (Debian package
python3-prometheus-client) and, on top of it, checked line by line: every
sample's family has # HELP and # TYPE before its first sample, names and
label names are valid, no series appears twice, values are numbers,
counters are not negative, histogram buckets are cumulative with a +Inf
bucket equal to _count. Exit status 2 with a message on the first fault;
3 when prometheus_client is missing."""
import json
import math
import re
import sys

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    print("prometheus_client not installed", file=sys.stderr)
    sys.exit(3)

NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$")


def fail(msg):
    print("prom_check: " + msg, file=sys.stderr)
    sys.exit(2)


def main():
    text = open(sys.argv[1], encoding="utf-8").read()
    if not text.endswith("\n"):
        fail("the exposition does not end with a newline")
    families = list(text_string_to_metric_families(text))
    if not families:
        fail("no metric families")
    helped, typed, seen = set(), {}, set()
    out = {}
    for n, line in enumerate(text.split("\n")[:-1], 1):
        if line.startswith("# HELP "):
            helped.add(line.split(" ")[2])
            continue
        if line.startswith("# TYPE "):
            parts = line.split(" ")
            if len(parts) != 4 or parts[3] not in ("counter", "gauge", "histogram", "summary", "untyped"):
                fail("line %d: bad TYPE line: %r" % (n, line))
            if parts[2] in typed:
                fail("line %d: second TYPE for %s" % (n, parts[2]))
            typed[parts[2]] = parts[3]
            continue
        if line.startswith("#") or not line:
            fail("line %d: unexpected line %r" % (n, line))
        m = SAMPLE.match(line)
        if not m:
            fail("line %d: not a sample: %r" % (n, line))
        name, labels, value = m.group(1), m.group(2) or "", m.group(3)
        family = name
        for suffix in ("_bucket", "_sum", "_count"):
            if name.endswith(suffix) and typed.get(name[: -len(suffix)]) == "histogram":
                family = name[: -len(suffix)]
        if family not in typed or family not in helped:
            fail("line %d: %s has no HELP/TYPE before it" % (n, name))
        if labels:
            inner = labels[1:-1]
            rebuilt = ",".join('%s="%s"' % kv for kv in LABEL.findall(inner))
            if rebuilt != inner:
                fail("line %d: bad labels %r" % (n, labels))
        key = name + labels
        if key in seen:
            fail("line %d: series %s twice" % (n, key))
        seen.add(key)
        try:
            v = float(value)
        except ValueError:
            fail("line %d: value %r is not a number" % (n, value))
        if typed[family] == "counter" and (v < 0 or math.isnan(v)):
            fail("line %d: counter %s is %r" % (n, name, value))
        out[key] = v
    for fam, kind in typed.items():
        if kind != "histogram":
            continue
        buckets = [(k, v) for k, v in out.items() if k.startswith(fam + "_bucket{")]
        les = []
        for k, v in buckets:
            le = re.search(r'le="([^"]*)"', k).group(1)
            les.append((math.inf if le == "+Inf" else float(le), v))
        les.sort()
        if not les or les[-1][0] != math.inf:
            fail("%s has no +Inf bucket" % fam)
        for (a, va), (b, vb) in zip(les, les[1:]):
            if vb < va:
                fail("%s buckets are not cumulative at le=%g" % (fam, b))
        if les[-1][1] != out.get(fam + "_count"):
            fail("%s: +Inf bucket %g != _count %r" % (fam, les[-1][1], out.get(fam + "_count")))
    json.dump(out, sys.stdout)


main()
