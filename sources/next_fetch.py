"""When a source is next due: a pure function of the last fetch's result.

Success waits the source's interval, or longer if the server said its response stays fresh
(Cache-Control max-age, RFC 9111 §5.2.2.1). Failure backs off exponentially — interval, 2×,
4×… capped at `max_backoff_minutes` — but never sooner than the server's Retry-After
(RFC 9110 §10.2.3).
"""

from __future__ import annotations

from datetime import datetime, timedelta

#: 2**30 intervals is far past any sensible cap; stops huge integers for long failure runs.
_MAX_DOUBLINGS = 30


def next_fetch_at(
    now: datetime,
    *,
    ok: bool,
    interval_minutes: int,
    consecutive_failures: int,
    retry_after: float | None,
    max_age: float | None,
    max_backoff_minutes: int,
) -> datetime:
    """The earliest time the source should be fetched again.

    - ok: `now + max(interval, max_age)`; max_age is honoured only up to the back-off cap, so a
      CDN's year-long max-age on a feed file cannot silence a source.
    - failed: `now + min(interval * 2**(failures-1), max_backoff)`, but at least `retry_after`
      (the server asked for that explicitly, so it wins over the cap).

    A Retry-After sent with a successful response is honoured too.
    """
    interval = max(0.0, float(interval_minutes)) * 60.0
    cap = max(float(max_backoff_minutes) * 60.0, interval)
    if ok:
        delay = max(interval, min(max_age or 0.0, cap))
    else:
        doublings = min(max(consecutive_failures, 1) - 1, _MAX_DOUBLINGS)
        delay = min(interval * 2**doublings, cap)
    delay = max(delay, retry_after or 0.0)
    return now + timedelta(seconds=delay)
