"""Run the bertsmith CLI and SIGKILL it right after the n-th return of one function: the kill points
of tests/test_kill_points.py. Usage: python -m tests._killed MODULE:ATTR[.ATTR] N -- CLI ARGS..."""

from __future__ import annotations

import importlib
import os
import signal
import sys
from functools import wraps


def main() -> None:
    target, n, _, *args = sys.argv[1:]
    module, _, attrs = target.partition(":")
    owner = importlib.import_module(module)
    *path, name = attrs.split(".")
    for attr in path:
        owner = getattr(owner, attr)
    original, calls = getattr(owner, name), 0

    @wraps(original)
    def killed_after(*a, **k):
        nonlocal calls
        result = original(*a, **k)
        calls += 1
        if calls == int(n):
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    setattr(owner, name, killed_after)
    sys.argv = ["bertsmith", *args]
    from bertsmith.cli import main as cli

    cli()


if __name__ == "__main__":
    main()
