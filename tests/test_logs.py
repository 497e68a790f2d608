"""Secrets never reach a log line: the handler the CLI installs scrubs every record, whatever
the logger, and uvicorn's own records lose query and credential values at the source."""

from __future__ import annotations

import io
import json
import logging

import pytest

from processgpt import logs
from processgpt.api.server import scrub_server_logs

API_KEY = "pgpt_0123abcd_plantedApiKeySecret-_x"
JWT = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ0ZW5hbnRfaWQiOiJhY21lIn0.c2lnbmF0dXJlLXBsYW50ZWQ"
PASSWORD = "planted-password"
TOKEN = "planted-query-token"
HEADER = "planted-header-value"

MCP_URL = f"http://user:{PASSWORD}@10.0.0.5/mcp?token={TOKEN}"
LINES = [
    # (logger, message, args) as the libraries log them
    ("uvicorn.error", '%s - "WebSocket %s" [accepted]', ("127.0.0.1:5", f"/ws/?api_key={API_KEY}")),
    ("uvicorn.error", "< GET %s HTTP/1.1", (f"/v1/agent_ws/c/?token={JWT}",)),
    ("uvicorn.error", "< %s: %s", ("Authorization", f"Bearer {JWT}")),
    ("uvicorn.error", "< %s: %s", ("X-API-Key", API_KEY)),
    ("mcp.client.streamable_http", "Connecting to StreamableHTTP endpoint: %s", (MCP_URL,)),
    ("httpx2", 'HTTP Request: %s %s "%s"', ("POST", f"http://h/mcp?token={TOKEN}", "200 OK")),
    ("httpcore2.http11", "send_request_headers headers=%r", ([(b"authorization", HEADER)],)),
    ("a2a.client", "headers: %s", (json.dumps({"X-Token": "ok", "Authorization": HEADER}),)),
    ("processgpt.x", "retrying url=%s password=%s", (f"https://{HEADER}@git.example/x", PASSWORD)),
    ("processgpt.x", "a key was presented: %s", (API_KEY,)),
    ("asyncpg", "connect dsn=%s", (f"postgresql://app:{PASSWORD}@db/processgpt",)),
]
PREFIXED = {  # secrets whose name has a prefix, as programs and HTTP libraries print them
    "GITHUB_TOKEN=%s": "planted-gh-token",
    "OPENAI_API_KEY=%s": "planted-openai-key",
    "PGPASSWORD=%s": "planted-pg-password",
    "AWS_SECRET_ACCESS_KEY=%s": "planted-aws-secret",
    "X-Auth-Token: %s": "planted-auth-token",
    "Private-Token: %s": "planted-private-token",
    "X-Goog-Api-Key: %s": "planted-goog-key",
    "env {'GITHUB_TOKEN': '%s'}": "planted-dict-token",
    'headers {"X-Api-Token": "%s"}': "planted-json-token",
}
LINES += [("mcp.server.stderr", message, (value,)) for message, value in PREFIXED.items()]
SECRETS = (API_KEY.split("_", 2)[2], JWT, PASSWORD, TOKEN, HEADER, *PREFIXED.values())


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_every_line_is_scrubbed_whatever_the_logger(fmt: str) -> None:
    handler = logs.handler(fmt)
    stream = io.StringIO()
    handler.setStream(stream)
    for name, message, args in LINES:
        handler.handle(logging.LogRecord(name, logging.DEBUG, __file__, 1, message, args, None))
    try:
        raise RuntimeError(f"cannot connect to http://u:{PASSWORD}@h/?token={TOKEN}")
    except RuntimeError as exc:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), None)
        record.exc_info = (type(exc), exc, exc.__traceback__)
        handler.handle(record)
    output = stream.getvalue()
    for secret in SECRETS:
        assert secret not in output, secret
    assert "api_key=***" in output and "Authorization: ***" in output, output
    assert "pgpt_0123abcd_***" in output  # the public prefix stays, to tell keys apart
    assert "postgresql://app:***@db" in output and "RuntimeError" in output
    assert "GITHUB_TOKEN=***" in output and "X-Goog-Api-Key: ***" in output
    if fmt == "json":
        lines = [json.loads(line) for line in output.splitlines()]  # still valid JSON
        assert len(lines) == len(LINES) + 1 and "exc" in lines[-1]


def test_uvicorn_records_lose_query_and_credential_values_at_the_source() -> None:
    scrub_server_logs()
    scrub_server_logs()  # once is enough, twice is harmless
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    logger = logging.getLogger("uvicorn.error")
    keep = Keep()
    logger.addHandler(keep)
    try:
        for _name, message, args in LINES[:4]:
            logger.warning(message, *args)
    finally:
        logger.removeHandler(keep)
    messages = [record.getMessage() for record in seen]  # no formatter involved
    assert messages[0] == '127.0.0.1:5 - "WebSocket /ws/?api_key=***" [accepted]'
    assert messages[1] == "< GET /v1/agent_ws/c/?token=*** HTTP/1.1"
    assert messages[2:] == ["< Authorization: ***", "< X-API-Key: ***"]
    assert [f for f in logger.filters if type(f).__name__ == "ServerLogScrubber"] != []


def test_plain_words_are_left_alone() -> None:
    text = (
        "task finished task_id=7 fence_token=3 key_file=/d/secret.key; authorization failed "
        "usage max_tokens=100 prompt_tokens: 3 api_key_prefix=pgpt_0123abcd keys=2"
    )
    assert logs.redact(text) == text
