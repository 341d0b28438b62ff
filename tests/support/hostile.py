"""Malformed and hostile requests for an HTTP JSON endpoint, reproducible from a seed."""

import json
import random

JUNK_CHARS = ["\u0000", "\u202e", "\u200b", "\ufeff", "\U0001F4A5", "\u0301", "\uffff", "\\", '"',
              "\u00e9", "\u4e2d", "\r\n", "\t", "\u2028", "\U000E0001"]


def _junk_text(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(JUNK_CHARS) if rng.random() < 0.5 else chr(rng.randrange(32, 0x2FFF))
                   for _ in range(n))


def requests_for(seed: int, count: int):
    """(method, headers, body bytes) triples; about a fifth are well-formed but odd."""
    rng = random.Random(seed)
    json_type = {"Content-Type": "application/json"}
    makers = [
        # not JSON at all
        lambda: ("POST", json_type, bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))),
        lambda: ("POST", json_type, b'{"question": "unterminated'),
        lambda: ("POST", json_type, b"[" * rng.randrange(1000, 9000)),
        # JSON of the wrong shape or types
        lambda: ("POST", json_type, json.dumps(rng.choice(
            [[], 42, None, "text", {"q": "x"}, {"question": None}, {"question": 12},
             {"question": ["a"]}, {"question": {"a": 1}}, {"question": "ok", "top_k": "3"},
             {"question": "ok", "top_k": 3.5}, {"question": "ok", "top_k": True},
             {"question": "ok", "top_k": -1}, {"question": "ok", "top_k": 10**30},
             {"question": "ok", "extra": 1}, {"question": ""}, {"question": " \t\n"}])).encode()),
        # oversized
        lambda: ("POST", json_type, json.dumps({"question": "a" * rng.choice([2001, 15000])}).encode()),
        lambda: ("POST", json_type, b'{"question": "' + b"x" * rng.choice([20_000, 300_000]) + b'"}'),
        # unicode junk, valid JSON; lone surrogates only as escapes
        lambda: ("POST", json_type, json.dumps({"question": _junk_text(rng, rng.randrange(1, 400))},
                                               ensure_ascii=rng.random() < 0.5).encode()),
        lambda: ("POST", json_type, b'{"question": "\\ud800 lone \\udfff surrogates"}'),
        # wrong method or content type
        lambda: (rng.choice(["GET", "PUT", "DELETE", "PATCH"]), json_type, b'{"question": "x"}'),
        lambda: ("POST", {"Content-Type": rng.choice(["text/plain", "application/x-www-form-urlencoded"])},
                 b"question=x"),
    ]
    return [rng.choice(makers)() for _ in range(count)]
