"""Exhaustive check of the production lease code: every interleaving of disk I/O, bounded.

``world``: simulated hosts stepping the real ``PaxosLease`` step machines (``acquire_io``, ...)
one I/O at a time, the ground-truth model, the invariants, snapshots and the host-step memo;
``explore``: depth-first search with state hashing; ``python -m tests.exhaustive`` runs a named
or generic world (docs/testing.md, "Exhaustive check").
"""
