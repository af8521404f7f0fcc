"""Terminal control sequences in a script's output: what the job log's text form leaves out.

A provision script may colour its output or set a terminal's title (ANSI CSI and OSC escape
sequences), and a hostile one could try to rewrite what a terminal shows. ``clean`` drops those
sequences and every other control character but tab and newline; the log's raw form keeps them.
"""

from __future__ import annotations

import re

_CONTROL = re.compile(
    r"\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC (title, hyperlink…) up to BEL or ST
    r"|\x1b[P^_X][^\x1b]*(?:\x1b\\)?"  # DCS, PM, APC and SOS strings up to ST
    r"|\x1b\[[0-?]*[ -/]*[@-~]"  # CSI (colours, cursor moves, erasing)
    r"|\x9b[0-?]*[ -/]*[@-~]"  # the 8-bit CSI
    r"|\x1b[ -/]*[0-~]"  # the other escapes (ESC c, ESC 7, ESC ( B…)
    r"|[\x00-\x08\x0b-\x1f\x7f-\x9f]"  # the remaining C0 and C1 controls and DEL; not \t, \n
)


def clean(text: str) -> str:
    """``text`` without terminal control sequences and control characters (tab and newline stay)."""
    return _CONTROL.sub("", text)
