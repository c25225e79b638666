#!/usr/bin/env python3
"""`make demo`: a lease moves from a crashed host to a live one, on three test hosts set up with the
Ansible collection lockengine.cluster.

1. build the collection tarball and install it into a private collections path;
2. start three systemd-nspawn test hosts (testhosts/) that share one disk, with virtual watchdogs;
3. run tools/demo/site.yml: the roles watchdog, engine and lockspace (lockspace "demo", resource "vmdisk");
4. node1 holds vmdisk; every host's lease_info shows it; node2 is refused (ACQUIRE_IDLIVE);
5. the harness crashes node1; node2 and node3 see host 1 go LIVE -> FAIL -> DEAD, and node2 gets the
   lease only once host 1 is dead (8 x io_timeout + fire timeout after its last renewal);
6. everything is removed (also after a failure or Ctrl-C) and a summary is printed.

It uses test network $LOCKENGINE_TESTHOSTS_NET, 2 unless set, so the tests can use net 0 meanwhile.
Needs root and the dev venv (`make demo` sets both up). `--json` prints a machine-readable summary on
stdout; the progress then goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent / "demo"))
from demo_support import REPO, VENV_BIN, Ansible, Console, DemoError, run  # noqa: E402

NET_ENV = "LOCKENGINE_TESTHOSTS_NET"
DEFAULT_NET = "2"

LOCKSPACE, RESOURCE, DISK, RESOURCE_OFFSET = "demo", "vmdisk", "/dev/lockdisk0", "1M"
RESOURCE_ARG = f"{LOCKSPACE}:{RESOURCE}:{DISK}:{RESOURCE_OFFSET}"
LOCKENGINE = "/opt/lockengine/bin/lockengine"  # where the engine role installs the CLI
HOLDER, TAKER, WITNESS = "node1", "node2", "node3"


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


@dataclass
class Asks:
    """TAKER's requests for the lease after the crash."""

    started: float
    attempts: int = 0
    refusals: int = 0
    waiting: bool = False


