"""A small OpenAI-compatible Chat Completions server for the tests: the only stand-in for the
outside world. It answers ``POST /v1/chat/completions`` from a script and records every request,
and ``POST /v1/embeddings`` with deterministic vectors (:func:`hashed_vector`).

A script is a list of turns, one per request, in order::

    Turn(text="Hello there")                                   # streamed text
    Turn(tool_calls=[("search__lookup", {"q": "mcp"})])        # streamed tool calls
    Turn(status=429, headers={"retry-after": "0"})             # an HTTP error
    Turn(status=401, error="Incorrect API key provided: …")
    Turn(text="…", match="alpha")   # only for a request whose messages contain "alpha"

A request gets the first turn in the script that it matches (a turn without ``match`` matches
any request), so requests sent in parallel can be answered by their content.

Streaming follows OpenAI's format: a role chunk, content deltas a few characters each, tool
calls with their arguments split across chunks, a finish chunk, a usage chunk (when
``stream_options.include_usage``) and ``data: [DONE]``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import re
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


@dataclass
class Turn:
    text: str = ""
    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    status: int = 200
    error: str = "scripted error"
    headers: dict[str, str] = field(default_factory=dict)
    chunk_size: int = 4
    delay: float = 0.0
    """Seconds between chunks (before the whole answer, when not streamed)."""
    match: str | None = None
    """Serve this turn only to a request whose messages contain this text."""


@dataclass
class Recorded:
    body: dict[str, Any]
    headers: dict[str, str]

    @property
    def messages(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = self.body["messages"]
        return messages

    @property
    def tool_names(self) -> list[str]:
        return [t["function"]["name"] for t in self.body.get("tools") or []]


EMBEDDING_DIMENSIONS = 384
_WORD = re.compile(r"\w+")
_HANGUL = re.compile(r"[\uac00-\ud7a3]+")


def hashed_vector(
    text: str, model: str = "", dimensions: int = EMBEDDING_DIMENSIONS
) -> list[float]:
    """A unit bag-of-words vector: each word (and each Hangul character bigram, so Korean
    words match across particles) hashed into ``dimensions`` buckets. Similar texts get
    similar vectors; ``model`` seeds the hash, so two models' vectors are not comparable
    (as with real models)."""
    vector = [0.0] * dimensions
    text = text.casefold()
    for prefix in ("query: ", "passage: "):
        text = text.removeprefix(prefix)
    grams = _WORD.findall(text)
    for word in _HANGUL.findall(text):
        grams += [word[i : i + 2] for i in range(len(word) - 1)]
    for gram in grams:
        digest = hashlib.sha256(f"{model}\x00{gram}".encode()).digest()
        vector[int.from_bytes(digest[:4], "big") % dimensions] += 1.0
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]


class FakeLLM:
    """Serves on 127.0.0.1 (a free port) inside the test's event loop."""

    def __init__(self, script: list[Turn] | None = None) -> None:
        self.script: list[Turn] = list(script or [])
        self.requests: list[Recorded] = []
        self.embedding_requests: list[Recorded] = []
        self.embeddings_status = 200
        """HTTP status of ``/v1/embeddings`` answers (tests set it to simulate an outage)."""
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._sock: socket.socket | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def add(self, *turns: Turn) -> None:
        self.script.extend(turns)

    async def start(self) -> FakeLLM:
        app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._complete, methods=["POST"]),
                Route("/v1/embeddings", self._embed, methods=["POST"]),
            ]
        )
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self._sock = sock
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        deadline = time.monotonic() + 10
        while not self._server.started:
            if self._task.done() or time.monotonic() > deadline:
                raise RuntimeError("the fake LLM server did not start")
            await asyncio.sleep(0.01)
        return self

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await asyncio.wait_for(self._task, 10)
        if self._sock is not None:
            self._sock.close()

    async def _complete(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append(Recorded(body, dict(request.headers)))
        content = json.dumps(body.get("messages"), ensure_ascii=False)
        found = [i for i, t in enumerate(self.script) if t.match is None or t.match in content]
        if not found:
            return _error(400, "the fake LLM's script has no turn for this request", {})
        turn = self.script.pop(found[0])
        if turn.status != 200:
            return _error(turn.status, turn.error, turn.headers)
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        if not body.get("stream"):
            if turn.delay:
                await asyncio.sleep(turn.delay)
            return JSONResponse(_whole(body, turn))
        return StreamingResponse(
            _stream(body, turn, include_usage),
            media_type="text/event-stream",
            headers={"cache-control": "no-cache"},
        )

    async def _embed(self, request: Request) -> Response:
        body = await request.json()
        self.embedding_requests.append(Recorded(body, dict(request.headers)))
        if self.embeddings_status != 200:
            return _error(self.embeddings_status, "scripted embeddings error", {})
        texts = body.get("input")
        texts = [texts] if isinstance(texts, str) else texts
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            return _error(400, "input must be a string or a list of strings", {})
        model = str(body.get("model") or "")
        dimensions = int(body.get("dimensions") or EMBEDDING_DIMENSIONS)
        data = [
            {"object": "embedding", "index": i, "embedding": hashed_vector(t, model, dimensions)}
            for i, t in enumerate(texts)
        ]
        tokens = sum(len(t.split()) for t in texts)
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "model": model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )


def _error(status: int, message: str, headers: dict[str, str]) -> Response:
    return JSONResponse(
        {"error": {"message": message, "type": "scripted", "code": str(status)}},
        status_code=status,
        headers=headers,
    )


def _chunk(body: dict[str, Any], delta: dict[str, Any], finish: str | None = None) -> str:
    payload = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": body.get("model", "fake"),
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return f"data: {json.dumps(payload)}\n\n"


def _usage(body: dict[str, Any]) -> dict[str, int]:
    prompt = sum(len(json.dumps(m)) for m in body.get("messages", [])) // 4
    return {"prompt_tokens": prompt, "completion_tokens": 7, "total_tokens": prompt + 7}


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


async def _stream(body: dict[str, Any], turn: Turn, include_usage: bool) -> AsyncIterator[str]:
    yield _chunk(body, {"role": "assistant", "content": ""})
    for piece in _pieces(turn.text, turn.chunk_size):
        if turn.delay:
            await asyncio.sleep(turn.delay)
        yield _chunk(body, {"content": piece})
    for index, (name, arguments) in enumerate(turn.tool_calls):
        call_id = f"call_{len(body.get('messages', []))}_{index}"
        yield _chunk(
            body,
            {
                "tool_calls": [
                    {
                        "index": index,
                        "id": call_id,
                        "type": "function",
                        "function": {"name": name, "arguments": ""},
                    }
                ]
            },
        )
        for piece in _pieces(json.dumps(arguments), 5):
            yield _chunk(body, {"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
    yield _chunk(body, {}, "tool_calls" if turn.tool_calls else "stop")
    if include_usage:
        usage = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body.get("model", "fake"),
            "choices": [],
            "usage": _usage(body),
        }
        yield f"data: {json.dumps(usage)}\n\n"
    yield "data: [DONE]\n\n"


def _whole(body: dict[str, Any], turn: Turn) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": turn.text or None}
    if turn.tool_calls:
        message["tool_calls"] = [
            {
                "id": f"call_{i}",
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(args)},
            }
            for i, (name, args) in enumerate(turn.tool_calls)
        ]
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "fake"),
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if turn.tool_calls else "stop",
            }
        ],
        "usage": _usage(body),
    }
