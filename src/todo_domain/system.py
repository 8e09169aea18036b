"""Standard-library defaults for the clock and id ports: the system UTC clock and UUID version 7."""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime
from uuid import UUID

__all__ = ["SystemClock", "Uuid7Generator"]


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class Uuid7Generator:
    """RFC 9562 UUIDv7: 48-bit Unix milliseconds, then a 12-bit counter seeded randomly each
    millisecond (so ids made in the same millisecond still sort in creation order), then 62
    random bits."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = -1
        self._counter = 0

    def new_id(self) -> UUID:
        with self._lock:
            ms = time.time_ns() // 1_000_000
            if ms > self._last_ms:
                self._last_ms = ms
                self._counter = int.from_bytes(os.urandom(2)) & 0x7FF  # room to count up
            else:
                ms = self._last_ms
                self._counter += 1
                if self._counter > 0xFFF:  # counter exhausted: borrow the next millisecond
                    self._last_ms = ms = ms + 1
                    self._counter = 0
            counter = self._counter
        rand_b = int.from_bytes(os.urandom(8)) & ((1 << 62) - 1)
        value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | counter << 64 | 0b10 << 62 | rand_b
        return UUID(int=value)
