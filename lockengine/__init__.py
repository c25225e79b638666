"""lockengine: a sanlock-compatible storage-lease fencing engine."""

__version__ = "0.1.0"
