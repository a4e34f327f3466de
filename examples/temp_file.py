"""A Parsl program written for TaskVine's temp files, run on tether: only the import lines differ.

A producer writes intermediate.txt as a temp file; Parsl hands the consumer
to the executor at once, tether holds it until the file is made on a worker
and runs it there. The consumer's stdout goes to output.txt, which is then
shown.

    python examples/temp_file.py      # prints: intermediate data
"""
import parsl
from parsl import bash_app
from parsl.config import Config
from tether.parsl.taskvine import TaskVineExecutor
from tether.parsl.taskvine import TaskVineFactoryConfig
from tether.parsl.taskvine import TaskVineManagerConfig
from tether.parsl.taskvine import TaskVineStaging
from parsl.data_provider.files import File

config = Config(
    executors=[
        TaskVineExecutor(
            manager_config=TaskVineManagerConfig(project_name="temp_file_example"),
            factory_config=TaskVineFactoryConfig(batch_type="local"),
            storage_access=[TaskVineStaging()],
        ),
    ]
)


@bash_app
def f1(outputs=[]):
    return "echo intermediate data > intermediate.txt"


@bash_app
def f2(inputs=[], stdout="output.txt"):
    return "cat {}".format(inputs[0])


with parsl.load(config) as conf:
    intermediate_file = File("taskvinetemp://intermediate.txt")
    intermediate_producer = f1(outputs=[intermediate_file])
    intermediate_consumer = f2(inputs=[intermediate_producer.outputs[0]])
    intermediate_consumer.result()

print(open("output.txt").read(), end="")
