"""Stand-in Slurm: sbatch, squeue, scancel, srun, and an sacct that says accounting is off.

What Parsl's SlurmProvider relies on: sbatch SCRIPT prints "Submitted
batch job ID"; `squeue --noheader --format='%i %t' --job 'ID,ID'` prints
one "ID STATE" line per job (short states PD R CD F CA TO); scancel ID...
cancels. The provider probes `sacct -X` first and uses squeue when it
fails, as it does where Slurm keeps no accounting. srun (used by Parsl's
SrunLauncher inside a job) runs --ntasks copies of a command in the job.

A job gets the submitter's environment (as --export=ALL does), runs in
the submitter's directory (or --chdir), writes to --output and --error
(slurm-%j.out by default), and is killed at its --time.
"""
from __future__ import annotations

import os
import shlex
import subprocess
import sys

from .spool import CANCELLED, COMPLETED, FAILED, PENDING, RUNNING, TIMEOUT, Spool, minimal_env

SHORT = {PENDING: "PD", RUNNING: "R", COMPLETED: "CD", FAILED: "F", CANCELLED: "CA", TIMEOUT: "TO"}
# options that take a value, by their long and short names (the rest are taken as flags)
SBATCH = {"--job-name": "-J", "--output": "-o", "--error": "-e", "--nodes": "-N", "--time": "-t",
          "--chdir": "-D", "--export": None, "--partition": "-p", "--account": "-A", "--qos": "-q",
          "--constraint": "-C", "--clusters": "-M", "--ntasks-per-node": None, "--cpus-per-task": "-c",
          "--mem": None, "--gpus-per-node": None, "--gres": None, "--ntasks": "-n"}
SQUEUE = {"--format": "-o", "--jobs": "-j", "--job": None, "--clusters": "-M", "--user": "-u",
          "--partition": "-p", "--states": "-t", "--name": "-n"}


def parse_options(words: list[str], valued: dict[str, str | None]) -> tuple[dict[str, str], list[str]]:
    """Options (by long name) up to the first word that is not one, and the words from there on."""
    short_names = {short: long for long, short in valued.items() if short}
    options: dict[str, str] = {}
    i = 0
    while i < len(words) and words[i].startswith("-") and words[i] != "-":
        word = words[i]
        name, eq, value = word.partition("=")
        name = short_names.get(name, name)
        if not eq and name not in valued and word[:2] in short_names and not word.startswith("--"):
            name, value, eq = short_names[word[:2]], word[2:], "="      # -N2
        elif not eq and name in valued:
            i += 1
            value = words[i] if i < len(words) else ""
        options[name] = value
        i += 1
    return options, words[i:]


def directives(script: str, prefix: str) -> list[str]:
    """The words of the `prefix` lines at the head of a script, before its first command."""
    words: list[str] = []
    for line in script.splitlines()[1:]:
        line = line.strip()
        if line.startswith(prefix):
            words += shlex.split(line[len(prefix):], comments=True)
        elif line and not line.startswith("#"):
            break
    return words


def minutes(value: str) -> float | None:
    """A --time value (MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS) in seconds; None for no limit."""
    if not value or value in ("infinite", "UNLIMITED"):
        return None
    days, _, rest = value.rpartition("-")
    parts = [float(p) for p in rest.split(":")]
    if days:
        parts += [0.0] * (3 - len(parts))
        h, m, s = parts
        return float(days) * 86400 + h * 3600 + m * 60 + s
    if len(parts) == 1:
        return parts[0] * 60
    if len(parts) == 2:
        return parts[0] * 60 + parts[1]
    return parts[0] * 3600 + parts[1] * 60 + parts[2]


