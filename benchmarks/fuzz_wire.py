"""Fuzz each of the wire's targets for a while, then replay whatever hypothesis saved.

    python benchmarks/fuzz_wire.py --minutes 10 [--jobs 2] [--json benchmarks/results/fuzz.json]

Each target is one hypothesis test of tests/wire (the decoders, and a live
manager, worker, file server and status link), run under the "fuzz"
profile (no example limit) until the time is up, when it is interrupted
(SIGINT). A failure found before then ends its run at once, with hypothesis's
report; one found while time ran out is in hypothesis's example database,
and the replay at the end (the same tests under the "ci" profile, which
tries saved examples first) shows it. Exit status 0 when no target failed.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGETS = [
    "tests/wire/test_codec.py::test_decode_of_any_bytes_raises_only_protocol_error",
    "tests/wire/test_codec.py::test_decode_of_any_msgpack_shaped_like_a_message_raises_only_protocol_error",
    "tests/wire/test_codec.py::test_decode_of_a_real_message_with_one_field_spoiled_raises_only_protocol_error",
    "tests/wire/test_codec.py::test_frames_cut_anywhere_come_out_whole",
    "tests/wire/test_live_fuzz.py::test_bytes_before_the_handshake",
    "tests/wire/test_live_fuzz.py::test_frames_after_the_handshake_on_a_control_link",
    "tests/wire/test_live_fuzz.py::test_well_formed_hostile_messages_from_a_worker",
    "tests/wire/test_live_fuzz.py::test_frames_to_the_managers_file_server",
    "tests/wire/test_live_fuzz.py::test_frames_on_a_status_link",
    "tests/wire/test_live_fuzz.py::test_frames_and_bytes_to_a_workers_file_server",
]


def fuzz(target: str, seconds: float) -> dict:
    env = dict(os.environ, HYPOTHESIS_PROFILE="fuzz")
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x",
                             "--timeout", "0", target], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=seconds)
        interrupted = False
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:   # an interrupt caught inside asyncio.run: end it
            proc.terminate()
            out, _ = proc.communicate()
        interrupted = True
    elapsed = time.monotonic() - started
    # interrupted: it ran the whole time and found nothing; otherwise pytest's own verdict
    failed = not interrupted and proc.returncode != 0
    return {"target": target, "seconds": round(elapsed, 1), "ran_out_of_time": interrupted,
            "failed": failed, "tail": out[-3000:] if failed else ""}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="per target")
    parser.add_argument("--jobs", type=int, default=1, help="targets fuzzed at once")
    parser.add_argument("--only", default="", help="targets whose name holds this text")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    targets = [t for t in TARGETS if args.only in t]
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda t: fuzz(t, args.minutes * 60), targets))
    replay = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/wire"],
                            cwd=ROOT, env=dict(os.environ, HYPOTHESIS_PROFILE="ci"), capture_output=True, text=True)
    for r in results:
        verdict = "FAILED" if r["failed"] else "nothing found"
        print(f"{r['target'].split('::')[1]}: {r['seconds']:.0f} s, {verdict}")
        if r["failed"]:
            print(r["tail"])
    print(f"replay of saved examples: {'passed' if replay.returncode == 0 else 'FAILED'}")
    if replay.returncode != 0:
        print(replay.stdout[-3000:])
    if args.json is not None:
        args.json.write_text(json.dumps({"minutes_per_target": args.minutes, "targets": results,
                                         "replay_passed": replay.returncode == 0}, indent=2))
    return 0 if replay.returncode == 0 and not any(r["failed"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
