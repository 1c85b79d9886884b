"""A small harness for bad-input property tests (used by tests/test_inputs_*.py and
tests/studies/test_*_inputs.py).

``check_rejects(fn, kwargs, arg, bad)`` calls ``fn(**kwargs)`` with ``kwargs[arg]`` replaced by
``bad`` and asserts it raises ``ValueError`` or ``TypeError`` whose message names ``arg``,
within ``TIME_LIMIT`` seconds; a result, a hang or another exception fails.
"""

from __future__ import annotations

import math
import signal
from contextlib import contextmanager

import numpy as np
from hypothesis import strategies as st

TIME_LIMIT = 5


class Hang(Exception):
    pass


@contextmanager
def time_limit(seconds: int = TIME_LIMIT):
    def handler(signum, frame):
        raise Hang(f"call did not return within {seconds} s")

    old = signal.signal(signal.SIGALRM, handler)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def check_rejects(fn, kwargs: dict, arg: str, bad, *, names=None) -> None:
    """Assert ``fn(**{**kwargs, arg: bad})`` raises a ValueError/TypeError naming ``arg``
    (or one of ``names``)."""
    call = {**kwargs, arg: bad}
    wanted = (arg,) if names is None else tuple(names)
    try:
        with time_limit():
            result = fn(**call)
    except (ValueError, TypeError) as err:
        msg = str(err)
        assert any(w in msg for w in wanted), (
            f"{fn.__name__}({arg}={bad!r}) raised {type(err).__name__} not naming {wanted}: {msg}"
        )
        return
    except Hang:
        raise AssertionError(f"{fn.__name__}({arg}={bad!r}) hangs") from None
    except Exception as err:  # noqa: BLE001
        raise AssertionError(
            f"{fn.__name__}({arg}={bad!r}) raised an obscure {type(err).__name__}: {err}"
        ) from None
    raise AssertionError(
        f"{fn.__name__}({arg}={bad!r}) returned {type(result).__name__} instead of refusing"
    )


# Strategies of values that are wrong for an argument of the named kind.
not_a_number = st.sampled_from(["3", None, [1.0], {"a": 1}, object()])
non_finite = st.sampled_from([math.nan, math.inf, -math.inf])
bad_count = st.one_of(st.integers(max_value=0), st.sampled_from([1.5, "4", None, True, math.nan]))
bad_seed = st.one_of(
    st.integers(max_value=-1),
    st.integers(min_value=2**63, max_value=2**70),
    st.sampled_from([1.5, "0", None, True]),
)
bad_probability = st.one_of(
    st.floats(min_value=1.0001, max_value=1e6),
    st.floats(max_value=-1e-4, min_value=-1e6),
    non_finite,
)
bad_array = st.sampled_from(
    [np.zeros((0, 2)), np.array([[np.nan, 0.0]]), np.array([[np.inf, 1.0]]), "abc", None]
)
