"""Stop signals: a storm of them runs a role's stop once and never nests its handler."""
import signal
import sys

import pytest

from snowmelt.lifecycle import STOP_SIGNALS, on_stop_signals


@pytest.fixture
def stop_signals_restored():
    saved = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def test_signals_arriving_while_the_stop_runs_do_not_start_it_again(stop_signals_restored):
    # each signal raised inside the action is handled at once, inside it: what a SIGTERM storm does to a
    # handler a busy process runs slowly. Nested, the handler would run the action again and again until
    # Python's recursion limit.
    calls = []

    def action(signum):
        calls.append(signum)
        for _ in range(sys.getrecursionlimit()):
            signal.raise_signal(signal.SIGTERM)
        signal.raise_signal(signal.SIGINT)

    on_stop_signals(action)
    signal.raise_signal(signal.SIGTERM)
    assert calls == [signal.SIGTERM]
    signal.raise_signal(signal.SIGINT)  # and after it: still handled, nothing run
    assert calls == [signal.SIGTERM]


def test_sigint_alone_stops_too(stop_signals_restored):
    calls = []
    on_stop_signals(calls.append)
    signal.raise_signal(signal.SIGINT)
    assert calls == [signal.SIGINT]
