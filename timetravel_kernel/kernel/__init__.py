"""Kernel layer: the Jupyter kernel, its app, kernelspec and magics (the only layer using Jupyter).

Names are imported lazily by their modules' users; importing this package does not import
ipykernel, so the CLI stays quick.
"""

__all__: list[str] = []
