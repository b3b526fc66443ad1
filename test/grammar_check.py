#!/usr/bin/env python3
"""grammar_check.py BASE MODEL N — structured outputs against a live server.

For each schema below, N generations (seeds and temperatures vary, so the
outputs differ; streaming and not; /api/generate, /api/chat and
/v1/chat/completions in turn) must parse and validate against the schema
with a real validator (python3-jsonschema, formats checked), and end with
done_reason / finish_reason "stop". format "json" must always give an
object. Bad formats and unsupported keywords must be 400s naming the
problem. Exit status 0 when everything holds; failures are printed."""
import json
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import jsonschema

BASE, MODEL, N = sys.argv[1], sys.argv[2], int(sys.argv[3])
NUM_PREDICT = 96

SCHEMAS = {
    "nested": {
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 12},
            "address": {
                "type": "object",
                "properties": {
                    "city": {"type": "string"},
                    "zip": {"type": "integer", "minimum": 10000, "maximum": 99999},
                },
                "required": ["city", "zip"],
                "additionalProperties": False,
            },
            "active": {"type": "boolean"},
        },
        "required": ["name", "address"],
        "additionalProperties": False,
    },
    "array_bounds": {
        "type": "object",
        "properties": {
            "scores": {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 4},
            "tags": {"type": "array", "items": {"type": "string", "maxLength": 5}, "maxItems": 3},
        },
        "required": ["scores", "tags"],
    },
    "enums": {
        "type": "object",
        "properties": {
            "color": {"enum": ["red", "green", "blue"]},
            "size": {"enum": [1, 2, 3, None]},
            "kind": {"const": "shirt"},
        },
        "required": ["color", "size", "kind"],
    },
    "anyof": {
        "type": "object",
        "properties": {
            "value": {
                "anyOf": [
                    {"type": "integer", "minimum": -5, "maximum": 5},
                    {"type": "string", "minLength": 1, "maxLength": 8},
                    {"type": "null"},
                ]
            },
            "either": {"type": ["boolean", "array"], "items": {"type": "integer"}, "maxItems": 2},
        },
        "required": ["value", "either"],
    },
    "recursive_ref": {
        "$defs": {
            "node": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer", "minimum": 0, "maximum": 999},
                    "children": {"type": "array", "items": {"$ref": "#/$defs/node"}, "maxItems": 2},
                },
                "required": ["id"],
                "additionalProperties": False,
            }
        },
        "$ref": "#/$defs/node",
    },
    "int_ranges": {
        "type": "object",
        "properties": {
            "age": {"type": "integer", "minimum": 0, "maximum": 130},
            "delta": {"type": "integer", "exclusiveMinimum": -50, "exclusiveMaximum": 50},
            "big": {"type": "integer", "minimum": 1000},
        },
        "required": ["age", "delta", "big"],
    },
    "pattern_format": {
        "type": "object",
        "properties": {
            "code": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{2,4}$"},
            "day": {"type": "string", "format": "date"},
            "id": {"type": "string", "format": "uuid"},
            "mail": {"type": "string", "format": "email"},
        },
        "required": ["code", "day", "id", "mail"],
    },
}

FMT = jsonschema.FormatChecker()
TEMPS = [0.0, 0.5, 0.9, 1.3]


def post(path, body, stream):
    req = urllib.request.Request(BASE + path, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            raw = r.read().decode()
            status = r.status
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    return status, raw


def generate(name, schema, k):
    """One generation; returns an error string or None."""
    stream = k % 2 == 1
    opts = {"seed": 1000 * k + len(name), "temperature": TEMPS[k % 4], "num_predict": NUM_PREDICT}
    route = k % 3
    if route == 0:
        body = {"model": MODEL, "prompt": "Reply in JSON.", "format": schema, "stream": stream,
                "options": opts}
        status, raw = post("/api/generate", body, stream)
    elif route == 1:
        body = {"model": MODEL, "messages": [{"role": "user", "content": "Reply in JSON."}],
                "format": schema, "stream": stream, "options": opts}
        status, raw = post("/api/chat", body, stream)
    else:
        rf = ({"type": "json_object"} if schema == "json" else
              {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}})
        body = {"model": MODEL, "messages": [{"role": "user", "content": "Reply in JSON."}],
                "response_format": rf, "stream": stream, "seed": opts["seed"],
                "temperature": opts["temperature"], "max_tokens": NUM_PREDICT}
        status, raw = post("/v1/chat/completions", body, stream)
    if status != 200:
        return f"HTTP {status}: {raw[:300]}"
    text, reason = "", None
    if route < 2:
        lines = [json.loads(l) for l in raw.splitlines() if l.strip()] if stream else [json.loads(raw)]
        for o in lines:
            text += o.get("response", "") if route == 0 else o.get("message", {}).get("content", "")
            if o.get("done"):
                reason = o.get("done_reason")
    else:
        if stream:
            for l in raw.splitlines():
                if not l.startswith("data: ") or l == "data: [DONE]":
                    continue
                o = json.loads(l[6:])
                for ch in o.get("choices", []):
                    text += (ch.get("delta") or {}).get("content") or ""
                    if ch.get("finish_reason"):
                        reason = ch["finish_reason"]
        else:
            ch = json.loads(raw)["choices"][0]
            text, reason = ch["message"]["content"], ch["finish_reason"]
    where = f"{name} #{k} route={route} stream={stream} temp={opts['temperature']}"
    if reason != "stop":
        return f"{where}: ended with {reason!r}: {text!r}"
    try:
        val = json.loads(text)
    except ValueError as e:
        return f"{where}: not JSON ({e}): {text!r}"
    if schema == "json":
        if not isinstance(val, dict):
            return f"{where}: not an object: {text!r}"
        return None
    try:
        jsonschema.validate(val, schema, format_checker=FMT)
    except jsonschema.ValidationError as e:
        return f"{where}: invalid ({e.message}): {text!r}"
    return None


