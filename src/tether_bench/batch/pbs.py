"""Stand-in PBS (PBS Pro, and the Torque form of qstat): qsub, qstat, qdel.

What Parsl's PBSProProvider relies on: `qsub [-q Q] [-A ACCOUNT] SCRIPT`
prints the job id (N.SERVER); `qstat -x -f -F json ID...` prints
{"Jobs": {ID: {"job_state": S, ...}}} with S one of Q (queued), R
(running), F (finished, however it ended: see Exit_status); qdel ID...
cancels. Plain `qstat ID...` prints the table TorqueProvider reads (the
state in the fifth column).

As with PBS, a job sees only a small environment plus PBS_O_* copies of
the submitter's (PBS_O_PATH, PBS_O_WORKDIR, ...) unless submitted with -V
(or `#PBS -V`); it starts in $HOME, runs its script with the -S shell
(bash by default), writes to -o and -e, and is killed at its walltime.
"""
from __future__ import annotations

import json
import os
import socket
import sys
import time

from .slurm import directives
from .spool import CANCELLED, COMPLETED, FAILED, PENDING, RUNNING, TIMEOUT, Spool, minimal_env

STATE = {PENDING: "Q", RUNNING: "R", COMPLETED: "F", FAILED: "F", CANCELLED: "F", TIMEOUT: "F"}
VALUED = {"-q", "-A", "-N", "-o", "-e", "-l", "-S", "-v", "-j", "-W", "-m", "-M", "-a", "-P", "-J"}


def parse(words: list[str]) -> tuple[dict[str, list[str]], list[str]]:
    """qsub's options (each may be given more than once) up to the script, and the words from there on."""
    options: dict[str, list[str]] = {}
    i = 0
    while i < len(words) and words[i].startswith("-"):
        flag = words[i][:2]
        if flag in VALUED:
            if len(words[i]) > 2:
                value = words[i][2:]
            else:
                i += 1
                value = words[i] if i < len(words) else ""
        else:
            value = ""
        options.setdefault(flag, []).append(value)
        i += 1
    return options, words[i:]


def walltime(resources: list[str]) -> float | None:
    for spec in resources:
        for item in spec.split(","):
            key, _, value = item.partition("=")
            if key.strip() == "walltime" and value:
                parts = [float(p) for p in value.split(":")]
                seconds = 0.0
                for p in parts:
                    seconds = seconds * 60 + p
                return seconds
    return None


def job_id(spool: Spool, number: int) -> str:
    return f"{number}.{spool.config['server']}"


def qsub(spool: Spool, args: list[str]) -> int:
    options, rest = parse(args)
    if not rest:
        print("qsub: this stand-in needs a script file", file=sys.stderr)
        return 2
    path = os.path.abspath(rest[0])
    with open(path) as f:
        script = f.read()
    from_script, _ = parse(directives(script, "#PBS"))
    for flag, values in options.items():   # the command line wins over the script
        from_script[flag] = values
    options = from_script
    for spec in options.get("-l", []):
        for item in spec.split(","):
            if item.startswith("select=") and item[len("select="):].split(":")[0] not in ("", "1"):
                print("qsub: this stand-in runs single-node jobs only", file=sys.stderr)
                return 2
    name = (options.get("-N") or [os.path.basename(path)])[-1]
    env = dict(os.environ) if "-V" in options else minimal_env()
    for spec in options.get("-v", []):
        for item in spec.split(","):
            key, eq, value = item.partition("=")
            env[key] = value if eq else os.environ.get(key, "")
    home = os.environ.get("HOME") or os.getcwd()

    def make(number: int) -> dict:
        full = job_id(spool, number)
        job_env = dict(env)
        job_env.update({"PBS_JOBID": full, "PBS_JOBNAME": name, "PBS_O_WORKDIR": os.getcwd(),
                        "PBS_O_HOME": home, "PBS_O_PATH": os.environ.get("PATH", ""),
                        "PBS_O_HOST": socket.gethostname(), "PBS_ENVIRONMENT": "PBS_BATCH",
                        "PBS_QUEUE": (options.get("-q") or ["workq"])[-1]})
        default_out = os.path.join(os.getcwd(), f"{name}.o{number}")
        return {"name": name, "argv": [(options.get("-S") or ["/bin/bash"])[-1], path], "cwd": home,
                "env": job_env, "stdout": (options.get("-o") or [default_out])[-1],
                "stderr": (options.get("-e") or [default_out.replace(f".o{number}", f".e{number}")])[-1],
                "walltime": walltime(options.get("-l", [])), "nodefile_env": ["PBS_NODEFILE"],
                "queue": (options.get("-q") or ["workq"])[-1]}

    job = spool.submit("pbs", make)
    print(job_id(spool, job["number"]))
    return 0


def qstat(spool: Spool, args: list[str]) -> int:
    flags = {a for a in args if a.startswith("-")}
    words = [a for a in args if not a.startswith("-")]
    as_json = "-F" in flags and "json" in words
    ids = [w for w in words if w != "json"]
    wanted = {_number(i) for i in ids} if ids else None
    history = "-x" in flags or "-H" in flags
    jobs = [j for j in spool.jobs("pbs") if wanted is None or j["number"] in wanted]
    missing = (wanted or set()) - {j["number"] for j in jobs}
    code = 0
    for number in sorted(n for n in missing if n is not None):
        print(f"qstat: Unknown Job Id {job_id(spool, number)}", file=sys.stderr)
        code = 153
    if not history:
        shown = [j for j in jobs if STATE[j["state"]] != "F"]
        if wanted is not None and len(shown) < len(jobs):
            print("qstat: Job has finished, use -x or -H to obtain historical job information", file=sys.stderr)
            code = 35
        jobs = shown
    if as_json:
        print(json.dumps({"timestamp": int(time.time()), "pbs_version": "stand-in",
                          "pbs_server": spool.config["server"],
                          "Jobs": {job_id(spool, j["number"]): _attributes(j) for j in jobs}}, indent=4))
        return code
    print(f"{'Job id':<17} {'Name':<16} {'User':<16} {'Time Use':>8} S Queue")
    print(f"{'-' * 17} {'-' * 16} {'-' * 16} {'-' * 8} - -----")
    for j in jobs:
        print(f"{job_id(spool, j['number']):<17} {j['name'][:16]:<16} {_user()[:16]:<16} {'00:00:00':>8} "
              f"{STATE[j['state']]} {j.get('queue', 'workq')}")
    return code


def qdel(spool: Spool, args: list[str]) -> int:
    code = 0
    for word in (a for a in args if not a.startswith("-")):
        number = _number(word)
        if number is None or not spool.cancel(number):
            print(f"qdel: Unknown Job Id {word}", file=sys.stderr)
            code = 153
    return code


def _attributes(job: dict) -> dict:
    out = {"Job_Name": job["name"], "Job_Owner": _user(), "job_state": STATE[job["state"]],
           "queue": job.get("queue", "workq"), "Output_Path": job["stdout"], "Error_Path": job["stderr"]}
    if job["node"]:
        out["exec_host"] = f"{job['node']}/0"
    if STATE[job["state"]] == "F":
        out["Exit_status"] = job["exit_code"] if job["exit_code"] is not None else 271
    return out


def _number(word: str) -> int | None:
    head = word.split(".")[0].split("[")[0]
    return int(head) if head.isdigit() else None


def _user() -> str:
    return os.environ.get("USER") or str(os.getuid())


COMMANDS = {"qsub": qsub, "qstat": qstat, "qdel": qdel}
