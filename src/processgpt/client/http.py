"""An async Python client of the Execution API (HTTP + SSE), on httpx.

```python
async with ProcessGPTClient("http://127.0.0.1:8000", api_key) as pg:
    task = await pg.create_task("demo", "hello", input={"steps": 2})
    async for part in pg.stream(task.id):          # typed parts; reconnects by itself
        print(part.type, part.seq)
    async for event in pg.follow(task.id):         # or the event log itself, live
        print(event.seq, event.event_type, event.data)
    inst = await pg.start_instance("leave_request", variables={"days": 3})
    async for item in pg.worklist(role="manager"):  # people's open work items
        await pg.complete_task(item.id, {"approval_form": {"decision": "approve"}})
```

Every API error raises :class:`ApiError` with the HTTP status and the stable error ``code``
(``task_not_found``, ``invalid_state``, ``too_many_pending`` with ``retry_after``, …).

Streams survive dropped connections: :meth:`ProcessGPTClient.stream` reconnects with
``Last-Event-ID`` and backoff (:class:`ReconnectPolicy`), and drops exactly the frames the
reader already has, so across any number of drops the parts delivered are the parts of one
uninterrupted stream (see :class:`processgpt.protocols.sse.ResumeCursor`).

By concept: :mod:`.transport` (the connection, errors, resumable streams), :mod:`.task_api`
(tasks, events, orchestrators), :mod:`.process_api` (definitions, instances, worklist),
:mod:`.schedules` (schedules), :mod:`.memories` (long-term memory),
:mod:`.notifications` (notifications and webhooks), :mod:`.files` (files: uploads and
downloads stream).
"""

from __future__ import annotations

from processgpt.client.documents import DocumentCalls
from processgpt.client.files import FileCalls
from processgpt.client.memories import MemoryCalls
from processgpt.client.notifications import NotificationCalls
from processgpt.client.process_api import ProcessApi
from processgpt.client.schedules import ScheduleCalls
from processgpt.client.task_api import SETTLED, TaskApi
from processgpt.client.transport import ApiError, ReconnectPolicy, StreamBroken, TaskId


class ProcessGPTClient(
    TaskApi, ProcessApi, ScheduleCalls, MemoryCalls, NotificationCalls, FileCalls, DocumentCalls
):
    """A client bound to one API and key: every route of the Execution API. Use as an async
    context manager (or call :meth:`aclose`). ``transport`` replaces httpx's (tests,
    proxies). ``timeout``: seconds per request, or an ``httpx.Timeout`` (e.g. a short
    ``connect`` so that an API that is not running is an error at once:
    ``httpx.ConnectError``, or ``ConnectTimeout``)."""


__all__ = [
    "SETTLED",
    "ApiError",
    "ProcessGPTClient",
    "ReconnectPolicy",
    "StreamBroken",
    "TaskId",
]
