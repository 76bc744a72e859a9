"""Copies stdin to stdout line by line, in order, each line held back by the seconds written in
the file named by the one argument, read as the line comes in (no file: no delay). The unit
tests' stand-in for a slow link from a starved guest (tests/unit/fakenode/ssh)."""

import queue
import sys
import threading
import time


def delay(path: str) -> float:
    try:
        with open(path) as f:
            return float(f.read())
    except FileNotFoundError:
        return 0.0


def main(path: str) -> None:
    lines: queue.Queue = queue.Queue()

    def read() -> None:
        for line in sys.stdin.buffer:
            lines.put((time.monotonic() + delay(path), line))
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    while (item := lines.get()) is not None:
        due, line = item
        time.sleep(max(0.0, due - time.monotonic()))
        sys.stdout.buffer.write(line)
        sys.stdout.buffer.flush()


if __name__ == "__main__":
    main(sys.argv[1])
