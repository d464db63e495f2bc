"""Track ids: 1..65535 (they are ``mono16`` mask values), wrapping, never reusing a live id."""

from __future__ import annotations

from collections.abc import Iterable

MAX_ID = 65535


class IdAllocator:
    """Hands out ids 1, 2, ..., 65535, 1, ... skipping any id that is still alive.

    The caller says which ids are alive at each call (tracks still matched or kept for
    re-identification), so an id comes back only after its track has ended.
    """

    def __init__(self, start: int = 1) -> None:
        if not 1 <= start <= MAX_ID:
            raise ValueError(f"IdAllocator: start must be in 1..{MAX_ID}, got {start}")
        self._next = start

    @property
    def next_candidate(self) -> int:
        """The id the next call tries first."""
        return self._next

    def allocate(self, count: int, alive: Iterable[int]) -> list[int]:
        """``count`` fresh ids, none in ``alive`` nor repeated.

        Raises:
            RuntimeError: when fewer than ``count`` ids are free.
        """
        taken = set(int(i) for i in alive)
        if count > MAX_ID - len(taken):
            raise RuntimeError(
                f"IdAllocator: {count} new ids requested but only {MAX_ID - len(taken)} of {MAX_ID} are free"
            )
        out: list[int] = []
        candidate = self._next
        while len(out) < count:
            if candidate not in taken:
                out.append(candidate)
                taken.add(candidate)
            candidate = candidate + 1 if candidate < MAX_ID else 1
        self._next = candidate
        return out
