"""DynamoDB's item operations are atomic; moto's are not. moto applies an UpdateItem to the stored item
in place, checks its condition before it writes without a lock, and numbers a stream record by the
stream's length when it appends it: two writes at once on its threaded server can both pass a condition
only one should, a read can see half an update, and two stream records can get one sequence number (a
reader then reads one of them twice) or land in another order than their writes.

`install` puts every item operation of the embedded emulator under one lock, so that each is atomic and
each write's stream record takes its place in the same order as the write.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

_OPERATIONS = (
    "put_item",
    "update_item",
    "delete_item",
    "get_item",
    "query",
    "scan",
    "transact_write_items",
    "transact_get_items",
    "batch_get_item",
)
_lock = threading.RLock()  # re-entrant: moto's UpdateItem of a new item calls its own PutItem
_installed = False


def install() -> None:
    """Make the in-process emulator's DynamoDB item operations atomic (once per process)."""
    global _installed
    from moto.dynamodb.models import DynamoDBBackend

    with _lock:
        if _installed:
            return
        for name in _OPERATIONS:
            setattr(DynamoDBBackend, name, _atomic(getattr(DynamoDBBackend, name)))
        _installed = True


def _atomic(operation: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(operation)
    def atomic(*args: Any, **kwargs: Any) -> Any:
        with _lock:
            return operation(*args, **kwargs)

    return atomic
