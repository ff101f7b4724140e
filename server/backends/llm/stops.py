"""Stop conditions matched outside the engine: stop strings on text, multi-token stop sequences on ids."""

from __future__ import annotations

from collections.abc import Sequence


class StopStringMatcher:
    """Finds the first stop string in streamed text; the stop string itself is never emitted.

    Text that might be the start of a stop string is held back until the next delta decides it.
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = tuple(s for s in stops if s)
        self._pending = ""
        self.stopped = False

    def feed(self, delta: str) -> str:
        """Return the text that is safe to emit; sets `stopped` when a stop string was found."""
        if self.stopped:
            return ""
        if not self._stops:
            return delta
        text = self._pending + delta
        hits = [i for i in (text.find(s) for s in self._stops) if i >= 0]
        if hits:
            self.stopped = True
            self._pending = ""
            return text[: min(hits)]
        keep = max(_overlap(text, s) for s in self._stops)
        self._pending = text[len(text) - keep :] if keep else ""
        return text[: len(text) - keep]

    def flush(self) -> str:
        """At the end of generation the held-back text was not a stop string after all."""
        text, self._pending = self._pending, ""
        return "" if self.stopped else text


def _overlap(text: str, stop: str) -> int:
    """Length of the longest suffix of `text` that is a proper prefix of `stop`."""
    for k in range(min(len(stop) - 1, len(text)), 0, -1):
        if text.endswith(stop[:k]):
            return k
    return 0


class StopSequenceMatcher:
    """Matches multi-token stop sequences against the generated ids (single ids go to the engine)."""

    def __init__(self, sequences: Sequence[Sequence[int]]) -> None:
        self._sequences = tuple(tuple(s) for s in sequences if s)
        self._longest = max((len(s) for s in self._sequences), default=0)
        self._tail: list[int] = []

    def feed(self, token_ids: Sequence[int]) -> int | None:
        """Add generated ids; return how many of them to keep (up to the end of the first match), or None."""
        if not self._sequences:
            return None
        for i, token in enumerate(token_ids):
            self._tail.append(token)
            del self._tail[: -self._longest]
            if any(_ends_with(self._tail, s) for s in self._sequences):
                return i + 1
        return None


def _ends_with(tail: list[int], seq: tuple[int, ...]) -> bool:
    return len(tail) >= len(seq) and tuple(tail[-len(seq) :]) == seq
