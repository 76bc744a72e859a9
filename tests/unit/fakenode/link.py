"""The link between this machine and a fake node (tests/unit/fakenode/ssh): runs the command
given after the first argument, relays its output (stdout and stderr) line by line, in order,
each line held back by the seconds written in the file named by the first argument, read as the
line comes in (no file: no delay), and exits with the command's status. Killed, it closes the
pipe as a dropped ssh session does: the command dies on its next write (SIGPIPE)."""

import queue
import subprocess
import sys
import threading
import time


def delay(path: str) -> float:
    try:
        with open(path) as f:
            return float(f.read())
    except FileNotFoundError:
        return 0.0


def main(path: str, argv: list[str]) -> int:
    child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines: queue.Queue = queue.Queue()

    def read() -> None:
        assert child.stdout is not None
        for line in child.stdout:
            lines.put((time.monotonic() + delay(path), line))
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    while (item := lines.get()) is not None:
        due, line = item
        time.sleep(max(0.0, due - time.monotonic()))
        sys.stdout.buffer.write(line)
        sys.stdout.buffer.flush()
    code = child.wait()
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
