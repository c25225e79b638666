"""sanlock 3.8's client socket protocol, served by lockengined so libsanlock, python3-sanlock and the
``sanlock client`` CLI work unchanged (docs/daemon.md, "sanlock client protocol").

``wire`` is the pure codec (no sockets), ``commands`` maps each command onto the daemon, ``server``
is the listener and its connection model.
"""