class Demo:
    def __init__(self, args: argparse.Namespace, console: Console) -> None:
        self.args = args
        self.io, self.fire = args.io_timeout, args.fire_timeout
        self.dead_after = 8 * self.io + self.fire
        self.say = console.say
        self.console = console
        self.work = Path(tempfile.mkdtemp(prefix="lockengine-demo-"))
        self.ansible = Ansible(self.work)
        self.cluster: Any = None
        self.cluster_made = False
        self.ids: dict[str, int] = {}
        self.summary: dict[str, Any] = {
            "ok": False, "net": int(os.environ[NET_ENV]), "io_timeout": self.io, "fire_timeout": self.fire,
            "host_dead_seconds": self.dead_after, "lockspace": LOCKSPACE, "resource": RESOURCE,
            "disk": DISK, "resource_offset": RESOURCE_OFFSET, "durations": {},
        }

    # ------------------------------------------------------------------ helpers on the hosts
    def host_json(self, host: str, cmd: str, timeout: float = 30) -> dict[str, Any]:
        rc, out, err = self.cluster.run(host, cmd, timeout=timeout)
        try:
            doc: dict[str, Any] = json.loads(out)
        except ValueError:
            raise DemoError(f"{host}: `{cmd}` printed no JSON (rc {rc}): {out.strip()} {err.strip()}") from None
        return doc

    def host_view(self, host: str) -> list[dict[str, Any]]:
        doc = self.host_json(host, f"{LOCKENGINE} client host_status -s {LOCKSPACE} -D --json")
        if not doc.get("ok"):
            raise DemoError(f"{host}: host_status failed: {doc.get('error')}")
        hosts: list[dict[str, Any]] = doc["hosts"]
        return hosts

    def leader(self, host: str) -> dict[str, Any]:
        return self.host_json(host, f"{LOCKENGINE} direct read-leader -r {RESOURCE_ARG} --json")

    def start_holder(self, host: str, tag: str) -> None:
        """`client command -r vmdisk -- sleep` in the background on `host`; its exit status lands in a file."""
        inner = (f"{LOCKENGINE} client command --json -r {RESOURCE_ARG} -- /bin/sleep 3600 "
                 f">/run/demo-holder-{tag}.out 2>&1; echo $? >/run/demo-holder-{tag}.rc")
        rc, out, err = self.cluster.run(host, f"setsid -f sh -c '{inner}' </dev/null >/dev/null 2>&1")
        if rc != 0:
            raise DemoError(f"{host}: could not start the lease holder: {out} {err}")

    def holder_result(self, host: str, tag: str) -> dict[str, Any] | None:
        """None while the holder runs (acquiring or holding); else its exit status and output."""
        rc, out, _ = self.cluster.run(host, f"cat /run/demo-holder-{tag}.rc 2>/dev/null && "
                                            f"cat /run/demo-holder-{tag}.out")
        if rc != 0:
            return None
        status, _, text = out.partition("\n")
        try:
            doc = json.loads(text)
        except ValueError:
            doc = {"output": text.strip()}
        return {"rc": int(status.strip()), **doc}

    def lease_table(self, pattern: str) -> dict[str, dict[str, Any]]:
        results = self.ansible.adhoc(pattern, "lockengine.cluster.lease_info", f"path={DISK} offset={RESOURCE_OFFSET}")
        views = {}
        for host, r in results.items():
            lease = r["leases"][0]
            views[host] = {k: lease.get(k) for k in ("owner_id", "owner_generation", "lver", "held", "owner_state",
                                                     "owner_name", "timestamp")}
            self.say(f"  {host:<6} sees {lease['resource']}: owner host {lease['owner_id']} "
                     f"(gen {lease['owner_generation']}), lver {lease['lver']}, "
                     f"{'held' if lease['held'] else 'free'}, owner {lease['owner_state']}")
        return views

    # ------------------------------------------------------------------ the steps
    def build(self) -> None:
        self.console.step(1, "Build the collection and install it into a private collections path",
                          "ansible-galaxy collection build + install -p (never into ~/.ansible)")
        tarball = self.ansible.install_collection()
        self.say(f"  {tarball.name} installed in {self.work / 'collections'}")

    def up(self) -> None:
        from testhosts import Cluster, HarnessError

        self.console.step(2, "Start three test hosts that share one disk",
                          "systemd-nspawn hosts with real systemd; each has its own loop device over one backing "
                          "file (/dev/lockdisk0)\n   and a virtual watchdog that resets the host when petting stops."
                          "\n   The first run also builds the host image (debootstrap, about a minute, cached).")
        self.cluster = Cluster()
        if self.cluster.is_up() or (self.cluster.state_dir / "state.json").exists():
            raise DemoError(f"a test cluster already exists in {self.cluster.state_dir} (net {os.environ[NET_ENV]}); "
                            f"it is not the demo's to remove: run `{NET_ENV}={os.environ[NET_ENV]} "
                            f"python -m testhosts down` if it is yours, or pick another net with {NET_ENV}")
        self.cluster_made = True  # up() removes a half-made cluster itself; down() then finds nothing
        try:
            desc = self.cluster.up(3, disks=1, sector_size=512, watchdog_timeout=float(self.fire))
        except HarnessError as exc:
            self.cluster_made = False  # a failed up removed what it made (or was refused and made nothing)
            raise DemoError(f"the test hosts did not start: {exc}") from None
        self.ansible.inventory = self.cluster.inventory_path
        for h in desc["hosts"]:
            self.say(f"  {h['name']}  {h['address']}  {DISK} = {h['loop_devices'][DISK]}  watchdog /dev/watchdog0 "
                     f"(resets after {self.fire} s without a pet)")

    def converge(self) -> None:
        self.console.step(3, "Run the collection's roles (tools/demo/site.yml)",
                          f"watchdog -> engine -> lockspace; io_timeout {self.io} s, watchdog fire timeout {self.fire} s")
        log = self.work / "site.log"
        started = time.monotonic()
        recap = self.ansible.playbook(self.console, {"demo_io_timeout": self.io, "demo_fire_timeout": self.fire}, log)
        self.summary["durations"]["playbook"] = round(time.monotonic() - started, 1)
        for host, counts in sorted(recap.items()):
            self.say(f"  {host:<6} {counts}")
        # Peers show "unknown" until this host saw one of their renewals (2 x io_timeout).
        deadline = time.monotonic() + 8 * self.io + 10
        while not all(sum(h["state"] == "LIVE" for h in self.host_view(n)) == 3 for n in (HOLDER, TAKER, WITNESS)):
            if time.monotonic() > deadline:
                raise DemoError("the hosts do not all see each other live after joining")
            time.sleep(0.5)
        self.say(f"  $ ansible all -m lockengine.cluster.host_status -a 'lockspace={LOCKSPACE}'")
        for host, r in self.ansible.adhoc("all", "lockengine.cluster.host_status", f"lockspace={LOCKSPACE}").items():
            self.ids[host] = int(r["local_host_id"])
            seen = ", ".join(f"{h['host_id']} {h['state']}" for h in r["hosts"])
            self.say(f"  {host:<6} is host {r['local_host_id']}; sees hosts: {seen}")
        self.summary["host_ids"] = dict(self.ids)

    def hold(self) -> dict[str, Any]:
        self.console.step(4, f"{HOLDER} takes the lease {RESOURCE}; {TAKER} is refused",
                          f"`lockengine client command -r {RESOURCE_ARG} -- sleep 3600` on {HOLDER}: the lease lasts "
                          "as long as the command runs")
        self.start_holder(HOLDER, "1")
        deadline = time.monotonic() + 30
        while (ld := self.leader(HOLDER)).get("owner_id") != self.ids[HOLDER] or not ld.get("timestamp"):
            if (res := self.holder_result(HOLDER, "1")) is not None or time.monotonic() > deadline:
                raise DemoError(f"{HOLDER} did not get {RESOURCE}: {res}")
            time.sleep(0.3)
        self.say(f"  {HOLDER} holds {RESOURCE} (lver {ld['lver']})")
        self.say(f"  $ ansible all -m lockengine.cluster.lease_info -a 'path={DISK} offset={RESOURCE_OFFSET}'")
        before = self.lease_table("all")
        rc, out, err = self.cluster.run(TAKER, f"{LOCKENGINE} client command --json -r {RESOURCE_ARG} -- /bin/true")
        if rc == 0:
            raise DemoError(f"{TAKER} got {RESOURCE} while {HOLDER} holds it: two owners (this is a bug)")
        try:
            refusal = json.loads(out)
        except ValueError:
            refusal = {"output": out + err}
        error = refusal.get("error") or {}
        if error.get("name") != "ACQUIRE_IDLIVE":
            raise DemoError(f"{TAKER} should be refused with ACQUIRE_IDLIVE while {HOLDER} holds the lease: {refusal}")
        self.say(f"  {TAKER} asks for {RESOURCE}: refused, {error['name']} ({error['code']}): {error.get('message')}")
        self.summary["refusal"] = {"host": TAKER, "name": error["name"], "code": error["code"]}
        self.summary["before"] = {"owner_id": ld["owner_id"], "lver": ld["lver"], "views": before}
        return ld

    def crash_and_take_over(self, before: dict[str, Any]) -> None:
        id1, id2 = self.ids[HOLDER], self.ids[TAKER]
        self.console.step(5, f"Crash {HOLDER}; {TAKER} takes {RESOURCE} once host {id1} is dead",
                          f"A host that stops renewing is FAIL after 8 x io_timeout = {8 * self.io} s and DEAD after "
                          f"8 x io_timeout + fire timeout = {self.dead_after} s:\n   by then its watchdog has "
                          "reset it, so its leases can be taken without two hosts ever holding one.")
        crashed = time.monotonic()
        self.cluster.crash(HOLDER)
        self.say(f"  crashed {HOLDER} (SIGKILL of its init: its daemon and lease holder died at once)", crashed)
        dump = self.host_json(TAKER, f"{LOCKENGINE} direct dump {DISK}:0:1M --json")
        slot = next(h for h in dump["areas"][0]["hosts"] if h["host_id"] == id1)
        last = float(slot["timestamp"])  # host 1's monotonic second of its last renewal (the clock is shared)
        self.say(f"  host {id1} last renewed at monotime {slot['timestamp']} ({crashed - last:.1f} s before the crash); "
                 f"others may take its leases from {last + self.dead_after:.0f} (last renewal + {self.dead_after} s)",
                 last)
        self.summary["crash"] = {"host": HOLDER, "monotime": round(crashed, 2), "last_renewal": int(last)}

        states: dict[str, list[dict[str, Any]]] = {TAKER: [], WITNESS: []}
        noticed: set[str] = set()
        asks = Asks(started=crashed)
        takeover: dict[str, Any] | None = None
        deadline = crashed + self.dead_after + 60
        while takeover is None or any(not s or s[-1]["state"] != "DEAD" for s in states.values()):
            if time.monotonic() > deadline:
                raise DemoError(f"no takeover {time.monotonic() - last:.0f} s after host {id1}'s last renewal "
                                f"(states {states})")
            self.observe(id1, last, crashed, states, noticed)
            if takeover is None:
                self.ask(id1, asks)
                ld = self.leader(TAKER)
                if ld.get("owner_id") == id2 and ld["lver"] > before["lver"]:
                    takeover = ld
                    self.say(f"  {TAKER} acquired {RESOURCE}: lver {before['lver']} -> {ld['lver']}; its leader's "
                             f"timestamp {ld['timestamp']} is host {id1}'s last renewal + "
                             f"{ld['timestamp'] - last:.0f} s (allowed from + {self.dead_after} s)")
            time.sleep(0.5)
        self.summary["observed"] = states
        self.summary["takeover"] = {
            "host": TAKER, "owner_id": takeover["owner_id"], "lver": takeover["lver"],
            "leader_timestamp": takeover["timestamp"], "after_renewal": takeover["timestamp"] - int(last),
            "attempts": asks.attempts, "refused_while_live": asks.refusals,
        }

    def observe(self, id1: int, last: float, crashed: float, states: dict[str, list[dict[str, Any]]],
                noticed: set[str]) -> None:
        """Each survivor's daemon's view of host id1; print what changed."""
        for obs in states:
            now = time.monotonic()
            h = next(x for x in self.host_view(obs) if x["host_id"] == id1)
            # A check may see no change between two live renewals; one after the crash means it stopped.
            if obs not in noticed and h["last_check"] > max(h["last_live"] + 0.001, crashed):
                noticed.add(obs)
                self.say(f"  {obs}'s check finds host {id1}'s record unchanged since {obs} saw it change at "
                         f"{h['last_live'] - last:+.1f} s; FAIL and DEAD count from that moment", h["last_check"])
            if not states[obs] or states[obs][-1]["state"] != h["state"]:
                states[obs].append({"state": h["state"], "seen": round(now, 2), "after_renewal": round(now - last, 1),
                                    "last_live": h["last_live"]})
                self.say(f"  {obs} sees host {id1} {h['state']:<4} ({now - last:.1f} s after its last renewal)", now)

    def ask(self, id1: int, asks: Asks) -> None:
        """Keep one `client command` for the lease running on TAKER: refused while host id1 still looks
        alive to TAKER's daemon, then waiting in that daemon until host id1 is dead."""
        res = self.holder_result(TAKER, str(asks.attempts)) if asks.attempts else None
        if asks.attempts == 0 or res is not None:
            if res is not None:
                asks.refusals += 1
                name = res.get("error", {}).get("name")
                if name != "ACQUIRE_IDLIVE":
                    raise DemoError(f"{TAKER}'s acquire failed unexpectedly: {res}")
                if asks.refusals == 1:
                    self.say(f"  {TAKER} asked for {RESOURCE}: refused, {name}: host {id1} still looked alive to "
                             f"{TAKER} (its record had changed at {TAKER}'s last check); asking again", asks.started)
            asks.attempts += 1
            asks.started = time.monotonic()
            self.start_holder(TAKER, str(asks.attempts))
        elif not asks.waiting and time.monotonic() - asks.started > 2:
            asks.waiting = True  # a refusal comes back at once; this request is being held by the daemon
            self.say(f"  {TAKER}'s request waits in its daemon: host {id1} is no longer renewing, and the ballot may "
                     "run only once it is dead", asks.started)

    def show_after(self) -> None:
        self.say(f"  $ ansible 'all:!{HOLDER}' -m lockengine.cluster.lease_info -a 'path={DISK} offset={RESOURCE_OFFSET}'")
        after = self.lease_table(f"all:!{HOLDER}")
        ld = self.leader(TAKER)
        self.summary["after"] = {"owner_id": ld["owner_id"], "lver": ld["lver"], "views": after}
        rc, text, err = self.cluster.run(TAKER, f"{LOCKENGINE} direct dump {DISK}")
        if rc != 0:
            raise DemoError(f"direct dump on {TAKER} failed: {err}")
        self.say(f"  $ lockengine direct dump {DISK}     (on {TAKER}; the same table as `sanlock direct dump`)")
        print("\n".join("    " + line for line in text.rstrip().splitlines()), file=self.console.stream, flush=True)
        self.summary["dump"] = text

    def teardown(self) -> None:
        if self.cluster is None:
            return
        self.console.step(6, "Tear down", "processes by pid, loop devices, links, cgroups, the state dir")
        old = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
        try:
            self.cluster.close()
            if self.cluster_made:
                started = time.monotonic()
                removed = self.cluster.down()
                self.say(f"  test hosts removed in {time.monotonic() - started:.1f} s" if removed
                         else "  nothing to remove")
        finally:
            for sig, handler in old.items():
                signal.signal(sig, handler)
        proc = run([sys.executable, "-m", "testhosts", "status"], dict(os.environ), timeout=60)
        self.summary["cleanup"] = {"status_rc": proc.returncode, "status": (proc.stdout + proc.stderr).strip(),
                                   "cluster_up": self.cluster.is_up()}
        self.say(f"  $ python -m testhosts status  ->  {(proc.stdout + proc.stderr).strip()}")


