"""Locks between processes: one holder at a time, abandoned locks broken (a dead process on this host
at once, another host's after it stops refreshing), and the short flock of result files."""

from __future__ import annotations

import os
import subprocess
import threading
import time

from bertsmith.lock import exclusive, held


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_a_second_holder_waits_for_the_first(tmp_path):
    path, order, told = tmp_path / ".lock", [], []

    def second() -> None:
        with exclusive(path, poll=0.05, waiting=told.append):
            order.append("second")

    with exclusive(path):
        assert path.exists()
        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.3)
        order.append("first")
    thread.join(5)
    assert order == ["first", "second"] and not path.exists()
    assert told and told[0].endswith(str(os.getpid()))  # it was told who holds the lock


def test_the_lock_of_a_dead_process_on_this_host_is_broken_at_once(tmp_path):
    import socket

    path = tmp_path / ".lock"
    path.write_text(f"{socket.gethostname()} {dead_pid()}\n")
    start = time.monotonic()
    with exclusive(path, stale=60, poll=0.05):
        assert path.read_text().split() == [socket.gethostname(), str(os.getpid())]
    assert time.monotonic() - start < 5


def test_another_hosts_lock_is_broken_only_once_it_goes_stale(tmp_path):
    path = tmp_path / ".lock"
    path.write_text("another-host 1\n")
    acquired = threading.Event()

    def take() -> None:
        with exclusive(path, stale=1.0, poll=0.05):
            acquired.set()

    thread = threading.Thread(target=take)
    thread.start()
    for _ in range(8):  # its owner keeps it fresh: not broken
        os.utime(path)
        time.sleep(0.2)
        assert not acquired.is_set()
    thread.join(5)  # no more refreshes: broken after a second
    assert acquired.is_set()


def test_a_held_lock_is_refreshed_so_it_never_looks_stale(tmp_path):
    path = tmp_path / ".lock"
    with exclusive(path, stale=0.4):
        first = path.stat().st_mtime
        time.sleep(0.5)
        assert path.stat().st_mtime > first


def test_held_serialises_writers(tmp_path):
    path, inside, overlaps = tmp_path / ".results.lock", [], []

    def write() -> None:
        for _ in range(20):
            with held(path):
                inside.append(1)
                overlaps.append(len(inside))
                time.sleep(0.002)
                inside.pop()

    threads = [threading.Thread(target=write) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(overlaps) == 60 and max(overlaps) == 1
