"""Decoding request bodies and queue messages within fixed bounds: size, then nesting depth, then JSON.

``json.loads`` recurses once per nesting level and raises ``RecursionError`` near 1,000 levels (a 500 on
HTTP, a crash-and-retry on the queue). The depth is therefore measured first by a linear scan that never
recurses, and nothing deeper than ``MAX_JSON_DEPTH`` is decoded. A capture request nests three levels; the
bounds leave ample room and are named in every refusal.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

MAX_BODY_BYTES = 256 * 1024
MAX_JSON_DEPTH = 32

# The only characters that change depth or string state; everything else is skipped by the regex engine.
_TOKENS = re.compile(r'[\[\]{}"\\]')


@dataclass(frozen=True)
class BodyProblem:
    """Why a body was not decoded: ``reason`` (TooLarge | NotText | TooDeep | NotJson), a sentence, a status."""

    reason: str
    message: str
    status: int = 400


def json_depth(text: str, limit: int = MAX_JSON_DEPTH) -> int:
    """The nesting depth of JSON ``text`` (arrays and objects), counted up to ``limit + 1`` at most.

    Linear in the text: brackets inside strings (and escaped quotes) do not count. Invalid JSON gets some
    depth too; ``json.loads`` refuses it afterwards.
    """
    depth = deepest = 0
    in_string = False
    skip = -1  # the position of a character escaped by a backslash inside a string
    for m in _TOKENS.finditer(text):
        i = m.start()
        if i == skip:
            continue
        c = m.group()
        if in_string:
            if c == "\\":
                skip = i + 1
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    return deepest
        elif c in "]}":
            depth -= 1
    return deepest


def decode_json(
    raw: bytes | str, *, max_bytes: int = MAX_BODY_BYTES, max_depth: int = MAX_JSON_DEPTH
) -> tuple[Any, BodyProblem | None]:
    """Decode ``raw`` (UTF-8 JSON) within the bounds; return the value, or why not (nothing else raises)."""
    size = len(raw.encode("utf-8", "surrogatepass")) if isinstance(raw, str) else len(raw)
    if size > max_bytes:
        return None, BodyProblem(
            "TooLarge",
            f"the body is {size} bytes; at most {max_bytes} bytes ({max_bytes // 1024} KiB) are accepted",
            413,
        )
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            return None, BodyProblem(
                "NotText", f"the body is not UTF-8 text ({exc.reason} at byte {exc.start})"
            )
    else:
        text = raw
    depth = json_depth(text, max_depth)
    if depth > max_depth:
        return None, BodyProblem(
            "TooDeep",
            f"the JSON nests more than {max_depth} levels of arrays and objects (limit {max_depth})",
        )
    try:
        return json.loads(text), None
    except (ValueError, RecursionError) as exc:
        return None, BodyProblem("NotJson", f"must be a JSON object; it is not valid JSON ({str(exc)[:200]})")