def summary_text(s: dict[str, Any]) -> str:
    t, c, refusal = s["takeover"], s["crash"], s["refusal"]
    fail = next((e for e in s["observed"][TAKER] if e["state"] == "FAIL"), None)
    dead = next((e for e in s["observed"][TAKER] if e["state"] == "DEAD"), None)
    return (
        f"Summary: three test hosts joined lockspace {s['lockspace']} through the collection's roles "
        f"(playbook {s['durations'].get('playbook', 0):.0f} s). {HOLDER} (host {s['before']['owner_id']}) held "
        f"{s['resource']} at lver {s['before']['lver']}; {TAKER} was refused with {refusal['name']} "
        f"({refusal['code']}). {HOLDER} crashed {c['monotime'] - c['last_renewal']:.1f} s after its last renewal; "
        f"{TAKER} saw host {s['before']['owner_id']} FAIL after {fail['after_renewal'] if fail else '?'} s and DEAD "
        f"after {dead['after_renewal'] if dead else '?'} s (rules: {8 * s['io_timeout']} s and "
        f"{s['host_dead_seconds']} s, observed every half second), and acquired the lease "
        f"{t['after_renewal']} s after that renewal, never earlier than 8 x io_timeout + fire timeout = "
        f"{s['host_dead_seconds']} s: lver {s['before']['lver']} -> {t['lver']}, owner host {t['owner_id']}. "
        f"Everything was removed; the whole demo took {s['durations']['total']:.0f} s."
    )


