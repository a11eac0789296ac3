"""PairTally: counts added by many threads without a lock are all there, also after the threads end."""

from __future__ import annotations

import threading

from conftest import run_together

from feedsvc.tally import PairTally


def test_counts_from_many_threads_are_exact_and_outlive_them() -> None:
    tally = PairTally()
    threads, rounds = 8, 5000

    def add() -> None:
        for i in range(rounds):
            tally.add("feed" if i % 2 else "other", 1, i % 3)

    run_together(add, threads)
    extra = {"feed": sum(i % 3 for i in range(1, rounds, 2)), "other": sum(i % 3 for i in range(0, rounds, 2))}
    assert tally.totals() == {key: (threads * rounds // 2, threads * extra[key]) for key in ("feed", "other")}
    assert not tally._live, "an ended thread's rows are folded into the totals, not kept per thread"


def test_a_reading_while_a_thread_adds_never_goes_back() -> None:
    tally = PairTally()
    done = threading.Event()

    def add() -> None:
        while not done.is_set():
            tally.add("feed", 1, 2)

    adder = threading.Thread(target=add)
    adder.start()
    try:
        seen = [tally.totals().get("feed", (0, 0))[0] for _ in range(2000)]
    finally:
        done.set()
        adder.join(timeout=10)
    assert seen == sorted(seen)
    assert tally.totals()["feed"][1] == 2 * tally.totals()["feed"][0]
