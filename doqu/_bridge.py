"""One implementation over both kinds of driver: the greenlet bridge.

doqu's storage code is written once, as plain (synchronous) functions. The async
API (:mod:`doqu._async`) runs each call in a greenlet with :func:`spawn`; where
that code reaches a driver, an async driver's coroutine is handed to the event
loop with :func:`wait`, which suspends the greenlet (not the thread) until the
loop has the result. This is SQLAlchemy's asyncio design (``greenlet_spawn`` /
``await_only``), and the greenlets made here are marked as SQLAlchemy's own, so
its async dialects (aiosqlite, psycopg's ``AsyncConnection``, asyncmy) await
through them unchanged.

The rest are the few primitives whose blocking form would stall the event loop:
:func:`rlock` (a lock that suspends a task, not the thread), :func:`sleep` and
:func:`local` (state per running operation rather than per thread).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any, TypeVar

from ._errors import ConfigError

__all__ = [
    "ASYNC_DRIVERS",
    "bridged",
    "local",
    "rlock",
    "sleep",
    "spawn",
    "uncancelled",
    "wait",
]

T = TypeVar("T")

#: Set while :func:`doqu.connect_async` builds a storage: its backend then opens
#: async drivers (read as :attr:`doqu.backend.Storage.asynchronous`).
ASYNC_DRIVERS: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "doqu_async_drivers", default=False
)

try:
    from greenlet import getcurrent, greenlet  # type: ignore[import-untyped]
except ModuleNotFoundError:  # pragma: no cover - greenlet ships with SQLAlchemy's wheels
    greenlet = None

if greenlet is not None:

    class _Bridged(greenlet):  # type: ignore[misc]
        """A greenlet running one storage call for a task of the event loop."""

        #: SQLAlchemy's async dialects check for this mark before awaiting.
        __sqlalchemy_greenlet_provider__ = True

        def __init__(self, fn: Callable[..., Any], driver: Any) -> None:
            super().__init__(fn, driver)
            # The task's context variables are the call's too.
            self.gr_context = driver.gr_context


async def spawn(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``fn(*args, **kwargs)`` in a greenlet; each :func:`wait` inside it awaits here.

    An exception raised while awaiting (``CancelledError`` when the task is
    cancelled) is thrown into the greenlet at its :func:`wait`, so the storage
    code's ``except``/``finally`` blocks run as they would in a thread.
    """
    if greenlet is None:  # pragma: no cover
        raise ConfigError("doqu's async API needs greenlet: pip install greenlet")
    child = _Bridged(fn, getcurrent())
    result: Any = child.switch(*args, **kwargs)
    while not child.dead:
        try:
            value = await result
        except BaseException as exc:
            result = child.throw(exc)
        else:
            result = child.switch(value)
    return result  # type: ignore[no-any-return]


def bridged() -> bool:
    """Whether the caller runs inside :func:`spawn` (so :func:`wait` may be used)."""
    return greenlet is not None and getattr(getcurrent(), "__sqlalchemy_greenlet_provider__", False)


def wait(awaitable: Awaitable[T]) -> T:
    """The result of *awaitable*, awaited by the event loop that runs this greenlet."""
    current = getcurrent() if greenlet is not None else None
    if not getattr(current, "__sqlalchemy_greenlet_provider__", False):
        if asyncio.iscoroutine(awaitable):
            awaitable.close()
        raise RuntimeError("an async driver was used outside doqu's async API (no greenlet)")
    if getattr(current, "doqu_shielded", 0):
        awaitable = _through(awaitable, current)
    return current.parent.switch(awaitable)  # type: ignore[no-any-return,union-attr]


async def _through(awaitable: Awaitable[T], current: Any) -> T:
    """*awaitable* run to its end even if the task is cancelled meanwhile (the
    cancellation is noted, and raised when the :func:`uncancelled` block ends)."""
    task = asyncio.ensure_future(awaitable)
    while True:
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.cancelled():
                raise
            current.doqu_cancelled = True


@contextlib.contextmanager
def uncancelled() -> Iterator[None]:
    """A block of round trips that must not stop half-way (a multi-batch write on a
    server without transactions): a cancellation of the task meanwhile lets each
    round trip finish, and is raised as ``CancelledError`` at the end of the block.
    Outside the async API it does nothing."""
    if not bridged():
        yield
        return
    current = getcurrent()
    current.doqu_shielded = getattr(current, "doqu_shielded", 0) + 1
    try:
        yield
    finally:
        current.doqu_shielded -= 1
    if not current.doqu_shielded and getattr(current, "doqu_cancelled", False):
        current.doqu_cancelled = False
        raise asyncio.CancelledError


def sleep(seconds: float) -> None:
    """Sleep without blocking the event loop when running for the async API."""
    if bridged():
        wait(asyncio.sleep(seconds))
    else:
        time.sleep(seconds)


class _TaskRLock:
    """A reentrant lock held by one storage call (greenlet) at a time.

    Waiting suspends the waiting task on an :class:`asyncio.Lock`, never the
    thread: every task of the loop runs in that one thread, so a thread lock
    would either let them all in (``RLock``) or stop the loop (``Lock``).
    """

    __slots__ = ("_depth", "_held", "_lock", "_owner")

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._owner: Any = None
        self._depth = 0
        self._held = False  # whether the owner took the asyncio lock (it waited as a task)

    def __enter__(self) -> bool:
        me = getcurrent()
        if self._owner is me:
            self._depth += 1
            return True
        if bridged():
            wait(self._lock.acquire())
            held = True
        elif self._lock.locked() or self._owner is not None:
            raise RuntimeError("an async storage was used outside its event loop's calls")
        else:
            held = False
        self._owner, self._depth, self._held = me, 1, held
        return True

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        if not self._depth:
            self._owner = None
            if self._held:
                self._held = False
                self._lock.release()


def rlock(asynchronous: bool) -> AbstractContextManager[Any]:
    """A reentrant lock: a thread's (``threading.RLock``), or a task's for the async API."""
    return _TaskRLock() if asynchronous else threading.RLock()


class _CallLocal:
    """Attributes per running storage call (greenlet), as ``threading.local`` per thread."""

    __slots__ = ("_values",)

    def __init__(self) -> None:
        object.__setattr__(self, "_values", weakref.WeakKeyDictionary())

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[getcurrent()][name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self._values.setdefault(getcurrent(), {})[name] = value

    def __delattr__(self, name: str) -> None:
        self._values.get(getcurrent(), {}).pop(name, None)


def local(asynchronous: bool) -> Any:
    """State of the running thread (sync API) or of the running call (async API)."""
    return _CallLocal() if asynchronous else threading.local()
