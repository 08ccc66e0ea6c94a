"""TimeTravelKernelApp: IPKernelApp launching the time-travel kernel (kernel layer)."""

from __future__ import annotations

from ipykernel.kernelapp import IPKernelApp
from traitlets import Type, default

from timetravel_kernel.kernel.kernel import TimeTravelKernel

__all__ = ["TimeTravelKernelApp", "main"]


class TimeTravelKernelApp(IPKernelApp):
    """The kernel process: IPKernelApp with TimeTravelKernel as its kernel class.

    Configuration is read from ``ipython_kernel_config.py`` like the stock kernel's, so every
    IPKernelApp and IPythonKernel setting keeps working; ``TimeTravelKernel.*`` adds ours.
    """

    # ``name`` stays IPKernelApp's "ipython-kernel": it names the config file, and the stock
    # kernel's ipython_kernel_config.py must keep applying to this kernel.

    kernel_class = Type(
        TimeTravelKernel,
        klass="ipykernel.kernelbase.Kernel",
        help="The kernel class; a subclass of TimeTravelKernel to customise it.",
    ).tag(config=True)

    @default("kernel_class")
    def _default_kernel_class(self) -> type[TimeTravelKernel]:
        return TimeTravelKernel


def main() -> None:
    """Run the kernel process (``python -m timetravel_kernel -f CONNECTION_FILE``)."""
    TimeTravelKernelApp.launch_instance()
