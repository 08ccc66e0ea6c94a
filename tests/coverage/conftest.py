"""The coverage suite starts real kernels with the kernel tests' fixtures."""

from ..kernel.conftest import jupyter_path, start_kernel, store_dir

__all__ = ["jupyter_path", "start_kernel", "store_dir"]
