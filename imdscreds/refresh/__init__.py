"""The refresh engine: hands out role credentials, refreshing them ahead of expiry.

Independent of IMDS: it calls a ``fetch`` function and reads time through the clock seam. The rules
(DESIGN.md §4):

- The caller's path reads one immutable snapshot without a lock: the credentials and a deadline on
  the monotonic clock, both computed once per fetch. One float compare decides; no datetime.
- Advisory window (15 min before expiry, plus up to 5 min of jitter so a fleet does not refresh in
  step): the first caller past the deadline refreshes, everyone else returns the current credentials
  at once. A failure is logged, never raised; the next attempt waits a jittered backoff.
- Mandatory window (1 min before expiry): callers wait for the one refresh in flight and re-read the
  snapshot after it (single flight: N threads, one fetch) -- unless the last attempt failed, since
  waiting on an IMDS that is down only turns an outage into latency.
- IMDS handing back the credentials it gave last time (it promises new ones only 5 min before
  expiry) is answered with backoff, never a hot loop.
- Static stability: when IMDS is down, or hands out credentials that have already expired, keep
  serving the last credentials past their expiry, in extensions of 5-15 min (jittered), with one
  WARNING per outage, and poll IMDS with bounded backoff instead of on every call. A caller sees an
  exception only when there never were credentials.
- Before the first credentials, a failed fetch is shared and backed off: callers until the next
  attempt get a copy of its error at once, so N callers of a broken IMDS cost it a bounded number
  of requests (``RefreshPolicy.first_fetch_backoff``).
- An optional daemon thread refreshes at the advisory point, so callers never wait.
- Time: a credentials' remaining life is measured against the server's clock (its ``Date``, in
  ``RoleCredentials.server_time``) as well as the local one, and the shorter is taken, so a local
  clock that is behind at the fetch cannot stretch it. Deadlines run on the monotonic clock, which NTP steps do not move; but it
  stops while the host is suspended (EC2 hibernation) and the wall clock does not. Each snapshot
  notes both clocks when it was made; whenever they have drifted apart since, the larger of the two
  elapsed times is taken as true and the deadlines move. That is looked at on every slow path, by
  the prefetch thread, and by one watcher thread per process every couple of seconds, so the hot
  path keeps its single monotonic read and a read soon after a resume refreshes.
- Fork safety: in a child process the lock is new (a parent thread may have held the old one at
  fork time) and the parent's prefetch thread, which does not exist in the child, is forgotten.

The package, one concern a module: ``_snapshot`` (the snapshot and its lock-free reads),
``schedule`` (when to fetch next: pure arithmetic), ``_stability`` (serving the last set while IMDS
fails), ``_clockwatch`` (clock reconciliation and its watcher thread), ``_prefetch`` (the prefetch
thread), ``_fork`` (fork handling), and ``_engine`` (:class:`RefreshingCredentials`, composing them).
"""

from __future__ import annotations

from imdscreds.policy import RefreshPolicy
from imdscreds.refresh._engine import RefreshingCredentials

__all__ = ["RefreshPolicy", "RefreshingCredentials"]
