"""Remember the event ids one user's day has seen, as an append-only set that is cheap to extend.

A ``Fingerprints`` value is immutable to its holders: ``plus`` returns a new value that shares the
storage of the old one (like a slice of a growing array), so a transaction can extend it in O(1) and a
rolled-back extension is simply never seen: the next ``plus`` from the old value cuts it off.
"""

from __future__ import annotations

from hashlib import blake2b

FINGERPRINT_BYTES = 6


_HASH = blake2b(digest_size=FINGERPRINT_BYTES)


def fingerprint(event_id: str) -> bytes:
    """Return a 48-bit fingerprint of an event id (collisions among a day's ids of one user: ~1e-8)."""
    h = _HASH.copy()
    h.update(event_id.encode())
    return h.digest()


class _Buffer:
    __slots__ = ("index", "packed")

    def __init__(self, packed: bytes) -> None:
        n = FINGERPRINT_BYTES
        self.packed = bytearray(packed)
        self.index = {bytes(self.packed[i : i + n]): i // n for i in range(0, len(self.packed), n)}


class Fingerprints:
    """The fingerprints of the first ``n`` entries of a shared buffer.

    ``index`` (fingerprint -> position in the buffer) is the buffer's own mapping, shared: a fingerprint is
    in this value when its position is below ``n`` (``seen_before`` tests it inline, without a call).
    """

    __slots__ = ("_buffer", "index", "n")

    def __init__(self, buffer: _Buffer | None = None, n: int = 0) -> None:
        self._buffer = buffer if buffer is not None else _Buffer(b"")
        self.index = self._buffer.index
        self.n = n

    @classmethod
    def decode(cls, packed: bytes) -> Fingerprints:
        """Return the fingerprints stored as ``packed`` (6 bytes each)."""
        buffer = _Buffer(packed)
        return cls(buffer, len(buffer.index))

    def encode(self) -> bytes:
        """Return the stored form: the packed fingerprints."""
        return bytes(self._buffer.packed[: self.n * FINGERPRINT_BYTES])

    def __contains__(self, fp: object) -> bool:
        position = self.index.get(fp)  # type: ignore[call-overload]
        return position is not None and position < self.n

    def __len__(self) -> int:
        return self.n

    def plus(self, fp: bytes) -> Fingerprints:
        """Return these fingerprints and ``fp``."""
        buffer = self._buffer
        if len(buffer.index) != self.n:  # an extension of this value was rolled back: cut it off
            for stale in [k for k, i in buffer.index.items() if i >= self.n]:
                del buffer.index[stale]  # in place: every value of the buffer shares this mapping
            del buffer.packed[self.n * FINGERPRINT_BYTES :]
        buffer.index[fp] = self.n
        buffer.packed += fp
        return Fingerprints(buffer, self.n + 1)
