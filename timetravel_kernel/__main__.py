"""Entry point of the kernel process: ``python -m timetravel_kernel -f {connection_file}``."""

import os
import sys

if __name__ == "__main__":
    # As ipykernel_launcher does: drop the working directory while the kernel imports, so a
    # notebook folder holding e.g. ``ipykernel.py`` cannot shadow it; IPython adds it back.
    if sys.path and sys.path[0] in ("", os.getcwd()):
        del sys.path[0]
    from timetravel_kernel.kernel.app import main

    main()
