"""User-facing errors: each message says what was wrong, the value seen and what to do."""
from __future__ import annotations

import importlib
from types import ModuleType

from .config import ConfigError

__all__ = ["FrontierError", "ConfigError", "CheckpointError", "DataError", "Interrupted", "MissingExtraError", "PeerLost",
           "TrainingDiverged", "require_extra"]


class FrontierError(Exception):
    """Base for errors the CLI prints as one line instead of a traceback."""


class CheckpointError(FrontierError):
    """A checkpoint is missing, corrupt, unsafe (pickle payload) or does not fit the model."""


class DataError(FrontierError):
    """Input data is missing or malformed."""


class MissingExtraError(FrontierError, ImportError):
    """An optional dependency is not installed; names the extra to install."""


class TrainingDiverged(FrontierError):
    """The loss became NaN/inf; the last good checkpoint is left intact."""


class PeerLost(FrontierError):
    """A collective failed under torchrun (another rank died or hung past the timeout); resume by rerunning.
    Unlike a refusal, which every rank makes alike, it is this rank's own news: every rank that meets it says so,
    and the trainer prints it at once (``reported``), before torchrun's SIGTERM for the dead rank can end us."""

    reported = False


class Interrupted(KeyboardInterrupt):
    """Training stopped by SIGINT (Ctrl-C) or SIGTERM after saving a final checkpoint; the CLI exits
    128 + signum (130, 143) and a rerun of the same command resumes."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.signum = signum


def require_extra(module: str, extra: str) -> ModuleType:
    """Import ``module`` or fail naming ``pip install 'frontierkit[extra]'``."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingExtraError(
            f"{module} is needed here but is not installed ({e}); "
            f"run: pip install 'frontierkit[{extra}]'") from None


USER_ERRORS = (FrontierError, ConfigError)
