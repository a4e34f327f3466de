"""The transaction log's lines, made from events; run as a script, the process that writes them.

Turning an event into a text line costs about 1.5 µs of Python, four or
five lines a task: on a manager that schedules a task in about 100 µs under
one GIL, that alone would cost more than the 5% of throughput the log may
take. So the manager's side only packs its batches with msgpack (C, about
0.2 µs an event) and pipes them here, to a process of its own, at a lower priority, that
formats and appends them (`python txwriter.py PATH`, reading stdin until it
ends: it ends with the manager, whatever way the manager ends). This file imports
nothing of tether, so that the process starts in a few tens of milliseconds.
"""
from __future__ import annotations

import sys

ERRORS = "backslashreplace"   # a string that is not text (a lone surrogate) is written as its escape


def _clean(value) -> str:
    if value is None:
        return "-"
    if type(value) is float:
        return repr(value)
    text = str(value)
    if "\t" in text or "\n" in text or "\r" in text:
        text = text.replace("\t", " ").replace("\n", " ").replace("\r", " ")
    return text


# a line for an event of n items (time, kind, subject, event, fields...): the time to the microsecond
_TEMPLATES = {n: "\t".join(["%.6f"] + ["%s"] * (n - 1)) + "\n" for n in range(4, 64)}


def format_lines(batch) -> str:
    """Lines for events (time, kind, subject, event, *fields), as txlog.py documents them.

    The whole batch is formatted at once with a template per length, then
    checked by counting: a tab, newline or carriage return inside a field (a
    command, a message) shows as a count that does not add up, and only then
    is the batch formatted again field by field, cleaning each.
    """
    rows = [e if None not in e else tuple("-" if x is None else x for x in e) for e in batch]
    try:
        text = "".join([_TEMPLATES[len(e)] % e for e in rows])
    except (KeyError, TypeError, ValueError):
        text = None
    if text is not None and text.count("\n") == len(rows) and "\r" not in text and \
            text.count("\t") == sum(map(len, rows)) - len(rows):
        return text
    return "".join([f"{e[0]:.6f}\t" + "\t".join(map(_clean, e[1:])) + "\n" for e in rows])


def main(path: str) -> int:
    import os

    import msgpack

    # the log may lag the run, the run must not wait for the log: where the CPUs are busy, the
    # lines are written when the manager and the workers leave a moment (at the latest at close)
    os.nice(10)

    unpacker = msgpack.Unpacker(raw=False, use_list=False, strict_map_key=False,
                                unicode_errors="surrogatepass")
    source = sys.stdin.buffer.raw
    with open(path, "a", encoding="utf-8", errors=ERRORS) as out:
        while True:
            data = source.read(1 << 20)
            if not data:
                return 0
            unpacker.feed(data)
            for batch in unpacker:
                out.write(format_lines(batch))
            out.flush()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
