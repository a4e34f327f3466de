"""Every message round-trips; every decoder raises nothing but ProtocolError, whatever the bytes.

The fuzzing here is short, for CI. The long form runs each target for ten
minutes: `HYPOTHESIS_PROFILE=fuzz python3 dev.py test tests/wire` (see
tests/wire/conftest.py).
"""
from __future__ import annotations

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tether.wire import FrameBuffer, ProtocolError, codec, frame
from tether.wire import messages as m

SPEC = m.TaskSpec(7, "sh", 2, 100, 10, (("out/x.txt", "temp-a-1"),), "echo hi > out/x.txt", {"A": "1"}, 3.5)
PY = m.TaskSpec(8, "py", fn="buf-abc", args=b"\x80\x05N.", result="res-a-8", spill=1 << 20, summary=b"s",
                refs=("res-a-7",), scratch=True, context="buf-def", record=65536)
SAMPLES = [
    m.Hello("w1", 4, 1000, 2000, "10.0.0.2", 4000, 123, 30.0, (("file-a", 3),)),
    m.Hello("w1", 4, 1000, 2000, "10.0.0.2", 4000, 123, 30.0),
    m.Hello("w1", 4, 1000, 2000, "10.0.0.2", 4000, 123, 30.0, (), 2, "node12"),
    m.Joined("w1#2", 5.0),
    m.Assign((m.AssignedTask(SPEC, (m.Input("in.txt", "file-x", m.MANAGER), m.Input("b", "temp-a-0", None),
                                    m.Input("c", "temp-a-2", m.Peer("w2", "10.0.0.3", 4001)))),
              m.AssignedTask(PY, (m.Input(None, "buf-abc", m.MANAGER),)))),
    m.Assign((m.AssignedTask(SPEC, (
        m.Input("data.csv", "url-ab", m.Make("url", "https://example.org/data.csv", keep=True)),
        m.Input("env", "untar-url-ab", m.Make("untar", inputs=((None, "url-ab"),))),
        m.Input(None, "buf-fn", m.MANAGER),
        m.Input("tool", "mini-a-3", m.Make("task", task=SPEC._replace(outputs=(("tool", "mini-a-3"),)),
                                        inputs=(("in.txt", "file-x"), (None, "buf-fn"))))),),)),
    m.Assign((m.AssignedTask(SPEC._replace(priority=2.5), (), m.Held(2, 500, 10, 1)),)),
    m.Delete(("temp-a-1", "temp-a-2")),
    m.Retract((1, 2, 3)),
    m.Pull((("temp-a-1", m.Peer("w2", "10.0.0.3", 4001)),)),
    m.Shutdown(), m.Stop((4, 5)), m.HostBlocked("maintenance"), m.HostUnblocked(),
    m.Done(7, m.Report(1.5, 2.5, 0, gpus=(0, 3))),
    m.Done(7, m.Report(1.5, 2.5, 0, outputs=(("temp-a-1", 12),), cache=(100, 200), usage=(1 << 20, 0.5, 12))),
    m.Failed(7, m.Report(1.5, 2.5, 3, "exit", "exit code 3", "", "oops")),
    m.Done(7, m.Report(1.5, 2.5, 0, outputs=(("temp-a-1", 3),), contents=(("temp-a-1", b"abc"),))),
    m.Failed(7, m.Report(reason="input", message="no", file="temp-a-0", source="w2")),
    m.Have((("temp-a-1", 12, "w2"), ("file-x", 5, None))),
    m.Retracted((1,), (2,)),
    m.Lost(("res-a-8",)),
    m.Leave("idle for 30 s"),
    m.Ping(), m.Probe(4), m.Pong(4),
    m.Get("temp-a-1"), m.Found(12), m.Absent("temp-a-1"),
    m.StatusRequest(),
    m.Status("ab12cd34", 1.7e9, 1.7e9 + 5, (m.WorkerStatus("w1", "10.0.0.2", 4, 2, 2, 1, 0, 1 << 20, 1 << 21, 1.7e9),),
             (("waiting", 1), ("running", 3), ("done", 7)), 1, 2, 10, 20, 0, 5, None),
    m.Status("", 1.7e9, 1.7e9, (), (), 0, 0, 0, 0, 0, 0, "tether's scheduler core failed"),
    m.Status("", 1.7e9, 1.7e9, (), (), 0, 0, 0, 0, 0, 0),
    m.Challenge(2, b"n" * 32, True), m.StartTls(), m.Auth("control", b"c" * 32, b"p" * 32), m.Welcome(b"p" * 32),
    m.Call(8, "/cache/buf-abc", b"args", "/sandbox/s1", {"X": "y"}, {"res-a-7": None}, "res-a-8",
           "/cache/res-a-8", 1 << 20, 65536, b"s"),
    m.Call(9, "/cache/buf-abc", b"args"),
    m.Call(9, "/cache/buf-abc", b"args", "/sandbox/s2", tag="123-9-1", watch=True),
    m.Call(9, "/cache/buf-abc", b"args", context="/cache/buf-def"),
    m.Export("res-a-8", "/cache/res-a-8"), m.Drop(("res-a-8",)),
    m.CallReply(8, True, b"value", "", 1.0, 2.0, 5, False, (1 << 20, 0.1)),
    m.Started(8, 1 << 24),
    m.CallReply(8, None, "res-a-7", "its input res-a-7 is not here", 1.0, 1.0),
    m.Exported("res-a-8", 5),
]


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda x: type(x).__name__)
def test_every_message_round_trips(msg):
    back = codec.decode(codec.encode(msg))
    assert type(back) is type(msg) and back == msg


