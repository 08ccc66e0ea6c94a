"""timetravel-kernel: a Jupyter kernel with a durable, incremental history of the session state."""

__all__ = ["__version__"]

__version__ = "0.1.0"
