"""Live utterance endpointing for the Speech tab: pure Python + numpy, no Qt, no torch.

Feed 16 kHz mono float32 blocks to :class:`SpeechSession`; it answers with events:

- ``start``   speech began (the utterance includes a pre-roll, so the first phoneme is kept);
- ``partial`` ~every 400 ms of new speech: the utterance so far, for a PARTIAL decode;
- ``candidate`` the speaker MAY have stopped: once per pause, as soon as the kept tail is complete
              (``tail_s`` of silence after the last voiced frame, still in speech). Its ``audio``
              is exactly what the ``final`` will carry if the pause is confirmed, with the same
              ``index``, ``start_s`` and ``end_s`` — so a consumer can start the final decode
              ``end_silence_s - tail_s`` early (speculatively). If a voiced frame comes back before
              the pause is confirmed, no final follows for that candidate (a later one may come).
              Forced splits and :meth:`SpeechSession.flush` finals have no candidate;
- ``final``   the speaker paused (``end_silence_s``), the utterance hit ``max_utterance_s``
              (forced split), or :meth:`SpeechSession.flush` was called on Stop. A pause final
              matches its candidate: same ``index`` and ``end_s``, identical audio.

Speech detection is energy based, with an adaptive noise floor: a 20 ms frame is voiced when
its energy is ``start_db`` above the floor (and above an absolute floor ``min_db``); once an
utterance runs, frames only need ``continue_db`` above the floor (hysteresis). The floor
follows quiet frames quickly downwards and slowly upwards, so a fan that starts humming
becomes background after a few seconds instead of one endless utterance. The first
``warmup_s`` (0.3 s) only learn the floor (press Start, then speak).

:class:`SlidingWindow` gives the last ~1 s of audio every ~250 ms for live classification.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000


@dataclass(frozen=True)
class EndpointConfig:
    """Tunable endpointing parameters (defaults suit a desk microphone)."""

    sample_rate: int = SAMPLE_RATE
    frame_s: float = 0.02  # analysis frame
    start_db: float = 10.0  # a frame this far above the noise floor may start speech
    continue_db: float = 6.0  # ...and this far keeps an utterance going (hysteresis)
    min_db: float = -50.0  # absolute: quieter frames (dBFS) are never speech
    floor_down: float = 0.3  # per-frame adaptation of the floor towards quieter frames
    floor_up: float = 0.01  # ...towards louder non-speech frames
    floor_up_in_speech: float = 0.003  # ...while in speech (a noise that never stops still ends)
    warmup_s: float = 0.3  # at start the floor is learned (quietest frame) before detecting
    min_speech_s: float = 0.2  # voiced time needed before an onset counts as speech
    onset_gap_s: float = 0.12  # an onset candidate is dropped after this much silence
    end_silence_s: float = 0.5  # pause that ends an utterance
    max_utterance_s: float = 15.0  # forced split
    pre_roll_s: float = 0.3  # audio kept before the detected onset
    tail_s: float = 0.15  # trailing silence kept after the last voiced frame
    partial_every_s: float = 0.4  # new speech between two partial requests


@dataclass(frozen=True)
class SpeechEvent:
    """One endpointing event. ``audio`` (16 kHz float32, a copy) is set for partial, candidate
    and final."""

    kind: str  # "start" | "partial" | "candidate" | "final"
    index: int  # utterance number, from 0
    start_s: float  # stream time of the utterance's first sample (pre-roll included)
    end_s: float  # stream time of its last sample so far
    audio: np.ndarray | None = None
    reason: str = ""  # for final: "pause" | "max-length" | "flush"

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


_SILENCE, _ONSET, _SPEECH = "silence", "onset", "speech"


class SpeechSession:
    """The endpointing state machine. Not thread-safe: feed it from one thread."""

    def __init__(self, config: EndpointConfig | None = None) -> None:
        self.config = cfg = config or EndpointConfig()
        self._frame = max(1, int(round(cfg.frame_s * cfg.sample_rate)))
        self._pre_frames = int(round(cfg.pre_roll_s / cfg.frame_s))
        # Preallocated buffers: the utterance (max length + pre-roll), the pre-roll ring.
        self._cap = int(cfg.max_utterance_s * cfg.sample_rate) + self._pre_frames * self._frame + self._frame
        self._utt = np.zeros(self._cap, np.float32)
        self._pre = np.zeros(max(1, self._pre_frames) * self._frame, np.float32)
        self._rest = np.zeros(self._frame, np.float32)
        self.reset()

    # ------------------------------------------------------------------ state

    def reset(self, time_offset_s: float = 0.0) -> None:
        """Forget everything; the next sample fed is at stream time ``time_offset_s``."""
        self._offset = float(time_offset_s)
        self._synced = False
        self._samples = 0  # samples consumed into frames so far
        self._n_rest = 0
        self._pre_fill = 0  # samples in the pre-roll ring (<= len(self._pre))
        self._pre_pos = 0
        self._state = _SILENCE
        self.noise_floor_db = -100.0
        self.last_frame_db = -120.0
        self._n_utt = 0  # samples in the utterance buffer
        self._utt_start = 0  # stream sample of the utterance buffer's first sample
        self._last_voiced_end = 0  # utterance-buffer samples up to the last voiced frame's end
        self._voiced = 0  # voiced frames in the onset candidate
        self._silent_run = 0  # consecutive unvoiced frames
        self._candidate_sent = False  # a candidate was emitted for the current pause
        self._since_partial = 0  # voiced-or-not samples since the last partial
        self._index = 0  # next utterance number

    @property
    def in_speech(self) -> bool:
        return self._state == _SPEECH

    @property
    def time_s(self) -> float:
        """Stream time of the next sample to be fed."""
        return self._offset + (self._samples + self._n_rest) / self.config.sample_rate

    @property
    def utterance_count(self) -> int:
        return self._index

    # ------------------------------------------------------------------ feeding

    def feed(self, block: np.ndarray, t_s: float | None = None) -> list[SpeechEvent]:
        """Add a block of 16 kHz mono samples; ``t_s`` (optional) is the stream time of its first
        sample, used once to align this session's clock with the source's."""
        if t_s is not None and not self._synced:
            self._offset = float(t_s) - (self._samples + self._n_rest) / self.config.sample_rate
        self._synced = True
        x = np.asarray(block, dtype=np.float32).reshape(-1)
        events: list[SpeechEvent] = []
        f = self._frame
        i = 0
        if self._n_rest:
            take = min(f - self._n_rest, len(x))
            self._rest[self._n_rest:self._n_rest + take] = x[:take]
            self._n_rest += take
            i = take
            if self._n_rest == f:
                self._n_rest = 0
                self._frame_in(self._rest, events)
        while i + f <= len(x):
            self._frame_in(x[i:i + f], events)
            i += f
        if i < len(x):
            n = len(x) - i
            self._rest[:n] = x[i:]
            self._n_rest = n
        return events

    def feed_all(self, blocks: Iterable[np.ndarray]) -> list[SpeechEvent]:
        out: list[SpeechEvent] = []
        for b in blocks:
            out.extend(self.feed(b))
        return out

    def flush(self) -> list[SpeechEvent]:
        """Stop: finalize the utterance in progress (an onset still being confirmed included),
        so nothing heard is dropped. The session is then ready for a new recording."""
        events: list[SpeechEvent] = []
        rest = self._rest[:self._n_rest].copy()
        self._n_rest = 0
        if self._state in (_SPEECH, _ONSET) and self._n_utt + len(rest) > 0:
            if self._state == _ONSET:  # not yet confirmed: start it now, with its pre-roll
                events.append(self._event("start"))
                self._state = _SPEECH
            n = min(len(rest), self._cap - self._n_utt)
            self._utt[self._n_utt:self._n_utt + n] = rest[:n]
            self._n_utt += n
            events.append(self._finish("flush", self._n_utt))
        self._samples += len(rest)
        self._state = _SILENCE
        self._pre_fill = 0
        self._silent_run = 0
        return events

    # ------------------------------------------------------------------ internals

    def _frame_in(self, frame: np.ndarray, events: list[SpeechEvent]) -> None:
        cfg = self.config
        f = self._frame
        db = 10.0 * np.log10(float(np.dot(frame, frame)) / f + 1e-12)
        self.last_frame_db = db
        if self._samples < self.config.warmup_s * cfg.sample_rate:
            # learn the room: the quietest frame so far is the floor; keep the audio as pre-roll
            self.noise_floor_db = max(-100.0, db if self._samples == 0 else min(self.noise_floor_db, db))
            self._pre_push(frame)
            self._samples += f
            return
        floor = self.noise_floor_db
        thr_start = max(floor + cfg.start_db, cfg.min_db)
        thr_cont = max(floor + cfg.continue_db, cfg.min_db)
        voiced = db > (thr_cont if self._state == _SPEECH else thr_start)

        # adaptive noise floor
        if self._state == _SPEECH:
            rate = cfg.floor_up_in_speech if db > floor else cfg.floor_down
        elif voiced:
            rate = cfg.floor_up_in_speech
        else:
            rate = cfg.floor_down if db < floor else cfg.floor_up
        self.noise_floor_db = max(-100.0, floor + rate * (db - floor))

        if self._state == _SILENCE:
            if voiced:
                self._begin_candidate()
                self._append(frame)
                self._voiced = 1
                self._silent_run = 0
                self._state = _ONSET
                self._maybe_confirm(events)
            else:
                self._pre_push(frame)
        elif self._state == _ONSET:
            self._append(frame)
            if voiced:
                self._voiced += 1
                self._silent_run = 0
                self._maybe_confirm(events)
            else:
                self._silent_run += 1
                if self._silent_run * cfg.frame_s >= cfg.onset_gap_s:
                    # a click or a cough too short to be speech: give its audio back to the pre-roll
                    buf = self._utt[:self._n_utt].copy()
                    self._state = _SILENCE
                    self._n_utt = 0
                    for j in range(0, len(buf) - f + 1, f):
                        self._pre_push(buf[j:j + f])
        else:  # speech
            if self._n_utt + f > self._cap:
                self._split(events)
            self._append(frame)
            self._since_partial += f
            if voiced:
                self._silent_run = 0
                self._last_voiced_end = self._n_utt
                self._candidate_sent = False  # the speaker went on: a later pause gets a new one
            else:
                self._silent_run += 1
            tail_frames = int(np.ceil(cfg.tail_s / cfg.frame_s - 1e-9))
            # the pause's end: the same in the candidate and the final (the buffer up to it cannot
            # change while the frames stay unvoiced)
            end = min(self._n_utt, self._last_voiced_end + tail_frames * f)
            pause_over = self._silent_run * cfg.frame_s >= cfg.end_silence_s
            if (not voiced and not self._candidate_sent
                    and (self._silent_run >= max(1, tail_frames) or pause_over)):
                self._candidate_sent = True
                events.append(self._pause_event("candidate", end))
            if pause_over:
                events.append(self._finish("pause", end))
                self._candidate_sent = False
                self._state = _SILENCE
                self._pre_fill = 0
                # the silence after the kept tail is the next utterance's pre-roll
                tail = self._utt[end:self._n_utt]
                for j in range(max(0, len(tail) - len(self._pre)), len(tail) - f + 1, f):
                    self._pre_push(tail[j:j + f])
                self._n_utt = 0
            elif self._n_utt >= int(cfg.max_utterance_s * cfg.sample_rate):
                self._split(events)
            elif voiced and self._since_partial >= cfg.partial_every_s * cfg.sample_rate:
                self._since_partial = 0
                events.append(self._event("partial", with_audio=True))
        self._samples += f

    def _maybe_confirm(self, events: list[SpeechEvent]) -> None:
        cfg = self.config
        if self._voiced * cfg.frame_s >= cfg.min_speech_s - 1e-9:
            self._state = _SPEECH
            self._last_voiced_end = self._n_utt
            self._since_partial = 0
            self._candidate_sent = False
            events.append(self._event("start"))

    def _begin_candidate(self) -> None:
        """Start the utterance buffer with the pre-roll ring's content, oldest first."""
        n = self._pre_fill
        size = len(self._pre)
        start = (self._pre_pos - n) % size
        if start + n <= size:
            self._utt[:n] = self._pre[start:start + n]
        else:
            k = size - start
            self._utt[:k] = self._pre[start:]
            self._utt[k:n] = self._pre[:n - k]
        self._n_utt = n
        self._utt_start = self._samples - n
        self._pre_fill = 0

    def _pre_push(self, frame: np.ndarray) -> None:
        if self._pre_frames == 0:
            return
        f = len(frame)
        self._pre[self._pre_pos:self._pre_pos + f] = frame
        self._pre_pos = (self._pre_pos + f) % len(self._pre)
        self._pre_fill = min(len(self._pre), self._pre_fill + f)

    def _append(self, frame: np.ndarray) -> None:
        f = len(frame)
        self._utt[self._n_utt:self._n_utt + f] = frame
        self._n_utt += f

    def _split(self, events: list[SpeechEvent]) -> None:
        """Forced split at max length: finish this utterance, the next one starts right after."""
        events.append(self._finish("max-length", self._n_utt))
        self._utt_start += self._n_utt
        self._n_utt = 0
        self._last_voiced_end = 0
        self._since_partial = 0
        self._candidate_sent = False
        self._state = _SPEECH
        events.append(self._event("start"))

    def _pause_event(self, kind: str, end: int, reason: str = "") -> SpeechEvent:
        """The utterance buffer up to ``end`` (a candidate, or a final: the same times and audio)."""
        audio = self._utt[:end].copy()
        return SpeechEvent(kind, self._index, self._t(self._utt_start), self._t(self._utt_start + end), audio, reason)

    def _finish(self, reason: str, end: int) -> SpeechEvent:
        ev = self._pause_event("final", end, reason)
        log.debug("utterance %d final (%s): %.2f-%.2f s", ev.index, reason, ev.start_s, ev.end_s)
        self._index += 1
        return ev

    def _event(self, kind: str, with_audio: bool = False) -> SpeechEvent:
        audio = self._utt[:self._n_utt].copy() if with_audio else None
        return SpeechEvent(kind, self._index, self._t(self._utt_start), self._t(self._utt_start + self._n_utt), audio)

    def _t(self, sample: int) -> float:
        return self._offset + sample / self.config.sample_rate


