"""Bookkeeping of the Speech tab's speculative final decodes (pure Python, no Qt).

A "candidate" event's audio is decoded before its pause is confirmed. When the matching "final"
comes (same key: recording number, utterance index, end_s — hence the same audio), its text is
the candidate's result: shown at once if it is back, else when it arrives; only finals without a
candidate need a decode of their own. Candidates whose utterance went on are stale and dropped.
"""
from __future__ import annotations

from typing import Any

Key = tuple  # (recording, utterance index, end_s)


class SpeculativeFinals:
    def __init__(self) -> None:
        self.inflight: list[Key] = []  # candidates submitted, result not yet back (FIFO: keep_all runs in order)
        self.results: dict[Key, Any] = {}  # back, their utterance not confirmed yet
        self.awaited: dict[Key, dict] = {}  # confirmed finals waiting for their candidate: their meta

    def new_recording(self) -> None:
        """A new Start: unconfirmed candidates belong to the old session. Confirmed finals of an
        older recording still waiting keep waiting (their keys carry the recording number)."""
        self.inflight.clear()
        self.results.clear()

    def submitted(self, key: Key) -> None:
        self.inflight.append(key)

    def final(self, key: Key, meta: dict) -> tuple[str, Any]:
        """The utterance ``key`` is final: ("show", result) when its candidate's result is back,
        ("wait", None) when that decode still runs (the final is then remembered), ("decode", None)
        when it had no candidate."""
        for k in [k for k in self.results if k[:2] <= key[:2] and k != key]:
            del self.results[k]  # candidates of this utterance (or older ones) that did not end it
        if key in self.results:
            return "show", self.results.pop(key)
        if key in self.inflight:
            self.awaited[key] = meta
            return "wait", None
        return "decode", None

    def result(self, key: Key | None, result: Any, recording: int, utterances_done: int) -> dict | None:
        """A candidate's decode is back: the meta of the final waiting for it (show it now), or None
        (kept while its pause may still be confirmed, else dropped as stale)."""
        if key in self.inflight:
            self.inflight.remove(key)
        if key in self.awaited:
            return self.awaited.pop(key)
        if key is not None and key[0] == recording and key[1] >= utterances_done:
            self.results[key] = result
        return None

    def failed(self, key: Key | None) -> Key | None:
        """The candidate ``key`` failed (each request knows its own key: after a new Start the
        oldest in flight may belong to the new recording); ``key`` back if a final was waiting for it."""
        if key in self.inflight:
            self.inflight.remove(key)
        if key is not None and key in self.awaited:
            self.awaited.pop(key)
            return key
        return None
