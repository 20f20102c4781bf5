"""Page tokens bound to the query that made them, as real vendors' are: a token sent back
with another filter or order is refused, so a client that re-renders its window per page
fails the way it would against the vendor."""

from __future__ import annotations

import base64
import json
from typing import Any


class BadToken(Exception):
    pass


def bind(position: int, query: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps([position, query], sort_keys=True).encode()
                                    ).decode()


def unbind(token: str, query: Any) -> int:
    """The position a token encodes; BadToken when it is unreadable or made by another query."""
    try:
        position, bound_to = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, TypeError):
        raise BadToken(token) from None
    if query is not None and bound_to != json.loads(json.dumps(query, sort_keys=True)):
        raise BadToken(token)
    return int(position)


def peek(token: str) -> tuple[int, Any]:
    """(position, query) of a token that carries its own query (Canary's cursor)."""
    try:
        position, query = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, TypeError):
        raise BadToken(token) from None
    return int(position), query
