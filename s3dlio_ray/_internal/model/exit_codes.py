"""What every command exits with: one contract for scripts, CI jobs and the issues that build on
it, so a caller can tell a run that failed from input that was refused or a run that was
stopped."""

from __future__ import annotations

import signal
from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    """Success: every object written and read back intact, cleanup left nothing."""
    RUN_ERROR = 1
    """The run went wrong: a fatal S3 error, a verification failure, a failed cleanup."""
    BAD_INPUT = 2
    """A setting, file, variable or command line was refused; nothing was started."""
    CRITERION_FAILED = 3
    """The run completed but failed a criterion it was given (such as an AU threshold)."""
    SIGINT = 128 + signal.SIGINT
    """Stopped by Ctrl-C (130)."""
    SIGTERM = 128 + signal.SIGTERM
    """Stopped by SIGTERM (143)."""

    @classmethod
    def stopped_by(cls, signum: int) -> ExitCode:
        """The exit code of a run stopped by signal `signum`."""
        return cls.SIGTERM if signum == signal.SIGTERM else cls.SIGINT
