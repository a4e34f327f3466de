"""How one Parsl call is laid out in a tether sandbox, and which resource keys pass."""
from __future__ import annotations

import pytest
from parsl.app.errors import BadStdStreamFile
from parsl.data_provider.files import File
from parsl.executors.errors import InvalidResourceSpecification
from typeguard import TypeCheckError

from tether.parsl.plan import check_resources, plan_call


def test_temp_files_appear_under_their_name_for_both_schemes():
    made, read = File("taskvinetemp://intermediate.txt"), File("temp://dir/part.dat")
    plan = plan_call((), {"inputs": [read], "outputs": [made]}, shared_fs=False, cwd="/w")
    assert plan.temp_outputs == {"intermediate.txt": "intermediate.txt"}
    assert plan.temp_inputs == {"dir/part.dat": "dir/part.dat"}
    assert str(plan.kwargs["outputs"][0]) == "intermediate.txt"
    assert str(plan.kwargs["inputs"][0]) == "dir/part.dat"
    assert made.local_path is None, "Parsl's own File must not be changed"


def test_temp_and_taskvinetemp_of_one_name_are_one_file():
    plan = plan_call((), {"inputs": [File("temp://x"), File("taskvinetemp://x")]}, shared_fs=False, cwd="/w")
    assert plan.temp_inputs == {"x": "x"}


def test_file_inputs_and_outputs_keep_relative_paths_and_absolute_ones_their_base_name():
    plan = plan_call((File("data/a.txt"),), {"inputs": [File("/srv/in/b.txt")], "outputs": [File("out/c.txt")]},
                     shared_fs=False, cwd="/w")
    assert plan.file_inputs == {"data/a.txt": "/w/data/a.txt", "b.txt": "/srv/in/b.txt"}
    assert plan.file_outputs == {"out/c.txt": "/w/out/c.txt"}
    assert plan.directories == ["out"]
    assert str(plan.args[0]) == "data/a.txt"


def test_two_files_with_one_base_name_get_two_sandbox_names():
    plan = plan_call((), {"inputs": [File("/a/x.txt"), File("/b/x.txt"), File("/a/x.txt")]}, shared_fs=False,
                     cwd="/w")
    assert sorted(plan.file_inputs.values()) == ["/a/x.txt", "/b/x.txt"]
    assert len(plan.file_inputs) == 2
    assert str(plan.kwargs["inputs"][0]) == str(plan.kwargs["inputs"][2])


def test_shared_file_system_uses_files_in_place():
    plan = plan_call((), {"inputs": [File("a.txt")], "stdout": "log"}, shared_fs=True, cwd="/w")
    assert plan.file_inputs == {} and plan.streams == []
    assert str(plan.kwargs["inputs"][0]) == "/w/a.txt"
    assert plan.kwargs["stdout"] == ("/w/log", "a+")


def test_std_streams_go_to_the_sandbox_and_are_copied_home():
    plan = plan_call((), {"stdout": ("o.txt", "w"), "stderr": File("/logs/e.txt")}, shared_fs=False, cwd="/w")
    out, err = plan.streams
    assert (out.path, out.append, err.path, err.append) == ("/w/o.txt", False, "/logs/e.txt", False)
    assert plan.kwargs["stdout"] == (out.sandbox, "w") and plan.kwargs["stderr"] == (err.sandbox, "w")
    both = plan_call((), {"stdout": "same.log", "stderr": "same.log"}, shared_fs=False, cwd="/w")
    assert len(both.streams) == 1 and both.streams[0].append  # a plain path appends, as in Parsl


@pytest.mark.parametrize("spec, error", [
    (("o", "r"), BadStdStreamFile), (("o", "nonsense"), BadStdStreamFile),
    (["o", "w"], TypeCheckError), (("o", None), TypeCheckError), ((42, "w"), TypeCheckError),
    (("o",), TypeCheckError),
])
def test_bad_std_stream_specs_raise_what_parsl_raises(spec, error):
    with pytest.raises(error):
        plan_call((), {"stdout": spec}, shared_fs=False, cwd="/w")


def test_files_another_provider_placed_here_move_like_local_files(tmp_path):
    placed = File("zip:/x/archive.zip/inside/a.txt")
    placed.local_path = str(tmp_path / "a.txt")
    (tmp_path / "a.txt").write_text("a")
    elsewhere = File("https://example.org/b.txt")
    elsewhere.local_path = "b.txt"           # in-task staging: fetched on the worker
    wanted, log = File("zip:/x/archive.zip/inside/c.txt"), File("zip:/x/archive.zip/inside/log.txt")
    wanted.local_path, log.local_path = str(tmp_path / "c.txt"), str(tmp_path / "log.txt")
    plan = plan_call((), {"inputs": [placed, elsewhere], "outputs": [wanted], "stderr": log},
                     shared_fs=False, cwd=str(tmp_path))
    assert plan.file_inputs == {"a.txt": str(tmp_path / "a.txt")}
    assert plan.kwargs["inputs"][1] is elsewhere
    assert plan.file_outputs == {"c.txt": str(tmp_path / "c.txt")}
    assert plan.streams[0].path == str(tmp_path / "log.txt")


def test_relative_paths_are_taken_from_the_working_directory_when_none_is_given(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in.txt").write_text("x")
    plan = plan_call((File("in.txt"),), {"outputs": [File("/abs/out.txt"), File("temp://t")], "stdout": "log"},
                     shared_fs=False)
    assert plan.file_inputs == {"in.txt": str(tmp_path / "in.txt")}
    assert plan.file_outputs == {"out.txt": "/abs/out.txt"}
    assert plan.streams[0].path == str(tmp_path / "log")
    copy, made = plan.args[0], plan.kwargs["outputs"][1]
    assert type(copy) is File and copy.url == "in.txt" and str(copy) == "in.txt"
    assert (made.scheme, made.netloc, str(made)) == ("temp", "t", "t")


@pytest.mark.parametrize("kwargs, message", [
    ({"outputs": [File("temp://../x")]}, "does not name a temp file"),
    ({"inputs": [File("f.txt")], "outputs": [File("f.txt")]}, "both an input and an output"),
])
def test_bad_calls_say_what_is_wrong(kwargs, message):
    with pytest.raises(ValueError, match=message):
        plan_call((), kwargs, shared_fs=False, cwd="/w")


def test_resource_keys_are_mapped_and_checked():
    assert check_resources({"cores": 2, "memory": 100, "disk": 5, "priority": 1.5}, {}) == {
        "cores": 2, "memory": 100, "disk": 5, "priority": 1.5}
    assert check_resources({}, {}) == {} and check_resources(None, {}) == {}


@pytest.mark.parametrize("spec, key", [
    ({"cpus": 1}, "cpus"), ({"cores": 0}, "cores"), ({"memory": "lots"}, "memory"),
    ({"priority": "high"}, "priority"), ({"cores": 8}, "cores"),
])
def test_bad_resource_specifications_are_refused_naming_the_key(spec, key):
    with pytest.raises(InvalidResourceSpecification) as info:
        check_resources(spec, {"cores": 4})
    assert key in str(info.value)