def expect_400(body, needle, path="/api/generate"):
    status, raw = post(path, body, False)
    if status != 400:
        return f"{json.dumps(body)[:120]}: status {status}, want 400: {raw[:200]}"
    msg = json.loads(raw).get("error", "")
    if isinstance(msg, dict):
        msg = msg.get("message", "")
    if needle not in msg:
        return f"{json.dumps(body)[:120]}: error {msg!r} lacks {needle!r}"
    return None


def main():
    jobs = [(name, schema, k) for name, schema in SCHEMAS.items() for k in range(N)]
    jobs += [("json", "json", k) for k in range(N)]
    failures, counts = [], {}
    with ThreadPoolExecutor(max_workers=4) as ex:
        for (name, _, _), err in zip(jobs, ex.map(lambda j: generate(*j), jobs)):
            counts[name] = counts.get(name, 0) + 1
            if err:
                failures.append(err)
    # Anthropic structured outputs (output_format) on /v1/messages.
    for k in range(min(10, N)):
        schema = SCHEMAS["nested"]
        status, raw = post("/v1/messages", {
            "model": MODEL, "max_tokens": NUM_PREDICT, "temperature": TEMPS[k % 4],
            "messages": [{"role": "user", "content": "Reply in JSON."}],
            "output_format": {"type": "json_schema", "schema": schema}}, False)
        where = f"anthropic #{k}"
        if status != 200:
            failures.append(f"{where}: HTTP {status}: {raw[:200]}")
            continue
        o = json.loads(raw)
        text = "".join(c.get("text", "") for c in o.get("content", []) if c.get("type") == "text")
        try:
            jsonschema.validate(json.loads(text), schema, format_checker=FMT)
        except (ValueError, jsonschema.ValidationError) as e:
            failures.append(f"{where}: {e}: {text!r}")
        if o.get("stop_reason") != "end_turn":
            failures.append(f"{where}: stop_reason {o.get('stop_reason')!r}")
    base = {"model": MODEL, "prompt": "x", "stream": False}
    for fmt, needle in [("yaml", 'invalid format: "\\"yaml\\""; expected "json" or a valid JSON Schema object'),
                        (123, 'invalid format: "123"'),
                        ({"type": "object", "patternProperties": {"a": {}}}, "patternProperties"),
                        ({"type": "array", "uniqueItems": True}, "uniqueItems"),
                        ({"type": "number", "multipleOf": 2}, "multipleOf"),
                        ({"type": "string", "format": "uri"}, "uri")]:
        for path in ("/api/generate", "/api/chat"):
            b = dict(base, format=fmt)
            if path == "/api/chat":
                b = {"model": MODEL, "messages": [{"role": "user", "content": "x"}], "format": fmt,
                     "stream": False}
            err = expect_400(b, needle, path)
            if err:
                failures.append(err)
    err = expect_400({"model": MODEL, "messages": [{"role": "user", "content": "x"}],
                      "response_format": {"type": "json_schema",
                                          "json_schema": {"name": "x", "schema": {"allOf": [{}]}}}},
                     "allOf", "/v1/chat/completions")
    if err:
        failures.append(err)
    for f in failures[:20]:
        print("FAIL", f)
    print(f"grammar_check: {len(jobs)} generations over {len(counts)} formats and {min(10, N)} on "
          f"/v1/messages, "
          f"{len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
