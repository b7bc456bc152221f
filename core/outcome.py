"""What a request may say about its writes when the database connection is lost.

Three cases, told apart here for ``accounts.middleware.DatabaseUnavailableMiddleware``:

- the connection failed before COMMIT: the server rolls the transaction back, so *nothing was
  saved* (the only case where that sentence is true);
- the connection failed while COMMIT was in flight (the COMMIT itself raised): the server may
  have committed or not, and the application cannot know: the outcome is *unknown*, and the
  user must reload to see it (``CommitOutcomeUnknown``);
- the COMMIT succeeded and the connection failed afterwards, while the answer was being built:
  the change *was saved* (``committed_in_this_request``).

``atomic_commit`` is ``transaction.atomic`` for a service whose commit must be told apart this
way (the randomisation); the middleware also recognises a failing COMMIT of any other
transaction by its traceback.
"""
from __future__ import annotations

import contextvars
from dataclasses import dataclass

from django.db import InterfaceError, OperationalError, transaction


class CommitOutcomeUnknown(OperationalError):
    """The connection failed during COMMIT: the transaction may or may not be committed."""


@dataclass
class _RequestWrites:
    committed: bool = False


_writes: contextvars.ContextVar[_RequestWrites | None] = contextvars.ContextVar(
    "ctms_request_writes", default=None)


def start_request() -> contextvars.Token:
    """Called by the middleware when a request starts; ``end_request(token)`` when it ends."""
    return _writes.set(_RequestWrites())


def end_request(token: contextvars.Token) -> None:
    _writes.reset(token)


def committed_in_this_request() -> bool:
    state = _writes.get()
    return bool(state and state.committed)


def atomic_commit(fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` in one transaction; a lost connection while it commits raises
    ``CommitOutcomeUnknown`` instead of the driver's error, and a successful commit is noted
    for the request. Nested in an outer transaction, it is a plain savepoint: the outer block
    commits, and its caller tells the outcome."""
    outermost = not transaction.get_connection().in_atomic_block
    body_done = False
    try:
        with transaction.atomic():
            result = fn(*args, **kwargs)
            body_done = True
    except (OperationalError, InterfaceError) as exc:
        if body_done and outermost and not isinstance(exc, CommitOutcomeUnknown):
            raise CommitOutcomeUnknown(str(exc)) from exc
        raise
    if outermost:
        state = _writes.get()
        if state is not None:
            state.committed = True
    return result


def raised_by_commit(exc: BaseException) -> bool:
    """Whether ``exc`` was raised by a COMMIT (Django's ``commit()`` of a connection)."""
    if isinstance(exc, CommitOutcomeUnknown):
        return True
    tb = exc.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        if code.co_name in ("commit", "_commit") and "django/db/backends" in code.co_filename:
            return True
        tb = tb.tb_next
    return False
