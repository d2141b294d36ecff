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


# Each key's three counter digits, and a byte table setting the RFC 9562 variant bits
# (``10``) in the first byte of each key's 8 random bytes.
_COUNTER_HEX = [f"{i:03x}" for i in range(0x1000)]
_VARIANT_BITS = bytes((b & 0x3F) | 0x80 for b in range(256))


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
        tails = bytearray(_random.randbytes(8 * count))
        tails[0::8] = tails[0::8].translate(_VARIANT_BITS)
        random_hex = tails.hex()
        out: list[str] = []
        done = 0
        while done < count:
            if counter > 0xFFF:
                ms += 1
                counter = 0
            run = min(count - done, 0x1000 - counter)
            head = f"{ms & ((1 << 48) - 1):012x}7"
            heads = [head + c for c in _COUNTER_HEX[counter : counter + run]]
            start = 16 * done
            out += [
                h + random_hex[i : i + 16]
                for h, i in zip(heads, range(start, start + 16 * run, 16))
            ]
            done += run
            counter += run
        _last_ms, _counter = ms, counter - 1
    return out
