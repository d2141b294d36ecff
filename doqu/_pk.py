"""Primary keys: 32 lowercase hex characters that sort in creation order."""

from __future__ import annotations

import os
import random
import threading
import time

__all__ = ["new_pk", "new_pks"]

_lock = threading.Lock()
# Random bits from a generator seeded by the OS (one syscall per process, not per
# key), seeded again in every forked child so parent and child never share a stream.
_random = random.Random(os.urandom(32))


def _reseed() -> None:
    _random.seed(os.urandom(32))


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reseed)
_last_ms = 0
_counter = 0


def new_pk() -> str:
    """Return a new UUIDv7 as 32 hex digits, strictly increasing within this process.

    The 12-bit ``rand_a`` field is a counter within one millisecond (seeded at random);
    when it overflows the timestamp is advanced, so keys never go backwards.
    """
    global _last_ms, _counter
    with _lock:
        now = time.time_ns() // 1_000_000
        if now > _last_ms:
            _last_ms = now
            _counter = _random.getrandbits(10)  # leave room to count
        else:
            _counter += 1
            if _counter > 0xFFF:
                _last_ms += 1
                _counter = 0
        ms, counter = _last_ms, _counter
        tail = _random.getrandbits(62)
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | counter << 64 | 0b10 << 62 | tail
    return f"{value:032x}"


_VARIANT = {d: "89ab"[int(d, 16) & 3] for d in "0123456789abcdef"}


def new_pks(count: int) -> list[str]:
    """*count* keys as :func:`new_pk` makes them, in increasing order, under one lock."""
    global _last_ms, _counter
    if count <= 0:
        return []
    with _lock:
        now = time.time_ns() // 1_000_000
        if now > _last_ms:
            _last_ms = now
            _counter = _random.getrandbits(10)
        else:
            _counter += 1
        ms, counter = _last_ms, _counter
        random_hex = _random.randbytes(8 * count).hex()
        out: list[str] = []
        append = out.append
        head = f"{ms & ((1 << 48) - 1):012x}7"
        variant = _VARIANT
        for i in range(0, 16 * count, 16):
            if counter > 0xFFF:
                ms += 1
                counter = 0
                head = f"{ms & ((1 << 48) - 1):012x}7"
            append(f"{head}{counter:03x}{variant[random_hex[i]]}{random_hex[i + 1 : i + 16]}")
            counter += 1
        _last_ms, _counter = ms, counter - 1
    return out
