"""Session layer: the history of one notebook as a kernel or a tool lives with it."""

from timetravel_kernel.session.notebook import NotebookSession, SessionSettings

__all__ = ["NotebookSession", "SessionSettings"]
