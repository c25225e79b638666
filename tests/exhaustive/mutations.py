"""Deliberately broken variants of the production lease code, injected by subclass (never by flags
in lockengine): the explorer must find a counterexample for each (tests/exhaustive/test_mutations.py)."""

from __future__ import annotations

from dataclasses import replace

from lockengine.liveness import RUN
from lockengine.ondisk import AreaSlots, DBlock, HostSlot, Leader, verify_paxos_leader
from lockengine.paxos import IO, PaxosLease

from .world import ModelLiveness


class ZeroedPhase1(PaxosLease):
    """sanlock's (and lockengine's before issue 8) phase 1: a fresh dblock with bal/inp zeroed."""

    def _accepted(self, lver: int, on_disk: HostSlot | None) -> DBlock | None:
        return None


class NoAbortRule(PaxosLease):
    """Phases that never abort on a higher mbal: the judgement sees our mbal as the highest."""

    def _phase_read(self, span: int, num_hosts: int, mine: DBlock) -> IO[tuple[DBlock | None, set[tuple[int, int]]]]:
        return (yield from super()._phase_read(span, num_hosts, replace(mine, mbal=(1 << 63) - 1)))


class UncheckedReleased(PaxosLease):
    """The RELEASED shortcut trusting the owner's dblock flag alone (no write_id, version or value checks)."""

    def _owner_released(self, cur: Leader, slots: AreaSlots) -> bool:
        owner = slots.get(cur.owner_id)
        return owner is not None and owner.checksum_ok and owner.dblock.released


class EarlyTakeover(ModelLiveness):
    """Takeover before host_dead: an owner that stopped renewing counts as dead at once."""

    def verdict(self, host_id: int, generation: int) -> str:
        owner = self.run.by_id.get(host_id)
        if owner is not None and owner.state == "stalled":
            return RUN
        return super().verdict(host_id, generation)


class IgnoredSharers(PaxosLease):
    """An exclusive winner that never looks at the shared holders' mode blocks."""

    def _clear_sharers(self, sharers: set[tuple[int, int]]) -> IO[None]:
        return
        yield  # a step machine without I/O


class Sanlock38NumHosts(PaxosLease):
    """num_hosts as sanlock 3.8 serves it: ballots read dblocks 1..num_hosts only, and a lowering
    ignores the shared holders above it."""

    def _judged(self, ld: Leader) -> int:
        return ld.num_hosts

    def _guard_num_hosts(self, cur: Leader, sharers: set[tuple[int, int]]) -> None:
        return


class NoNumHostsRefusal(Sanlock38NumHosts):
    """Sanlock38NumHosts, and a host above num_hosts runs ballots anyway (no LEADER_NUMHOSTS)."""

    def _verify(self, buf: bytes) -> Leader:
        return verify_paxos_leader(buf, self.space_name, self.resource_name)
