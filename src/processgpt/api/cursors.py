"""Page cursors of the list routes: an opaque text for the ``(time, id)`` of the last item
of a page (newest-first lists ordered by a timestamp, then an id)."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime

from processgpt.domain.errors import InvalidInput


def encode_cursor(at: datetime, item_id: uuid.UUID) -> str:
    """The cursor after the item created (or started) at ``at`` with id ``item_id``."""
    raw = f"{at.isoformat()}|{item_id}"
    return base64.urlsafe_b64encode(raw.encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """What :func:`encode_cursor` encoded; :class:`InvalidInput` (422) for anything else."""
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
        at, _, item_id = text.partition("|")
        return datetime.fromisoformat(at), uuid.UUID(item_id)
    except (ValueError, binascii.Error, UnicodeError):
        raise InvalidInput("cursor is not valid", field="cursor") from None
