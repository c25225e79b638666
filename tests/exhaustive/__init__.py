"""Exhaustive check of the production lease code: every interleaving of disk I/O, bounded.

``stepped``: the storage seam that hands each read and write to the explorer; ``world``: simulated
hosts running the real ``PaxosLease`` in threads, the ground-truth model and the invariants;
``explore``: depth-first search with state hashing; ``python -m tests.exhaustive`` runs deeper bounds.
"""
