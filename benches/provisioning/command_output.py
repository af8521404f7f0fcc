"""A command's output on its way from the transport to the caller: the process id the wrapper
prints first on stderr is taken out, and over SSH the two streams are passed on in the order
their messages arrived on the channel (``ArrivalPipe``; see transport.py)."""

from __future__ import annotations

import codecs
import io
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from paramiko.buffered_pipe import BufferedPipe

logger = logging.getLogger(__name__)

PID_MARKER = "DEVBENCH_PID="

OutputCallback = Callable[[str, str], None]  # (stream, text)


@dataclass
class OutputStreams:
    """Invoke writes output here; the first stderr line carries the process id."""

    on_output: OutputCallback
    pid: int | None = None
    stdout_parts: list[str] = field(default_factory=list)
    stderr_parts: list[str] = field(default_factory=list)
    signalled: bool = False
    _stderr_head: str = ""
    _pid_seen: bool = False
    _decoders: dict = field(default_factory=dict)

    def stdout_writer(self) -> _Writer:
        return _Writer(self._on_stdout)

    def stderr_writer(self) -> _Writer:
        return _Writer(self._on_stderr)

    def arrival_writer(self) -> _Writer:
        """For invoke's reader threads when the output comes through :meth:`arrived`: drops what
        they read, and tells ``_Remote`` where the channel's arrivals go."""
        writer = _Writer(lambda text: None)
        writer.arrivals = self
        return writer

    def arrived(self, stream: str, data: bytes) -> None:
        """Bytes of ``stream`` as they arrive, in arrival order (one thread calls this)."""
        decoder = self._decoders.get(stream)
        if decoder is None:
            decoder = self._decoders[stream] = codecs.getincrementaldecoder("utf-8")("replace")
        text = decoder.decode(data, final=not data)
        if text:
            (self._on_stdout if stream == "stdout" else self._on_stderr)(text)

    def end_of_arrivals(self) -> None:
        """Pass on what the decoders still hold (a character cut off at the end)."""
        for stream in list(self._decoders):
            self.arrived(stream, b"")

    def _on_stdout(self, text: str) -> None:
        self.stdout_parts.append(text)
        self.on_output("stdout", text)

    def _on_stderr(self, text: str) -> None:
        if not self._pid_seen:
            self._stderr_head += text
            if "\n" not in self._stderr_head:
                return
            first, _, rest = self._stderr_head.partition("\n")
            self._pid_seen = True
            if first.startswith(PID_MARKER) and first[len(PID_MARKER):].isdigit():
                self.pid = int(first[len(PID_MARKER):])
            else:
                rest = self._stderr_head
            self._stderr_head = ""
            if not rest:
                return
            text = rest
        self.stderr_parts.append(text)
        self.on_output("stderr", text)


class _Writer(io.TextIOBase):
    arrivals: OutputStreams | None = None

    def __init__(self, sink: Callable[[str], None]):
        self._sink = sink

    def write(self, text: str) -> int:
        if text:
            self._sink(text)
        return len(text)

    def flush(self) -> None:
        pass


def wrap_with_pid(command: str) -> str:
    """Print the shell's pid on stderr, then replace the shell with the command."""
    return f"printf '{PID_MARKER}%s\\n' $$ >&2; exec {command}"


class ArrivalPipe(BufferedPipe):
    """A channel's stdout or stderr buffer that also hands each message's bytes on as paramiko's
    receiving thread feeds them, i.e. in the order the two streams arrived on the channel."""

    def __init__(self, stream: str, streams: OutputStreams):
        super().__init__()
        self._stream = stream
        self._streams = streams

    def feed(self, data) -> None:
        try:
            self._streams.arrived(self._stream, bytes(data))
        except Exception:  # never break the connection's receiving thread
            logger.exception("passing on %s output failed", self._stream)
        super().feed(data)
