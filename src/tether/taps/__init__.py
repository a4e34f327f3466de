"""tether as an executor of TaPS, the Task Performance Suite (github.com/proxystore/taps).

    python -m tether.taps --app synthetic --app.structure sequential \\
        --app.task-count 200 --engine.executor tether --engine.executor.workers 2

`python -m tether.taps` takes TaPS's own command line (`python -m taps.run
...`) with the `tether` executor registered. In a script of your own,
`import tether.taps.plugin` registers it. TaPS is not a dependency of
tether: this package is usable only where TaPS is installed.

TaPS's engine hands each task's Future straight to the next submit, so a
future passed on is a dependency resolved on the workers, as with any
tether Executor. It also reads every task's execution record as tasks
complete; the records come back with the completions (see executor.py)
while the values stay on the workers until the application asks for them.
"""
