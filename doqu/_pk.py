"""Primary keys: 32 lowercase hex characters that sort in creation order."""

from __future__ import annotations

import os
import threading
import time

__all__ = ["new_pk"]

_lock = threading.Lock()
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
            _counter = int.from_bytes(os.urandom(2), "big") & 0x3FF  # leave room to count
        else:
            _counter += 1
            if _counter > 0xFFF:
                _last_ms += 1
                _counter = 0
        ms, counter = _last_ms, _counter
    tail = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | counter << 64 | 0b10 << 62 | tail
    return f"{value:032x}"
