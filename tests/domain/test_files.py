"""Content types decided from the bytes, names made safe, signed links."""

from __future__ import annotations

import uuid

import pytest

from processgpt.domain.errors import InvalidInput, LinkExpired, LinkInvalid, UnsupportedMediaType
from processgpt.domain.files import (
    DEFAULT_ALLOWED_TYPES,
    OCTET_STREAM,
    clean_name,
    content_disposition,
    decide_content_type,
    parse_file_ids,
    sign_link,
    sniff,
    verify_link,
)

PNG = b"\x89PNG\r\n\x1a\n\x00\x00"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (b"%PDF-1.7\n", "application/pdf"),
        (PNG, "image/png"),
        (b"\xff\xd8\xff\xe0", "image/jpeg"),
        (b"GIF89a", "image/gif"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"PK\x03\x04rest", "application/zip"),
        (b"plain words, caf\xc3\xa9", "text/plain"),
        (b"\xef\xbb\xbfwith a BOM", "text/plain"),
        (b"  <!DOCTYPE html><title>x</title>", "text/html"),
        (b"hello <svg onload=alert(1)>", "text/html"),
        (b"a\x00b", OCTET_STREAM),
        (b"\xff\xfe\xfd not utf-8", OCTET_STREAM),
    ],
)
def test_sniff(head: bytes, kind: str) -> None:
    assert sniff(head) == kind


def test_text_cut_inside_a_character_is_still_text() -> None:
    full = ("é" * 2048).encode()[: 4096 - 1] + b"\xc3"  # 4096 bytes, the last one a lead byte
    assert len(full) == 4096 and sniff(full) == "text/plain"
    # The same bytes in a short file: the file ends there, so it is not text.
    assert sniff(b"abc\xc3") == OCTET_STREAM


def test_declared_type_must_agree_with_the_bytes() -> None:
    allowed = DEFAULT_ALLOWED_TYPES
    assert decide_content_type("image/png", "a.png", PNG, allowed) == "image/png"
    assert decide_content_type(DOCX, "a.docx", b"PK\x03\x04", allowed) == DOCX
    assert decide_content_type("application/json", "a.json", b'{"a": 1}', allowed) == (
        "application/json"
    )
    assert decide_content_type("text/csv; charset=utf-8", "a", b"a,b", allowed) == "text/csv"
    assert decide_content_type(None, "a.md", b"# title", allowed) == "text/markdown"
    assert decide_content_type(None, "noext", b"words", allowed) == "text/plain"
    assert decide_content_type(OCTET_STREAM, "x.txt", PNG, allowed) == "image/png"
    for declared, name, head in [
        ("image/png", "a.png", b"not a png"),
        ("text/plain", "a.txt", b"<script>alert(1)</script>"),
        ("application/pdf", "a.pdf", PNG),
        ("image/png", "a.png", b"PK\x03\x04"),
        (None, "a.html", b"<html></html>"),  # HTML is not allowed by default
        (None, "a.bin", b"\x00\x01"),  # unknown binary is not allowed by default
    ]:
        with pytest.raises(UnsupportedMediaType):
            decide_content_type(declared, name, head, allowed)
    assert decide_content_type(None, "a.bin", b"\x00\x01", [OCTET_STREAM]) == OCTET_STREAM


def test_names_are_cleaned_and_quoted() -> None:
    assert clean_name("../../etc/passwd") == "passwd"
    assert clean_name("C:\\Users\\x\\report.pdf") == "report.pdf"
    assert clean_name("a\x00b\r\nc.txt") == "abc.txt"
    assert (
        clean_name("...") == "file" and clean_name(None) == "file" and clean_name(".env") == "env"
    )
    assert len(clean_name("x" * 1000)) == 255
    header = content_disposition('rapport "final" ✓.pdf')
    assert header.startswith("attachment; filename=\"rapport 'final' _.pdf\"")
    assert "filename*=UTF-8''rapport%20%22final%22%20%E2%9C%93.pdf" in header


def test_file_ids() -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    assert parse_file_ids([str(a), str(b), str(a)], "input.files") == [a, b]
    for bad in ["x", [1], ["nope"], [str(a)] * 0 + [str(uuid.uuid4()) for _ in range(21)]]:
        with pytest.raises(InvalidInput):
            parse_file_ids(bad, "input.files")


def test_links() -> None:
    key, old, other = b"k" * 32, b"o" * 32, b"x" * 32
    file_id = uuid.uuid4()
    signature = sign_link(key, "acme", file_id, 1000)
    verify_link([key], "acme", file_id, 1000, signature, now=999)
    verify_link([key, old], "acme", file_id, 1000, sign_link(old, "acme", file_id, 1000), now=0)
    for args in [
        ([other], "acme", file_id, 1000, signature),
        ([key], "globex", file_id, 1000, signature),
        ([key], "acme", uuid.uuid4(), 1000, signature),
        ([key], "acme", file_id, 1001, signature),
        ([key], "acme", file_id, 1000, signature[:-1] + "A"),
    ]:
        with pytest.raises(LinkInvalid):
            verify_link(*args, now=0)  # type: ignore[arg-type]
    with pytest.raises(LinkExpired):
        verify_link([key], "acme", file_id, 1000, signature, now=1000)
