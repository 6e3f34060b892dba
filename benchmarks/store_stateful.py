"""The store's stateful test, run long (issue 12, "prove it").

Runs ``tests/test_store_stateful.py``'s ``StoreMachine`` (random sequences of computes,
extensions, subsets, colliding explicit values, concurrent and interrupted computes, damage
of every kind, gc, rm, verify, repair and reads; every successful read must equal
``phasemap.evaluate`` bit for bit and every failure must be a reported PhasemapError) with a
larger budget than CI gives it, and prints how many examples, steps and rules ran, the
failures (none, or the script exits 1 with Hypothesis's minimal failing sequence) and the
wall time::

    python benchmarks/store_stateful.py                       # 200 examples x 30 steps
    python benchmarks/store_stateful.py --examples 50 --steps 20

The stores live in temporary directories, removed after each example.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE.parent))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=200, help="sequences to run")
    parser.add_argument("--steps", type=int, default=30, help="most rules per sequence")
    args = parser.parse_args(argv)

    import test_store_stateful as machine
    from hypothesis import HealthCheck, Phase, settings
    from hypothesis.stateful import run_state_machine_as_test

    import phasemap

    print(f"phasemap {phasemap.__version__}, Python {platform.python_version()}, "
          f"{os.cpu_count()} cores")
    print(f"{args.examples} examples x up to {args.steps} steps")
    steps = [0]
    original = machine.StoreMachine.check_invariants

    def counting(self, *a, **k):
        steps[0] += 1
        return original(self, *a, **k)

    machine.StoreMachine.check_invariants = counting  # type: ignore[method-assign]
    config = settings(max_examples=args.examples, stateful_step_count=args.steps,
                      deadline=None, suppress_health_check=list(HealthCheck),
                      phases=[Phase.generate, Phase.shrink], database=None)
    t0 = time.perf_counter()
    try:
        run_state_machine_as_test(machine.StoreMachine, settings=config)
        failed = False
    except Exception as exc:  # Hypothesis has printed the minimal failing sequence
        print(f"FAILED: {type(exc).__name__}: {exc}")
        failed = True
    seconds = time.perf_counter() - t0
    print(f"{sum(machine.RULES.values())} rules in {steps[0]} checked states, "
          f"{seconds:.0f} s, {'a failure' if failed else 'no failure'}")
    for name, n in sorted(machine.RULES.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<16} {n}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
