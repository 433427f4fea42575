"""Pinning a ``scaffolder serve`` or ``scaffolder worker`` process to one CPU (``--cpu N``).

A process of ours runs Python on one core at a time: its threads share one GIL. When they run
on several cores, every hand-over of the GIL (a task thread reading a file, the event writer
waiting for PostgreSQL) wakes a thread on another core, and on a virtual machine that wake-up
is dear. With 10 task slots busy on 2 vCPUs, a third of the worker's CPU went to the kernel's
scheduler (``perf``: ``finish_task_switch`` and ``try_to_wake_up`` under the GIL's futex), at
~150 context switches per task. On one core the thread woken for the GIL cannot run before
the caller is back from its system call, so most hand-overs never happen: the worker used
35 % less CPU per task and ran half again as many tasks per second (README, "Many tasks
at once").

Only our own threads stay on that core. The cookiecutter fork server (and every render forked
from it) gets back the CPUs the process had before, since `unpinned_cpus` is handed to it:
those are processes of their own, with a GIL each. Other child processes (git, the lint tools)
inherit the pin.
"""

from __future__ import annotations

import os

_unpinned: frozenset[int] | None = None


class CpuPinError(ValueError):
    """The CPU cannot be pinned to here: not one of the process's, or no affinity support."""


def pin_to_cpu(cpu: int) -> None:
    """Run this process's threads, and those it starts later, on ``cpu`` only.

    Call it before any thread starts: a thread inherits the affinity of the one that starts
    it, and threads started earlier keep theirs.

    Raises:
        CpuPinError: ``cpu`` is not one this process may run on (its cgroup's cpuset and
            affinity), or the platform has no ``sched_setaffinity`` (Linux has it; macOS
            does not).
    """
    global _unpinned
    if not hasattr(os, "sched_setaffinity"):
        raise CpuPinError("pinning to a CPU needs sched_setaffinity, which this platform lacks")
    allowed = frozenset(os.sched_getaffinity(0))
    if cpu not in allowed:
        listed = ", ".join(str(c) for c in sorted(allowed))
        raise CpuPinError(f"CPU {cpu} is not one this process may run on ({listed})")
    if _unpinned is None:
        _unpinned = allowed
    os.sched_setaffinity(0, {cpu})


def unpinned_cpus() -> frozenset[int] | None:
    """The CPUs the process had before `pin_to_cpu`, or ``None`` when it was not pinned."""
    return _unpinned


def restore_cpus(cpus: str) -> None:
    """In a child process of a pinned one (so on Linux): run on ``cpus`` ("0,1,3", as
    `format_cpus` gives) again."""
    os.sched_setaffinity(0, {int(c) for c in cpus.split(",")})


def format_cpus(cpus: frozenset[int]) -> str:
    return ",".join(str(c) for c in sorted(cpus))
