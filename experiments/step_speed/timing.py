"""Interleaved rounds: every variant runs once per round, in a rotated order, so that the noise of a
shared machine hits all of them alike; a round during which other processes kept the CPUs busy
is run again."""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field


def _busy_ticks() -> int:
    """Clock ticks all CPUs spent working (not idle, not waiting for I/O) since boot."""
    with open("/proc/stat") as stat:
        user, nice, system, idle, iowait, irq, softirq, steal = map(
            int, stat.readline().split()[1:9]
        )
    return user + nice + system + irq + softirq + steal


def _own_ticks() -> int:
    """Clock ticks this process (all its threads) spent on the CPUs."""
    with open("/proc/self/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime


class OtherLoad:
    """The share of the machine's CPUs that other processes used between `start()` and `stop()`.

    Reads /proc (Linux); elsewhere it reports 0, and no round is run again.
    """

    available = os.path.exists("/proc/stat")

    def start(self) -> None:
        if self.available:
            self.started = (time.monotonic(), _busy_ticks(), _own_ticks())

    def stop(self) -> float:
        if not self.available:
            return 0.0
        wall, busy, own = self.started
        seconds = time.monotonic() - wall
        ticks = (_busy_ticks() - busy) - (_own_ticks() - own)
        return max(0.0, ticks / os.sysconf("SC_CLK_TCK") / (seconds * (os.cpu_count() or 1)))


def wait_quiet(max_other_load: float, window: float = 2.0, patience: float = 300.0) -> None:
    """Waits (at most `patience` seconds) for a `window` of seconds in which other processes use
    no more than `max_other_load` of the CPUs."""
    load = OtherLoad()
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        load.start()
        time.sleep(window)
        if load.stop() <= max_other_load:
            return


@dataclass
class Rounds:
    """Seconds per step of each variant, one value per kept round."""

    seconds: dict[str, list[float]]
    disturbed: int = 0  # rounds kept although other work used more than the allowed share
    rerun: int = 0  # rounds run again because of other work
    first: dict[str, float] = field(
        default_factory=dict
    )  # each variant's first step's return value
    first_seconds: dict[str, float] = field(default_factory=dict)  # and how long that step took
    others: list[float] = field(
        default_factory=list
    )  # the share of the CPUs other work used, per kept round

    def median(self, name: str) -> float:
        return statistics.median(self.seconds[name])

    def ratio(self, name: str, reference: str) -> float:
        """The median over rounds of `name`'s time over `reference`'s in the same round."""
        pairs = zip(self.seconds[name], self.seconds[reference], strict=True)
        return statistics.median(a / b for a, b in pairs)


def interleaved(
    variants: dict[str, Callable[[int], object]],
    rounds: int,
    warmup: int,
    steps: int = 1,
    max_other_load: float = 0.1,
    retries: int = 2,
    label: str = "",
    after_round: Callable[[Rounds], None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> Rounds:
    """Times `steps` calls of each variant per round, rotating their order from round to round.

    Each variant is called with a running step index. The first `warmup` rounds are not kept. A
    round during which other processes used more than `max_other_load` of the machine is run
    again, up to `retries` times, and then kept and counted as disturbed. `after_round` gets the
    rounds kept so far after each kept round (to write a table that a stopped run leaves behind).
    `clock` is wall time by default; `time.process_time` (the CPU time of all this process's
    threads) measures the work of a step, which other processes on the machine barely change.
    """
    order = list(variants)
    result = Rounds({name: [] for name in order})
    calls = dict.fromkeys(order, 0)
    load = OtherLoad()
    for index in range(warmup + rounds):
        shift = index % len(order)
        rotation = order[shift:] + order[:shift]
        for attempt in range(retries + 1):
            load.start()
            seconds = {}
            for name in rotation:
                started = clock()
                for _ in range(steps):
                    value = variants[name](calls[name])
                    if calls[name] == 0:
                        result.first[name] = float(value) if value is not None else float("nan")
                        result.first_seconds[name] = clock() - started
                    calls[name] += 1
                seconds[name] = (clock() - started) / steps
            other = load.stop()
            kept = index < warmup or other <= max_other_load
            if kept or attempt == retries:
                break
            result.rerun += 1
            print(
                f"{label} round {index}: other work used {other:.0%} of the CPUs, running it again",
                file=sys.stderr,
                flush=True,
            )
            wait_quiet(max_other_load)
        if index >= warmup:
            result.disturbed += not kept
            result.others.append(other)
            for name, value in seconds.items():
                result.seconds[name].append(value)
            if after_round is not None:
                after_round(result)
        times = ", ".join(f"{name} {1000 * seconds[name]:.1f} ms" for name in order)
        stage = "warm-up" if index < warmup else "round"
        print(f"{label} {stage} {index}: {times} (others {other:.0%})", file=sys.stderr, flush=True)
    return result
