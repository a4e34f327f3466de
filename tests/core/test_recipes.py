"""Files each worker makes for itself (URLs, unpacked archives, mini-tasks): the core's side."""
from tether.core import LOCAL, MAKE, FileSpec, FilesCached, FileState, State

from .helpers import Harness, temp


def env(name: str = "env") -> FileSpec:
    return FileSpec(f"untar-{name}", recipe=True)


def test_each_worker_makes_its_own_copy_once_and_it_is_never_collected():
    h = Harness(group_tasks=False)
    h.worker("w1", cores=2)
    h.submit(1, inputs=[env()])
    h.submit(2, inputs=[env()])
    assert h.sources[1] == {"untar-env": MAKE}
    assert h.sources[2] == {"untar-env": LOCAL}   # on its way there already: made once
    h.send(FilesCached("w1", (("untar-env", 5000),)))
    h.run_all()
    assert set(h.completed) == {1, 2}
    f = h.s.files["untar-env"]
    assert f.state is FileState.RECIPE and {w.id for w in f.replicas} == {"w1"}
    assert "untar-env" not in h.deleted.get("w1", [])


def test_a_lost_copy_is_not_recovered_the_next_worker_makes_its_own():
    h = Harness(group_tasks=False)
    h.worker("w1")
    h.submit(1, inputs=[env()])
    h.send(FilesCached("w1", (("untar-env", 5000),)))
    h.lose("w1")
    assert h.s.counters.reruns == 0 and h.s.files["untar-env"].state is FileState.RECIPE
    h.worker("w2")
    assert h.where[1] == "w2" and h.sources[1] == {"untar-env": MAKE}


def test_readers_of_a_recipe_still_form_groups():
    h = Harness()
    h.worker("w1")
    h.submit(1, inputs=[env()], outputs=[temp("a")])
    h.submit(2, inputs=[env(), temp("a")], outputs=[temp("b")])
    t1, t2 = h.s.tasks[1], h.s.tasks[2]
    assert t1.group is not None and t1.group is t2.group


def test_a_copy_that_cannot_be_made_is_a_system_failure_retried_then_named():
    h = Harness(group_tasks=False, system_retries=1)
    h.worker("w1")
    h.submit(1, inputs=[env()])
    h.fail(1, "input", message="could not fetch http://x/y: HTTP 404", file="untar-env")
    assert h.s.tasks[1].state is State.RUNNING and h.sources[1] == {"untar-env": MAKE}
    h.fail(1, "input", message="could not fetch http://x/y: HTTP 404", file="untar-env")
    assert h.failed[1].reason == "input" and "HTTP 404" in h.failed[1].message


def test_a_recipe_cannot_be_a_task_output():
    h = Harness()
    h.worker("w1")
    h.submit(1, inputs=[env()])
    h.submit(2, outputs=[env()])
    assert h.failed[2].reason == "invalid" and "each worker" in h.failed[2].message
