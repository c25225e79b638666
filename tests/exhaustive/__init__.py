"""Exhaustive check of the production lease code: every interleaving of disk I/O, bounded.

``world``: simulated hosts stepping the real ``PaxosLease`` step machines (``acquire_io``, ...)
one I/O at a time, the ground-truth model, the invariants, snapshots and the host-step memo;
``search``: the depth-first search over stored state keys that both checks share (this one and the
delta lease's, ``delta_world``); ``explore``: the Disk Paxos worlds on it; ``python -m tests.exhaustive``
runs a named world of either kind, or a generic one (docs/testing.md, "Exhaustive check").
"""