class SlidingWindow:
    """The last ``window_s`` seconds of audio, handed out every ``hop_s`` seconds (ring buffer)."""

    def __init__(self, window_s: float = 1.0, hop_s: float = 0.25, sample_rate: int = SAMPLE_RATE,
                 min_fill_s: float = 0.5) -> None:
        self.size = int(round(window_s * sample_rate))
        self.hop = int(round(hop_s * sample_rate))
        self.min_fill = int(round(min_fill_s * sample_rate))
        self.sample_rate = sample_rate
        self._ring = np.zeros(self.size, np.float32)
        self.reset()

    def reset(self) -> None:
        self._pos = 0
        self._fill = 0
        self._since = 0
        self._total = 0

    def push(self, block: np.ndarray) -> np.ndarray | None:
        """Add samples; return a copy of the current window (oldest first) when a hop is due."""
        x = np.asarray(block, dtype=np.float32).reshape(-1)
        if len(x) >= self.size:
            self._ring[:] = x[-self.size:]
            self._pos = 0
        else:
            k = min(len(x), self.size - self._pos)
            self._ring[self._pos:self._pos + k] = x[:k]
            self._ring[:len(x) - k] = x[k:]
            self._pos = (self._pos + len(x)) % self.size
        self._fill = min(self.size, self._fill + len(x))
        self._since += len(x)
        self._total += len(x)
        if self._since >= self.hop and self._fill >= self.min_fill:
            self._since = 0
            return self.window()
        return None

    def window(self) -> np.ndarray:
        if self._fill < self.size:  # not wrapped yet: the ring holds [0, fill)
            return self._ring[:self._fill].copy()
        return np.concatenate((self._ring[self._pos:], self._ring[:self._pos]))

    @property
    def end_s(self) -> float:
        """Stream time (from reset) just after the newest sample."""
        return self._total / self.sample_rate
