"""Reading one file out of a ``multipart/form-data`` request body as it arrives.

:class:`MultipartFile` feeds the request's body to ``python-multipart``'s streaming parser a
network chunk at a time and hands on the data of the part named ``file`` as it is parsed:
no more than one network chunk of the file is held, whatever its size (FastAPI's
``UploadFile`` would spool the whole file first). Other parts are read and dropped; a body
with no ``file`` part, or that is not multipart, is :class:`InvalidInput`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from processgpt.domain.errors import FileTooLarge, InvalidInput

FIELD = "file"


class MultipartFile:
    """The ``file`` part of a request: :meth:`start` reads up to its headers, then
    :meth:`chunks` yields its data."""

    def __init__(self, request: Request, max_body: int) -> None:
        """``max_body``: bytes of the whole body read at most (:class:`FileTooLarge` past
        it; the file's own limit is the caller's)."""
        content_type, options = parse_options_header(request.headers.get("content-type", ""))
        boundary = options.get(b"boundary")
        if content_type != b"multipart/form-data" or not boundary:
            raise InvalidInput(
                "send the file as multipart/form-data with a part named 'file'", field="file"
            )
        self._body = request.stream()
        self._read = 0
        self._max_body = max_body
        self._ready: list[bytes] = []
        self._headers: dict[bytes, bytes] = {}
        self._field = b""
        self._value = b""
        self._in_file = False
        self._file_seen = False
        self._file_done = False
        self._file_headers: dict[bytes, bytes] | None = None
        self._parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._part_begin,
                "on_part_data": self._part_data,
                "on_part_end": self._part_end,
                "on_header_field": self._header_field,
                "on_header_value": self._header_value,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
            },
        )
        self.filename: str | None = None
        self.content_type: str | None = None

    # -- parser callbacks (synchronous, called from write()) --

    def _part_begin(self) -> None:
        self._headers = {}

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._field.lower()] = self._value
        self._field = self._value = b""

    def _headers_finished(self) -> None:
        _disposition, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        if options.get(b"name") == FIELD.encode() and not self._file_seen:
            self._in_file = self._file_seen = True
            self._file_headers = {b"filename": options.get(b"filename", b"")}
            self._file_headers[b"content-type"] = self._headers.get(b"content-type", b"")

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            self._ready.append(data[start:end])

    def _part_end(self) -> None:
        if self._in_file:
            self._in_file = False
            self._file_done = True

    # -- reading --

    async def _feed(self) -> bool:
        """Parse the next network chunk; False at the end of the body."""
        try:
            chunk = await anext(self._body, None)
        except ClientDisconnect:
            raise InvalidInput("the client left before the upload ended", field="file") from None
        if chunk is None:
            return False
        self._read += len(chunk)
        if self._read > self._max_body:
            raise FileTooLarge(f"the request body is over {self._max_body} bytes")
        try:
            self._parser.write(chunk)
        except MultipartParseError:
            raise InvalidInput("the multipart body is malformed", field="file") from None
        return True

    async def start(self) -> None:
        """Read until the ``file`` part's headers (its name and declared type are then set)."""
        while self._file_headers is None:
            if not await self._feed():
                raise InvalidInput("the body has no part named 'file'", field="file")
        self.filename = _text(self._file_headers[b"filename"]) or None
        self.content_type = _text(self._file_headers[b"content-type"]) or None

    async def chunks(self) -> AsyncIterator[bytes]:
        """The ``file`` part's data, as parsed; the rest of the body is read and dropped."""
        while True:
            if self._ready:
                ready, self._ready = self._ready, []
                for piece in ready:
                    if piece:
                        yield piece
            if self._file_done and not self._ready:
                break
            if not await self._feed() and not self._file_done:
                raise InvalidInput("the body ended inside the file part", field="file")
        while await self._feed():
            self._ready.clear()


def _text(value: bytes) -> str:
    return value.decode("utf-8", errors="replace")
