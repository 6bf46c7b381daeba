"""How fast this machine is now, in one line: the benchmark's yardstick process (`digits_tutorial.bench.YARDSTICK`) alone, and
two at once, the median of three of each.

CI's times are wall-clock seconds on whatever machine runs it: `.ci/run` prints this line among its phases, so that a slow
CI can be told from a slow machine. The yardstick took 1.1 s alone on the machine the project's targets were set on; two at
once take longer when the machine's two cores do not each run at full speed with the other busy (seen: 1.2 s alone and
1.4 to 1.7 s two at once on the same machine, the same day).

    python tools/machine_speed.py [--json]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from concurrent.futures import ThreadPoolExecutor


def machine_speed(rounds: int = 3) -> dict:
    "The yardstick's seconds alone and two at once (each the median of `rounds`), and the ratio of the two."
    from digits_tutorial.bench import YARDSTICK, time_process
    once = lambda _=None: time_process([sys.executable, "-c", YARDSTICK])["seconds"]
    alone = [once() for _ in range(rounds)]
    with ThreadPoolExecutor(2) as pool:
        paired = [max(pool.map(once, range(2))) for _ in range(rounds)]  # a pair is done when its slower one is
    figures = {"yardstick_seconds": statistics.median(alone), "yardstick_pair_seconds": statistics.median(paired)}
    figures["pair_ratio"] = figures["yardstick_pair_seconds"] / figures["yardstick_seconds"]
    return figures


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    figures = machine_speed()
    print(json.dumps(figures) if args.json else
          f"the yardstick {figures['yardstick_seconds']:.2f} s alone, {figures['yardstick_pair_seconds']:.2f} s two at once "
          f"(x{figures['pair_ratio']:.2f}; 1.1 s alone where the targets were set)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
