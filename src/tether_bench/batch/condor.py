"""Stand-in HTCondor: condor_submit, condor_q, condor_rm.

What Parsl's CondorProvider relies on: `condor_submit FILE` prints
"1 job(s) submitted to cluster N." (the provider takes the sixth word and
appends the process number: N.0); `condor_q ID... -af:jr JobStatus`
prints "ID STATUS" lines (1 idle, 2 running, 3 removed, 4 completed);
`condor_rm ID...` and `condor_rm -forcex ID...` remove jobs.

As with HTCondor, the submit description says what runs: executable and
arguments, run in a scratch directory of the job's own into which
transfer_input_files are copied (should_transfer_files = YES; otherwise
in initialdir); output and error name files relative to initialdir (the
submitter's directory by default); the environment is `environment` plus
_CONDOR_SCRATCH_DIR and the like, and the submitter's whole environment
only with `getenv = true`. $(Cluster) and $(Process) are expanded; one
job per submission (`queue` or `queue 1`). The user log is not written.
"""
from __future__ import annotations

import os
import re
import shlex
import sys

from .spool import CANCELLED, COMPLETED, FAILED, PENDING, RUNNING, TIMEOUT, Spool, minimal_env

STATUS = {PENDING: 1, RUNNING: 2, CANCELLED: 3, COMPLETED: 4, FAILED: 4, TIMEOUT: 3}
_MACRO = re.compile(r"\$\((Cluster|ClusterId|Process|ProcId)\)", re.IGNORECASE)


def parse_submit(text: str) -> tuple[dict[str, str], int]:
    """A submit description's commands (lower-cased names, + attributes kept) and its queue count."""
    commands: dict[str, str] = {}
    count = 0
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        word = line.split(None, 1)
        if word[0].lower() == "queue":
            count += int(word[1]) if len(word) > 1 and word[1].strip().isdigit() else 1
            continue
        name, eq, value = line.partition("=")
        if eq:
            commands[name.strip().lower()] = value.strip()
    return commands, count


def environment(value: str) -> dict[str, str]:
    """The `environment` command: "A='x y' B=z" (quoted, new syntax) or A=x;B=z (old syntax)."""
    value = value.strip()
    if value.startswith('"') and value.endswith('"'):
        items = shlex.split(value[1:-1].replace('""', '"'))
    else:
        items = [i for i in value.split(";") if i]
    env = {}
    for item in items:
        key, _, val = item.partition("=")
        if key:
            env[key.strip()] = val
    return env


def arguments(value: str) -> list[str]:
    value = value.strip()
    if value.startswith('"') and value.endswith('"'):
        return shlex.split(value[1:-1].replace('""', '"'))
    return value.split()


def condor_submit(spool: Spool, args: list[str]) -> int:
    files = [a for a in args if not a.startswith("-")]
    if not files:
        print("ERROR: this stand-in needs a submit description file", file=sys.stderr)
        return 1
    path = os.path.abspath(files[0])
    with open(path) as f:
        commands, count = parse_submit(f.read())
    if count != 1:
        print(f"ERROR: this stand-in submits one job per description, not {count}", file=sys.stderr)
        return 1
    if "executable" not in commands:
        print("ERROR: no executable", file=sys.stderr)
        return 1
    iwd = os.path.abspath(commands.get("initialdir") or os.getcwd())
    transfer = commands.get("should_transfer_files", "YES").upper() != "NO"
    env = dict(os.environ) if commands.get("getenv", "false").lower() in ("true", "yes", "1") else minimal_env()
    env.update(environment(commands.get("environment", "")))

    def make(number: int) -> dict:
        def expand(v: str) -> str:
            return _MACRO.sub(lambda m: str(number) if m.group(1).lower().startswith("cluster") else "0", v)

        def in_iwd(v: str) -> str:
            return os.path.join(iwd, expand(v))

        executable = commands["executable"]
        if transfer and commands.get("transfer_executable", "true").lower() != "false":
            executable = "./" + os.path.basename(executable)   # sent into the scratch directory
        inputs = [in_iwd(p.strip()) for p in commands.get("transfer_input_files", "").split(",") if p.strip()]
        if transfer and executable.startswith("./"):
            inputs.append(in_iwd(commands["executable"]))
        job_env = dict(env)
        job_env.update({"_CONDOR_SCRATCH_DIR": "{tmp}", "_CONDOR_SLOT": "slot1", "BATCH_SYSTEM": "HTCondor",
                        "_CONDOR_JOB_IWD": iwd})
        return {"name": commands.get("batch_name") or os.path.basename(path),
                "argv": [executable] + [expand(a) for a in arguments(commands.get("arguments", ""))],
                "cwd": "{tmp}" if transfer else iwd, "env": job_env, "inputs": inputs if transfer else [],
                "stdout": in_iwd(commands.get("output", "/dev/null")),
                "stderr": in_iwd(commands.get("error", "/dev/null"))}

    job = spool.submit("condor", make)
    print("Submitting job(s).")
    print(f"1 job(s) submitted to cluster {job['number']}.")
    return 0


def condor_q(spool: Spool, args: list[str]) -> int:
    ids, attributes, i, labelled = [], [], 0, False
    while i < len(args):
        a = args[i]
        if a.startswith("-af") or a.startswith("-autoformat"):
            labelled = ":" in a and "j" in a.split(":", 1)[1]
            attributes = args[i + 1:]
            break
        if not a.startswith("-"):
            ids.append(a)
        i += 1
    wanted = {_number(w) for w in ids} if ids else None
    jobs = [j for j in spool.jobs("condor") if wanted is None or j["number"] in wanted]
    if not attributes:
        print(" ID        OWNER    ST  CMD")
        for j in jobs:
            print(f" {j['number']}.0  {os.environ.get('USER', '')}  {'IRXCC'[STATUS[j['state']] - 1]}  "
                  f"{' '.join(j['argv'])}")
        return 0
    for j in jobs:
        values = [str(_attribute(j, a)) for a in attributes]
        print(" ".join(([f"{j['number']}.0"] if labelled else []) + values))
    return 0


def condor_rm(spool: Spool, args: list[str]) -> int:
    words = [a for a in args if not a.startswith("-")]
    if "-all" in args:
        words = [str(j["number"]) for j in spool.jobs("condor")]
    code = 0
    for word in words:
        number = _number(word)
        if number is None or not spool.cancel(number):
            print(f"Couldn't find/remove all jobs matching constraint (ClusterId == {word})", file=sys.stderr)
            code = 1
        else:
            print(f"Job {number}.0 marked for removal")
    return code


def _attribute(job: dict, name: str):
    values = {"jobstatus": STATUS[job["state"]], "clusterid": job["number"], "procid": 0,
              "exitcode": job["exit_code"] if job["exit_code"] is not None else "undefined",
              "cmd": job["argv"][0], "remotehost": f"slot1@{job['node']}" if job["node"] else "undefined"}
    return values.get(name.lower(), "undefined")


def _number(word: str) -> int | None:
    head = word.split(".")[0]
    return int(head) if head.isdigit() else None


COMMANDS = {"condor_submit": condor_submit, "condor_q": condor_q, "condor_rm": condor_rm}
