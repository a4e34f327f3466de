"""The transaction log's lines, made from events; run as a script, the process that writes them.

Turning an event into a text line costs about 1.5 µs of Python, four or
five lines a task: on a manager that schedules a task in about 100 µs under
one GIL, that alone would cost more than the 5% of throughput the log may
take. So the manager's side only packs its batches with msgpack (C, about
0.2 µs an event) and pipes them here, to a process of its own that formats
and appends them (`python txwriter.py PATH`, reading stdin until it ends:
it ends with the manager, whatever way the manager ends). This file imports
nothing of tether, so that the process starts in a few tens of milliseconds.
"""
from __future__ import annotations

import sys

ERRORS = "backslashreplace"   # a string that is not text (a lone surrogate) is written as its escape


def _clean(value) -> str:
    if value is None:
        return "-"
    if type(value) is float:
        return f"{value:.6f}"
    text = str(value)
    if "\t" in text or "\n" in text or "\r" in text:
        text = text.replace("\t", " ").replace("\n", " ").replace("\r", " ")
    return text


def format_lines(batch) -> str:
    """Lines for events (time, kind, subject, event, fields), as txlog.py documents them."""
    return "".join([f"{t:.6f}\t{kind}\t{_clean(subject)}\t{event}" +
                    ("\t" + "\t".join(map(_clean, fields)) if fields else "") + "\n"
                    for t, kind, subject, event, fields in batch])


def main(path: str) -> int:
    import msgpack

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
