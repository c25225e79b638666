#!/bin/bash
# Prints a Python >= 3.12 (ansible-core 2.21 needs it on the controller).
for c in "${PYTHON:-}" python3.13 python3.12 /root/.pyenv/versions/3.13*/bin/python3 /root/.pyenv/versions/3.12*/bin/python3 python3; do
  [ -n "$c" ] || continue
  if "$c" -c 'import sys; assert sys.version_info >= (3, 12)' 2>/dev/null; then command -v "$c"; exit 0; fi
done
echo "no Python >= 3.12 found; install one or set PYTHON=" >&2
exit 1
