"""ProgbarLogger: Keras's per-epoch progress bar, in a terminal or in Jupyter.

``verbose=1`` shows a live bar: with tqdm installed ``tqdm.auto`` draws it (a widget in
Jupyter), otherwise plain text redrawn with ``\\r`` when the stream is a terminal (only
the final line otherwise). ``verbose=2`` prints one line per epoch. Lines look like::

    Epoch 1/3
    10/10 ━━━━━━━━━━━━━━━━━━━━ 2s 150ms/step - accuracy: 0.8125 - loss: 0.5312
"""

from __future__ import annotations

import sys
import time

from dojang.callbacks.base import Callback

_BAR_WIDTH = 20
_SKIPPED_KEYS = ("batch", "size")


def format_duration(seconds: float) -> str:
    """``"3s"``, ``"1:05"`` (m:ss) or ``"1:00:05"`` (h:mm:ss), as Keras prints times.

    Example:
        >>> format_duration(65.2), format_duration(3725)
        ('1:05', '1:02:05')
    """
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
    if s >= 60:
        return f"{s // 60}:{s % 60:02d}"
    return f"{s}s"


def format_logs(logs: dict | None) -> str:
    """``" - loss: 0.1234 - accuracy: 0.9000"`` (tiny values in scientific notation)."""
    parts = []
    for key, value in (logs or {}).items():
        if key in _SKIPPED_KEYS:
            continue
        try:
            v = float(value)
        except (TypeError, ValueError):
            parts.append(f" - {key}: {value}")
            continue
        parts.append(f" - {key}: {v:.4f}" if abs(v) > 1e-3 or v == 0 else f" - {key}: {v:.4e}")
    return "".join(parts)


def _per_step(elapsed: float, steps: int) -> str:
    per = elapsed / max(steps, 1)
    return f"{per:.0f}s/step" if per >= 1 else f"{per * 1e3:.0f}ms/step"


def _bar_chars(stream) -> tuple[str, str]:
    try:
        "━".encode(getattr(stream, "encoding", None) or "utf-8")
    except (UnicodeEncodeError, LookupError):
        return "=", "."
    return "━", "─"


class ProgbarLogger(Callback):
    """Prints training progress like Keras's progress bar.

    Args:
        verbose: 0 silent, 1 live bar, 2 one line per epoch; None takes ``params["verbose"]``.
        use_tqdm: True/False to force, None to use tqdm when installed and ``verbose == 1``.
        stream: text stream written to (default ``sys.stdout``).
        interval: smallest time in seconds between two redraws of the plain-text bar.
    """

    def __init__(self, verbose: int | None = None, use_tqdm: bool | None = None, stream=None,
                 interval: float = 0.05):
        super().__init__()
        self.verbose = verbose
        self.use_tqdm = use_tqdm
        self.stream = stream
        self.interval = interval
        self._in_fit = False
        self._tqdm_bar = None

    # ------------------------------------------------------------------ settings
    def _verbose(self) -> int:
        v = self.params.get("verbose", 1) if self.verbose is None else self.verbose
        return 1 if v == "auto" else int(v)

    def _out(self):
        return self.stream if self.stream is not None else sys.stdout

    def _tqdm_class(self):
        if self.use_tqdm is False or self._verbose() != 1:
            return None
        try:
            from tqdm.auto import tqdm
        except ImportError:
            if self.use_tqdm:
                raise
            return None
        return tqdm

    # ------------------------------------------------------------------ drawing
    def _begin(self, steps: int | None, title: str | None) -> None:
        self._steps = steps
        self._start = time.perf_counter()
        self._last_draw = 0.0
        self._seen = 0
        self._drawn = 0
        if self._verbose() == 0:
            return
        tqdm = self._tqdm_class()
        if tqdm is not None:
            self._tqdm_bar = tqdm(total=steps, desc=title, file=self.stream, unit="step",
                                  leave=True, dynamic_ncols=True)
        elif title is not None:
            self._out().write(f"{title}\n")

    def _line(self, logs: dict | None, final: bool) -> str:
        elapsed = time.perf_counter() - self._start
        steps, seen = self._steps, self._seen
        total = str(steps) if steps else "Unknown"
        count = f"{seen:>{len(total)}}/{total}" if steps else f"{seen}/{total}"
        if self._verbose() == 2:
            return (f"{count} - {format_duration(elapsed)} - {_per_step(elapsed, seen)}"
                    f"{format_logs(logs)}")
        done, todo = _bar_chars(self._out())
        filled = _BAR_WIDTH * seen // steps if steps else 0
        bar = done * filled + todo * (_BAR_WIDTH - filled)
        if final or not steps:
            when = format_duration(elapsed)
        else:
            when = format_duration(elapsed / max(seen, 1) * (steps - seen))
        return f"{count} {bar} {when} {_per_step(elapsed, seen)}{format_logs(logs)}"

    def _update(self, seen: int, logs: dict | None) -> None:
        if self._verbose() != 1:
            self._seen = seen
            return
        if self._tqdm_bar is not None:
            self._tqdm_bar.update(seen - self._seen)
            self._seen = seen
            elapsed = time.perf_counter() - self._start
            self._tqdm_bar.set_postfix_str(_per_step(elapsed, seen) + format_logs(logs),
                                           refresh=False)
            return
        self._seen = seen
        out = self._out()
        now = time.perf_counter()
        isatty = getattr(out, "isatty", None)
        if isatty is not None and isatty() and now - self._last_draw >= self.interval:
            self._last_draw = now
            self._redraw(self._line(logs, final=False))
            out.flush()

    def _finish(self, logs: dict | None) -> None:
        v = self._verbose()
        if v == 0:
            return
        if self._tqdm_bar is not None:
            elapsed = time.perf_counter() - self._start
            self._tqdm_bar.set_postfix_str(_per_step(elapsed, self._seen) + format_logs(logs),
                                           refresh=True)
            self._tqdm_bar.close()
            self._tqdm_bar = None
            return
        out = self._out()
        line = self._line(logs, final=True)
        if v == 1 and getattr(out, "isatty", lambda: False)():
            self._redraw(line)
            out.write("\n")
        else:
            out.write(line + "\n")
        out.flush()

    def _redraw(self, line: str) -> None:
        """Overwrite the current terminal line, blanking what a longer old line left."""
        self._out().write("\r" + line.ljust(self._drawn))
        self._drawn = len(line)

    # ------------------------------------------------------------------ hooks
    def on_train_begin(self, logs=None):
        self._in_fit = True

    def on_train_end(self, logs=None):
        self._in_fit = False

    def on_epoch_begin(self, epoch, logs=None):
        self._begin(self.params.get("steps"), f"Epoch {epoch + 1}/{self.params.get('epochs')}")

    def on_train_batch_end(self, batch, logs=None):
        self._update(batch + 1, logs)

    def on_epoch_end(self, epoch, logs=None):
        self._finish(logs)

    def on_test_begin(self, logs=None):
        if not self._in_fit:
            self._begin(self.params.get("steps"), None)

    def on_test_batch_end(self, batch, logs=None):
        if not self._in_fit:
            self._update(batch + 1, logs)

    def on_test_end(self, logs=None):
        if not self._in_fit:
            self._finish(logs)

    def on_predict_begin(self, logs=None):
        self._begin(self.params.get("steps"), None)

    def on_predict_batch_end(self, batch, logs=None):
        self._update(batch + 1, None)

    def on_predict_end(self, logs=None):
        self._finish(None)