def test_a_bad_task_fails_alone_and_the_others_of_its_assignment_go_through():
    good = m.AssignedTask(SPEC, ())
    raw = msgpack.unpackb(codec.encode(m.Assign((good, good))), raw=False)
    raw[1][1][0][6] = "echo \0"   # a NUL in the second task's command
    msg = codec.decode(msgpack.packb(raw, use_bin_type=True))
    assert type(msg.tasks[0]) is m.AssignedTask
    assert type(msg.tasks[1]) is m.BadTask and msg.tasks[1].id == 7 and "NUL" in msg.tasks[1].problem


@pytest.mark.parametrize("mutate, problem", [
    (lambda r: r[1][0][0][5].append(["../escape", "temp-a-9"]), "plain relative path"),
    (lambda r: r[1][0][0][5].append(["/abs", "temp-a-9"]), "plain relative path"),
    (lambda r: r[1][0][0][5].append(["ok", "../cache"]), "must not be a path"),
    (lambda r: r[1][0][0].__setitem__(7, {"A=B": "x"}), "environment variable name"),
    (lambda r: r[1][0][0].__setitem__(8, float("nan")), "finite number"),
    (lambda r: r[1][0][0].__setitem__(1, "rm"), "sh or py"),
    (lambda r: r[1][0][1].append(["x", "file-y", ["w", "h", -1]]), "non-negative"),
    (lambda r: r[1][0][1].append(["x", "url-y", ["url", "ftp://h/x", None, [], False]]), "http, https or file"),
    (lambda r: r[1][0][1].append(["x", "url-y", ["shell", "http://h/x", None, [], False]]), "one of url"),
    (lambda r: r[1][0][1].append(["x", "untar-y", ["untar", None, None, [], False]]), "one archive"),
    (lambda r: r[1][0][1].append(["x", "untar-y", ["untar", None, None, [["../x", "buf-a"]], False]]),
     "plain relative path"),
    (lambda r: r[1][0][1].append(["x", "mini-y", ["task", None, None, [], False]]), "names a task"),
])
def test_hostile_fields_of_an_assignment_are_refused_by_the_worker(mutate, problem):
    raw = msgpack.unpackb(codec.encode(m.Assign((m.AssignedTask(SPEC, ()),))), raw=False)
    mutate(raw)
    msg = codec.decode(msgpack.packb(raw, use_bin_type=True))
    assert type(msg.tasks[0]) is m.BadTask and problem in msg.tasks[0].problem


def test_a_lone_surrogate_never_reaches_the_wire():
    with pytest.raises(UnicodeEncodeError):
        codec.encode(m.Delete(("temp-\udc80",)))
    bad = b"\x92\xa6delete\x91\xa2\xed\xb2"   # invalid UTF-8 in a name
    with pytest.raises(ProtocolError):
        codec.decode(bad)


def _msgpack_values():
    scalars = st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1) | st.floats() | st.text(max_size=20) \
        | st.binary(max_size=40)
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=6) | st.dictionaries(
        st.text(max_size=8), inner, max_size=4), max_leaves=30)


@given(st.binary(max_size=300))
def test_decode_of_any_bytes_raises_only_protocol_error(data):
    try:
        codec.decode(data)
    except ProtocolError:
        pass


@given(st.sampled_from(sorted(codec.SCHEMAS)), st.lists(_msgpack_values(), max_size=16))
@pytest.mark.slow
def test_decode_of_any_msgpack_shaped_like_a_message_raises_only_protocol_error(op, fields):
    try:
        codec.decode(msgpack.packb([op, *fields], use_bin_type=True))
    except ProtocolError:
        pass


@given(st.sampled_from(SAMPLES), st.data())
def test_decode_of_a_real_message_with_one_field_spoiled_raises_only_protocol_error(msg, data):
    raw = msgpack.unpackb(codec.encode(msg), raw=False)

    def spoil(value, depth=0):
        if isinstance(value, list) and value and depth < 4 and data.draw(st.booleans()):
            i = data.draw(st.integers(0, len(value) - 1))
            value[i] = spoil(value[i], depth + 1)
            return value
        return data.draw(_msgpack_values())

    if len(raw) > 1:
        i = data.draw(st.integers(1, len(raw) - 1))
        raw[i] = spoil(raw[i])
    try:
        got = codec.decode(msgpack.packb(raw, use_bin_type=True))
    except ProtocolError:
        return
    assert type(got) is type(msg)


@given(st.lists(st.binary(max_size=64), max_size=8), st.integers(1, 7))
def test_frames_cut_anywhere_come_out_whole(bodies, step):
    data = b"".join(frame(b) for b in bodies)
    buf = FrameBuffer()
    out = []
    for i in range(0, len(data), step):
        out.extend(buf.feed(data[i:i + step]))
    assert out == bodies


def test_a_frame_past_the_limit_is_refused_before_it_is_read():
    buf = FrameBuffer(limit=100)
    with pytest.raises(ProtocolError, match="exceeds the limit"):
        buf.feed(b"\xff\xff\xff\xff")


def test_a_task_held_with_no_core_fails_alone():
    msg = m.Assign((m.AssignedTask(SPEC, (), m.Held(0, 0, 0, 0)),))
    back = codec.decode(codec.encode(msg))
    assert type(back.tasks[0]) is m.BadTask and "at least one core" in back.tasks[0].problem
