"""The command's entry point: the command line's modules imported under a guard, so Ctrl-C in
the first second (while they load) is one line and exit 130, not an import traceback."""

from __future__ import annotations

import sys


def main() -> int:
    try:
        from s3dlio_ray._cli import main as command_line
    except KeyboardInterrupt:
        print("s3dlio-ray: interrupted before the run started", file=sys.stderr)
        return 130
    return command_line()
