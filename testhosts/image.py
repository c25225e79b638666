"""The host image: a Debian rootfs made once with debootstrap and cached by a hash of its recipe.

The mirror is the one this machine's apt already uses (``apt-get indextargets``), so no registry
address is ever written into the repository.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from .errors import HarnessError
from .files import remove_tree, write_atomic
from .plan import COMMAND
from .tools import require_tools, run, say

# What a real host of ours would have.  Changing this list (or IMAGE_RECIPE_VERSION, bumped when
# the customisation below changes) gives a new cache key, hence a rebuild.
IMAGE_PACKAGES = (
    "python3",
    "python3-jsonschema",
    "python3-crc32c",
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "iproute2",
    "util-linux",
    "procps",
)
IMAGE_RECIPE_VERSION = "3"
VARIANT = "minbase"
MARKER = ".lockengine-image.json"

# Units a throw-away host without network does not need; masked for quicker, quieter boots.
MASKED_UNITS = (
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "e2scrub_all.timer",
    "e2scrub_reap.service",
    "fstrim.timer",
    "systemd-timesyncd.service",
    "console-getty.service",
    "getty@.service",
    "systemd-networkd-wait-online.service",
)

SSHD_DROPIN = """\
# lockengine test host: the host key is bound in from the harness's state dir (stable identity)
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
UseDNS no
"""


def host_codename() -> str:
    for line in Path("/etc/os-release").read_text().splitlines():
        if line.startswith("VERSION_CODENAME="):
            return line.split("=", 1)[1].strip().strip('"')
    raise HarnessError("cannot tell this machine's Debian release (no VERSION_CODENAME in /etc/os-release)")


def apt_mirror(codename: str) -> str:
    """The Debian mirror apt uses on this machine for `codename` main."""
    proc = run(["apt-get", "indextargets", "--format", "$(REPO_URI)",
                f"Codename: {codename}", "Component: main", "Identifier: Packages"], check=False)
    uris = [u.strip() for u in proc.stdout.splitlines() if u.strip()]
    if not uris:
        raise HarnessError(f"apt has no '{codename} main' source configured; cannot pick a mirror for debootstrap")
    return uris[0]


def image_key(codename: str) -> str:
    recipe = json.dumps({"suite": codename, "variant": VARIANT, "packages": sorted(IMAGE_PACKAGES),
                         "recipe": IMAGE_RECIPE_VERSION, "masked": sorted(MASKED_UNITS),
                         "sshd": SSHD_DROPIN}, sort_keys=True)
    return f"{codename}-{hashlib.sha256(recipe.encode()).hexdigest()[:16]}"


def image_path(image_dir: Path) -> Path:
    return image_dir / image_key(host_codename())


def check_image(root: Path) -> None:
    """An image we can boot: built to completion and with what every host needs."""
    if not (root / MARKER).is_file():
        raise HarnessError(f"host image {root} is incomplete (no {MARKER}); run: {COMMAND} image --rebuild")
    for need, what in (("usr/sbin/sshd", "sshd (openssh-server)"), ("usr/bin/python3", "python3"),
                       ("lib/systemd/systemd", "systemd")):
        if not (root / need).exists():
            raise HarnessError(f"host image {root} lacks {what} at /{need}; "
                               f"rebuild it: {COMMAND} image --rebuild")


@contextlib.contextmanager
def _locked(image_dir: Path) -> Iterator[None]:
    image_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(image_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def ensure_image(image_dir: Path, *, rebuild: bool = False,
                 progress: Callable[[str], None] = say) -> Path:
    """Return the cached image for the current recipe, building it first if needed."""
    root = image_path(image_dir)
    if not rebuild and (root / MARKER).is_file():
        check_image(root)
        return root
    require_tools(["debootstrap", "apt-get"])
    with _locked(image_dir):
        if not rebuild and (root / MARKER).is_file():  # built by someone else while we waited
            check_image(root)
            return root
        _build(root, progress)
    check_image(root)
    return root


def _build(root: Path, progress: Callable[[str], None]) -> None:
    codename = host_codename()
    mirror = apt_mirror(codename)
    tmp = root.with_name(root.name + ".tmp")
    remove_tree(tmp)  # an interrupted build left it (possibly with /proc, /sys mounted inside)
    log = root.with_name(root.name + ".log")
    progress(f"building host image {root.name} (debootstrap {codename} {VARIANT} from apt's mirror {mirror}; "
             f"about a minute, once; log: {log})")
    started = time.monotonic()
    argv = [require_tools(["debootstrap"])["debootstrap"], f"--variant={VARIANT}",
            f"--include={','.join(IMAGE_PACKAGES)}", codename, str(tmp), mirror]
    with open(log, "w") as logf:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                stdin=subprocess.DEVNULL)
        last = [""]
        done = threading.Event()

        def heartbeat() -> None:
            while not done.wait(10.0):
                progress(f"  still building ({time.monotonic() - started:.0f} s): {last[0]}")

        beat = threading.Thread(target=heartbeat, daemon=True)
        beat.start()
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                logf.write(line)
                if line.startswith(("I: ", "W: ", "E: ")):
                    last[0] = line.strip()
            rc = proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            done.set()
            remove_tree(tmp)
            raise
        done.set()
    if rc != 0:
        tail = "".join(log.read_text().splitlines(keepends=True)[-15:])
        remove_tree(tmp)
        raise HarnessError(f"debootstrap failed (rc {rc}); last lines of {log}:\n{tail}")
    progress(f"  debootstrap done in {time.monotonic() - started:.0f} s; customising")
    _customise(tmp)
    write_atomic(tmp / MARKER, json.dumps({
        "suite": codename, "variant": VARIANT, "packages": list(IMAGE_PACKAGES),
        "recipe": IMAGE_RECIPE_VERSION, "built": time.time(),
        "build_seconds": round(time.monotonic() - started, 1)}, indent=2) + "\n")
    remove_tree(root)
    os.rename(tmp, root)
    progress(f"host image ready: {root} ({time.monotonic() - started:.0f} s)")


def _customise(root: Path) -> None:
    # Identity comes from each host's state dir (bound in at start), never from the shared image.
    for name in ("etc/hostname",):
        (root / name).unlink(missing_ok=True)
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    (root / "etc/machine-id").write_text("")
    # dbus's postinst wrote a real machine id here, and systemd prefers it over nspawn's --uuid:
    # every host would share it.  Debian's default is a link to /etc/machine-id.
    dbus_id = root / "var/lib/dbus/machine-id"
    dbus_id.unlink(missing_ok=True)
    dbus_id.symlink_to("/etc/machine-id")
    # No resolver: a host must never send a DNS query anywhere.
    resolv = root / "etc/resolv.conf"
    resolv.unlink(missing_ok=True)
    resolv.write_text("# lockengine test host: no nameserver on purpose (the cluster is in /etc/hosts)\n")
    (root / "etc/fstab").write_text("# lockengine test host: nothing to mount\n")
    dropin = root / "etc/ssh/sshd_config.d"
    dropin.mkdir(parents=True, exist_ok=True)
    (dropin / "lockengine-testhost.conf").write_text(SSHD_DROPIN)
    # apt inside a host could only try (and fail) to reach the network.
    (root / "etc/apt/sources.list").write_text("# lockengine test host: offline\n")
    system = root / "etc/systemd/system"
    for unit in MASKED_UNITS:
        link = system / unit
        link.unlink(missing_ok=True)
        link.symlink_to("/dev/null")
    (root / "root/.ssh").mkdir(mode=0o700, exist_ok=True)


def prune(image_dir: Path, keep: set[Path], progress: Callable[[str], None] = say) -> list[Path]:
    """Remove cached images other than the current one and those in `keep` (in use by a cluster)."""
    current = image_path(image_dir)
    removed: list[Path] = []
    if not image_dir.is_dir():
        return removed
    with _locked(image_dir):
        for entry in sorted(image_dir.iterdir()):
            base = entry.name.removesuffix(".tmp").removesuffix(".log")
            ours = entry.is_dir() and ((entry / MARKER).exists() or entry.name.endswith(".tmp"))
            ours = ours or (entry.is_file() and entry.name.endswith(".log"))
            if not ours or base == current.name or image_dir / base in keep:
                continue
            progress(f"removing old host image {entry}")
            if entry.is_dir():
                remove_tree(entry)
            else:
                entry.unlink()
            removed.append(entry)
    return removed
