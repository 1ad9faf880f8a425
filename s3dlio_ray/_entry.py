"""The command's entry point: the command line's modules imported under a guard, so Ctrl-C in
the first second (while they load) is one line and exit 130, not an import traceback; and an
exit that does not wait for a Ray cluster that went down with the command."""

from __future__ import annotations

import os
import sys


def main() -> int:
    try:
        from s3dlio_ray._cli import main as command_line
    except KeyboardInterrupt:
        print("s3dlio-ray: interrupted before the run started", file=sys.stderr)
        return 130
    code = command_line()
    driver = sys.modules.get("s3dlio_ray._internal.cluster.driver")
    if driver is not None and driver.cluster_lost():
        # Everything is written and said; Ray's exit handlers would wait for the lost
        # cluster and then crash the process.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code
