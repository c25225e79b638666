"""The harness's errors: each explains a failure in one sentence (bad input, missing tool, failed step)."""

from __future__ import annotations


class HarnessError(Exception):
    """A failure the harness explains in one sentence (bad input, missing tool, failed step)."""


class UnknownHost(HarnessError):
    """A host name this cluster does not have (the CLI exits 2, a usage error)."""


class HostTimeout(HarnessError, TimeoutError):
    """A host did not answer in time (frozen, crashed, hung I/O)."""


class HostUnreachable(HarnessError):
    """The host refused or dropped the SSH connection (stopped, crashed, reset)."""
