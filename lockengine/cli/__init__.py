"""The ``lockengine`` command line (docs/cli.md).

Convention for every verb: its parser takes ``parents=[output.json_parent()]`` and sets
``handler`` (``set_defaults(handler=fn)``); ``fn(args) -> int`` prints through ``output.emit`` and
returns the exit code, and raises ``LockError``/``InputError`` (or ``OSError``) on failure —
``main`` renders those as docs/cli.md says. The client verbs are declared in ``client.VERBS`` (handler,
help, options), from which both argparse's parsers and the fast path (``args.py``) read them.
"""