def _preflight() -> None:
    if os.geteuid() != 0:
        raise DemoError("the demo starts test hosts (network namespaces, loop devices, cgroups): run it as root")
    missing = [t for t in ("systemd-nspawn", "losetup", "ip", "ssh") if shutil.which(t) is None]
    missing += [str(VENV_BIN / t) for t in ("ansible-playbook", "ansible-galaxy", "ansible")
                if not (VENV_BIN / t).exists()]
    if missing:
        raise DemoError(f"missing {', '.join(missing)}: run `make demo` (it installs the Debian packages and the "
                        "dev venv) or tools/install-system-packages.sh and pip install -e '.[dev]'")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--io-timeout", type=int, default=2, help="lockspace io_timeout in seconds (1-10, default 2)")
    p.add_argument("--fire-timeout", type=int, default=10,
                   help="watchdog fire timeout in seconds (5-60, default 10); the host is dead 8*io + this after "
                        "its last renewal")
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout (progress to stderr)")
    p.add_argument("--keep-work", action="store_true", help="keep the work dir (collection build, logs)")
    args = p.parse_args(argv)
    if not 1 <= args.io_timeout <= 10:
        p.error(f"--io-timeout {args.io_timeout}: use 1 to 10 seconds (the demo waits 8 x io_timeout + fire)")
    if not 5 <= args.fire_timeout <= 60:
        p.error(f"--fire-timeout {args.fire_timeout}: use 5 to 60 seconds (the engine's minimum is 5)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault(NET_ENV, DEFAULT_NET)  # before testhosts is imported: it reads it then
    if os.environ[NET_ENV] not in [str(n) for n in range(10)]:
        print(f"demo: {NET_ENV}={os.environ[NET_ENV]!r} is not valid; use 0..9 (one test cluster per number; "
              f"the demo's default is {DEFAULT_NET})", file=sys.stderr)
        return 2
    sys.path.insert(0, str(REPO))
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    # Ctrl-C, kill and a closed terminal all end in the same teardown (also when started in the
    # background, where a shell leaves SIGINT ignored).
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    logging.getLogger("paramiko").setLevel(logging.CRITICAL)  # a crashed host's dropped link is expected
    console = Console(sys.stderr if args.json else sys.stdout)
    started = time.monotonic()
    console.say(f"lockengine demo on test network {os.environ[NET_ENV]} ({NET_ENV}); Ctrl-C removes everything")
    demo: Demo | None = None
    error = ""
    interrupted = False
    try:
        _preflight()
        demo = Demo(args, console)
        demo.build()
        demo.up()
        demo.converge()
        before = demo.hold()
        demo.crash_and_take_over(before)
        demo.show_after()
    except KeyboardInterrupt as exc:
        error, interrupted = f"interrupted ({exc or 'SIGINT'})", True
    except DemoError as exc:
        error = str(exc)
    except Exception as exc:  # a harness or SSH failure: still tear down and say what happened
        error = f"{type(exc).__name__}: {exc}"
    finally:
        if demo is not None:
            try:
                demo.teardown()
            except Exception as exc:
                error = (error + "\n" if error else "") + (
                    f"teardown failed ({exc}); run `{NET_ENV}={os.environ[NET_ENV]} python -m testhosts down`")
    summary: dict[str, Any] = demo.summary if demo is not None else {"ok": False}
    summary["durations"] = dict(summary.get("durations", {}), total=round(time.monotonic() - started, 1))
    cleaned = demo is None or not summary.get("cleanup", {}).get("cluster_up", True)
    summary["ok"] = not error and cleaned
    summary["error"] = error or None
    if demo is not None:
        if (summary["ok"] or interrupted) and not args.keep_work:
            shutil.rmtree(demo.work, ignore_errors=True)
        else:
            summary["work_dir"] = str(demo.work)
    if summary["ok"]:
        print("\n" + summary_text(summary), file=console.stream, flush=True)
    else:
        print(f"\nThe demo failed: {error or 'the cluster was not removed'}"
              + (f"\n(work dir with logs kept: {summary['work_dir']})" if "work_dir" in summary else ""), file=console.stream)
    if args.json:
        print(json.dumps(summary, indent=2))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
