#!/usr/bin/env python3
"""The seed API reference's Python example, run against a cllama server.

Same calls as the reference (chat, streaming chat, list models). Uses
`requests` when it is installed; otherwise a small stand-in on the standard
library that offers the same calls (post(json=, stream=), get, .json(),
.iter_lines()). The server address comes from OLLAMA_URL (default
http://localhost:11434) and the model from SEED_MODEL (default llama2).
Exits 0 when every call gives the documented shape."""
import json
import os
import sys

try:
    import requests
except ImportError:  # stdlib stand-in with the same surface
    import urllib.request

    class _Response:
        def __init__(self, resp):
            self._resp = resp
            self.status_code = resp.status

        def json(self):
            return json.loads(self._resp.read().decode("utf-8"))

        def iter_lines(self):
            for line in self._resp:
                yield line.rstrip(b"\r\n")

    class requests:  # noqa: N801 - mirrors the module name
        @staticmethod
        def post(url, json=None, stream=False):
            data = __import__("json").dumps(json).encode("utf-8")
            req = urllib.request.Request(url, data=data, method="POST",
                                         headers={"Content-Type": "application/json"})
            return _Response(urllib.request.urlopen(req))

        @staticmethod
        def get(url):
            return _Response(urllib.request.urlopen(url))

BASE = os.environ.get("OLLAMA_URL", "http://localhost:11434")
MODEL = os.environ.get("SEED_MODEL", "llama2")


# Chat example
def chat_with_model():
    url = BASE + "/api/chat"
    payload = {
        "model": MODEL,
        "messages": [
            {"role": "user", "content": "What is the capital of France?"}
        ]
    }

    response = requests.post(url, json=payload)
    return response.json()


# Streaming chat example
def stream_chat():
    url = BASE + "/api/chat"
    payload = {
        "model": MODEL,
        "messages": [
            {"role": "user", "content": "Write a short poem about programming."}
        ],
        "stream": True
    }

    response = requests.post(url, json=payload, stream=True)

    text = ""
    for line in response.iter_lines():
        if line:
            json_response = json.loads(line)
            if 'message' in json_response and 'content' in json_response['message']:
                print(json_response['message']['content'], end='')
                text += json_response['message']['content']
    print()
    return text


# List models
def list_models():
    url = BASE + "/api/tags"
    response = requests.get(url)
    return response.json()


def main():
    r = chat_with_model()
    assert r["done"] is True, r
    assert r["message"]["role"] == "assistant", r
    assert isinstance(r["message"]["content"], str) and r["message"]["content"], r
    text = stream_chat()
    assert text, "empty streamed answer"
    tags = list_models()
    names = [m["name"] for m in tags["models"]]
    assert any(n.split(":")[0] == MODEL for n in names), names
    print("seed example: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
