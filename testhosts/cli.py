"""``python -m testhosts``: the test-host harness's command line (see docs/harness.md)."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from . import image
from .cluster import Cluster
from .errors import HarnessError, UnknownHost
from .plan import (
    COMMAND,
    DEFAULT_BOOT_TIMEOUT,
    DEFAULT_DISK_SIZE,
    DEFAULT_WATCHDOG_TIMEOUT,
    default_image_dir,
    default_state_dir,
)
from .records import StatusRow

EXIT_ERROR = 1
EXIT_USAGE = 2


def _size(text: str) -> int:
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    text = text.strip().lower().removesuffix("ib").removesuffix("b")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def _sector_sizes(text: str) -> int | list[int]:
    values = [int(v) for v in text.split(",") if v.strip()]
    return values[0] if len(values) == 1 else values


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=COMMAND,
        description="lockengine test hosts: systemd-nspawn hosts on a private bridge, shared loop-device "
                    "disks with per-host fault injection, a virtual watchdog per host.")
    parser.add_argument("--state", type=Path, default=None,
                        help=f"state dir (default: $LOCKENGINE_TESTHOSTS_STATE or {default_state_dir()})")
    parser.add_argument("--image-dir", type=Path, default=None,
                        help=f"image cache (default: $LOCKENGINE_TESTHOSTS_IMAGES or {default_image_dir()})")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = sub.add_parser("up", help="start N hosts; prints the cluster description (JSON) on stdout")
    up.add_argument("n", type=int, help="number of hosts (named <prefix>1..<prefix>N)")
    up.add_argument("--disks", type=int, default=1, help="shared disks (default 1): /dev/lockdisk0...")
    up.add_argument("--sector-size", type=_sector_sizes, default=512,
                    help="logical sector size, 512 or 4096; one value for all disks or one per disk (512,4096)")
    up.add_argument("--disk-size", type=_size, default=DEFAULT_DISK_SIZE, help="size of each disk (default 64M)")
    up.add_argument("--watchdog-timeout", type=float, default=DEFAULT_WATCHDOG_TIMEOUT,
                    help=f"seconds of silence before an armed watchdog resets its host (default {DEFAULT_WATCHDOG_TIMEOUT:g})")
    up.add_argument("--bind-ro", action="append", default=[], metavar="SRC:DST",
                    help="bind a controller path read-only into every host (repeatable)")
    up.add_argument("--prefix", default="node", help="host name prefix (default node: node1, node2...)")
    up.add_argument("--names", type=lambda t: [n for n in t.split(",") if n], default=None, metavar="A,B,...",
                    help="explicit host names, one per host (e.g. molecule's platform names)")
    up.add_argument("--boot-timeout", type=float, default=DEFAULT_BOOT_TIMEOUT,
                    help=f"seconds to wait for sshd (default {DEFAULT_BOOT_TIMEOUT:g})")
    up.add_argument("--keep-on-failure", action="store_true", help="leave a failed up's pieces for inspection")
    up.add_argument("--persistent-root", action="store_true",
                    help="keep what a host writes to its root across `restart` (default: every boot starts afresh)")
    up.add_argument("--molecule", action="store_true",
                    help="print molecule's instance config (list of instance/address/user/port/identity_file)")

    sub.add_parser("down", help="remove everything the cluster made (also after a failed up)")
    for name, text in (("crash", "kill a host at once (SIGKILL of its init)"),
                       ("restart", "boot a host again with the same identity and address"),
                       ("freeze", "freeze every process of a host (hung host)"),
                       ("thaw", "resume a frozen host")):
        p = sub.add_parser(name, help=text)
        p.add_argument("host")
    for name, text in (("fail-storage", "the host's disk path goes read-only: writes fail with EPERM"),
                       ("heal-storage", "undo fail/slow/hang-storage on the host's path"),
                       ("hang-storage", "the host's I/O on its path hangs (1 byte/s) until healed")):
        p = sub.add_parser(name, help=text)
        p.add_argument("host")
        p.add_argument("--disk", type=int, default=None, help="only this disk index (default: all)")
    slow = sub.add_parser("slow-storage", help="throttle the host's path (default 1 I/O per second)")
    slow.add_argument("host")
    slow.add_argument("--iops", type=int, default=None, help="I/Os per second (default 1 when --bps is not given)")
    slow.add_argument("--bps", type=int, default=0, help="bytes per second")
    slow.add_argument("--disk", type=int, default=None)

    status = sub.add_parser("status", help="hosts, watchdogs, storage state")
    status.add_argument("--json", action="store_true")
    describe = sub.add_parser("describe", help="the cluster description (JSON), as printed by up")
    describe.add_argument("--molecule", action="store_true", help="molecule's instance config list")
    sub.add_parser("inventory", help="print the path of the Ansible inventory")
    wd = sub.add_parser("watchdog", help="a host's virtual watchdog state (JSON)")
    wd.add_argument("host")
    wd.add_argument("--events", action="store_true", help="the event log instead")
    run = sub.add_parser("run", help="run a command on a host over SSH (paramiko)")
    run.add_argument("--timeout", type=float, default=60.0)
    run.add_argument("host")
    run.add_argument("cmd", nargs="+", help="shell command; put -- before it when it has options")
    sub.add_parser("check-net", help="verify nothing outside the test subnet is routable from any host")
    img = sub.add_parser("image", help="build (once) and print the host image path")
    img.add_argument("--rebuild", action="store_true")
    img.add_argument("--prune", action="store_true",
                     help="remove cached images of older recipes (not the one a cluster in --state uses)")
    return parser


def _print_json(data: object) -> None:
    print(json.dumps(data, indent=2))


def _fmt_status(rows: list[StatusRow]) -> str:
    lines = [f"{'HOST':<8} {'ADDRESS':<13} {'ALIVE':<5} {'FROZEN':<6} {'WATCHDOG':<34} STORAGE"]
    for r in rows:
        wd = r["watchdog"]
        if not wd["running"]:
            wds = "harness process gone!"
        elif wd["armed"]:
            age = f"{wd['last_pet_age']:.1f}s ago" if wd["last_pet_age"] is not None else "never"
            wds = f"armed, pet {age}"
        else:
            wds = "disarmed"
        wds += f", resets {wd['resets']}"
        disks = " ".join(f"{d['path'].removeprefix('/dev/')}={d['state']}" for d in r["storage"]) or "-"
        lines.append(f"{r['name']:<8} {r['address']:<13} {'yes' if r['alive'] else 'no':<5} "
                     f"{'yes' if r['frozen'] else 'no':<6} {wds:<34} {disks}")
    return "\n".join(lines)


def _on_term(signum: int, _frame: object) -> None:
    # Turn SIGTERM into an exception so a failing `up` still removes what it made.
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # paramiko logs every refused or stalled handshake; the harness reports those itself
    logging.getLogger("paramiko").setLevel(logging.CRITICAL)
    signal.signal(signal.SIGTERM, _on_term)
    cluster = Cluster(args.state, image_dir=args.image_dir)
    try:
        return _dispatch(cluster, args)
    except UnknownHost as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        cluster.close()


def _dispatch(cluster: Cluster, args: argparse.Namespace) -> int:
    cmd = args.command
    if cmd == "up":
        description = cluster.up(args.n, disks=args.disks, sector_size=args.sector_size, disk_size=args.disk_size,
                                 watchdog_timeout=args.watchdog_timeout, bind_ro=args.bind_ro, prefix=args.prefix,
                                 names=args.names,
                                 boot_timeout=args.boot_timeout, keep_on_failure=args.keep_on_failure,
                                 persistent_root=args.persistent_root)
        _print_json(cluster.molecule_instances() if args.molecule else description)
    elif cmd == "down":
        started = time.monotonic()
        if cluster.down():
            print(f"lockengine-testhosts: cluster in {cluster.state_dir} removed in "
                  f"{time.monotonic() - started:.1f} s", file=sys.stderr)
        else:
            print(f"lockengine-testhosts: nothing to remove in {cluster.state_dir}", file=sys.stderr)
    elif cmd in ("crash", "restart", "freeze", "thaw"):
        getattr(cluster, cmd)(args.host)
    elif cmd == "fail-storage":
        cluster.fail_storage(args.host, args.disk)
    elif cmd == "heal-storage":
        cluster.heal_storage(args.host, args.disk)
    elif cmd == "hang-storage":
        cluster.hang_storage(args.host, args.disk)
    elif cmd == "slow-storage":
        iops = args.iops if args.iops is not None else (0 if args.bps else 1)
        cluster.slow_storage(args.host, iops, bps=args.bps, disk=args.disk)
    elif cmd == "status":
        rows = cluster.status()
        print(json.dumps(rows, indent=2) if args.json else _fmt_status(rows))
    elif cmd == "describe":
        _print_json(cluster.molecule_instances() if args.molecule else cluster.describe())
    elif cmd == "inventory":
        cluster.hosts  # noqa: B018 - a clear error when nothing is up
        print(cluster.inventory_path)
    elif cmd == "watchdog":
        _print_json(cluster.watchdog_events(args.host) if args.events else cluster.watchdog(args.host))
    elif cmd == "run":
        rc, out, err = cluster.run(args.host, " ".join(args.cmd), timeout=args.timeout)
        sys.stdout.write(out)
        sys.stderr.write(err)
        return rc
    elif cmd == "check-net":
        result = cluster.check_isolation()
        _print_json(result)
        return 0 if result["ok"] else EXIT_ERROR
    elif cmd == "image":
        if args.prune:
            image_in_use = cluster.describe()["image"] if cluster.is_up() else None
            in_use = {Path(image_in_use)} if image_in_use else set()
            image.prune(cluster.image_dir, in_use)
        else:
            print(image.ensure_image(cluster.image_dir, rebuild=args.rebuild))
    return 0