def sbatch(spool: Spool, args: list[str]) -> int:
    options, rest = parse_options(args, SBATCH)
    if not rest:
        print("sbatch: error: this stand-in needs a script file", file=sys.stderr)
        return 1
    path = os.path.abspath(rest[0])
    with open(path) as f:
        script = f.read()
    from_script, _ = parse_options(directives(script, "#SBATCH"), SBATCH)
    options = {**from_script, **options}
    if int(options.get("--nodes", "1").split("-")[0] or 1) != 1:
        print("sbatch: error: this stand-in runs single-node jobs only", file=sys.stderr)
        return 1
    cwd = os.path.abspath(options.get("--chdir") or os.getcwd())
    name = options.get("--job-name") or os.path.basename(path)
    export = options.get("--export", "ALL")
    env = dict(os.environ) if export.split(",")[0] == "ALL" else minimal_env()

    def make(number: int) -> dict:
        def out(key: str, default: str) -> str:
            p = options.get(key) or default
            return os.path.join(cwd, p.replace("%j", str(number)).replace("%x", name))

        job_env = dict(env)
        job_env.update({"SLURM_JOB_ID": str(number), "SLURM_JOBID": str(number), "SLURM_JOB_NAME": name,
                        "SLURM_JOB_NUM_NODES": "1", "SLURM_NNODES": "1", "SLURM_SUBMIT_DIR": os.getcwd(),
                        "SLURM_CPUS_ON_NODE": options.get("--cpus-per-task") or str(os.cpu_count() or 1)})
        return {"name": name, "argv": ["/bin/bash", path] + rest[1:], "cwd": cwd, "env": job_env,
                "stdout": out("--output", "slurm-%j.out"),
                "stderr": out("--error", options.get("--output") or "slurm-%j.out"),
                "walltime": minutes(options.get("--time", "")),
                "node_env": ["SLURMD_NODENAME", "SLURM_JOB_NODELIST", "SLURM_NODELIST"]}

    job = spool.submit("slurm", make)
    print(f"Submitted batch job {job['number']}")
    return 0


def squeue(spool: Spool, args: list[str]) -> int:
    options, _ = parse_options(args, SQUEUE)
    fmt = options.get("--format") or "%i %j %t %N"
    wanted = _numbers(options.get("--jobs") or options.get("--job") or "")
    if "-h" not in args and "--noheader" not in args:
        print(_format(fmt, {"i": "JOBID", "t": "ST", "T": "STATE", "j": "NAME", "N": "NODELIST"}))
    for job in spool.jobs("slurm"):
        if wanted is None or job["number"] in wanted:
            print(_format(fmt, {"i": str(job["number"]), "t": SHORT[job["state"]], "T": job["state"],
                                "j": job["name"], "N": job["node"] or ""}))
    return 0


def scancel(spool: Spool, args: list[str]) -> int:
    _, ids = parse_options(args, {"--clusters": "-M", "--signal": "-s", "--user": "-u", "--name": "-n"})
    code = 0
    for word in ids:
        for number in _numbers(word) or ():
            if not spool.cancel(number):
                print(f"scancel: error: Invalid job id {number}", file=sys.stderr)
                code = 1
    return code


def sacct(spool: Spool, args: list[str]) -> int:
    print("Slurm accounting storage is disabled", file=sys.stderr)
    return 1


def srun(spool: Spool, args: list[str]) -> int:
    """Run --ntasks copies of a command inside the current job (and its process group)."""
    if "SLURM_JOB_ID" not in os.environ:
        print("srun: error: this stand-in runs only inside a job", file=sys.stderr)
        return 1
    options, command = parse_options(args, SBATCH)
    if not command:
        print("srun: error: no command", file=sys.stderr)
        return 1
    tasks = int(options.get("--ntasks") or 1)
    procs = []
    for rank in range(tasks):
        env = dict(os.environ, SLURM_PROCID=str(rank), SLURM_LOCALID=str(rank), SLURM_NTASKS=str(tasks),
                   SLURM_STEP_NUM_TASKS=str(tasks))
        procs.append(subprocess.Popen(command, env=env))
    return max(p.wait() for p in procs)


def _numbers(ids: str) -> set[int] | None:
    """Job numbers from "1,2 3" (None for no ids given); array or cluster suffixes are dropped."""
    words = [w.strip("'\"") for w in ids.replace(",", " ").split()]
    if not words:
        return None
    return {int(w.split("_")[0].split(".")[0]) for w in words if w.split("_")[0].split(".")[0].isdigit()}


def _format(fmt: str, fields: dict[str, str]) -> str:
    """squeue's %-fields (with an optional .width, ignored here)."""
    out, i = [], 0
    fmt = fmt.strip("'\"")
    while i < len(fmt):
        if fmt[i] == "%" and i + 1 < len(fmt):
            j = i + 1
            while j < len(fmt) and (fmt[j].isdigit() or fmt[j] in ".-"):
                j += 1
            key = fmt[j] if j < len(fmt) else ""
            out.append("%" if key == "%" else fields.get(key, ""))
            i = j + 1
        else:
            out.append(fmt[i])
            i += 1
    return "".join(out)


COMMANDS = {"sbatch": sbatch, "squeue": squeue, "scancel": scancel, "sacct": sacct, "srun": srun}
