"""python -m sealos_lab.package --version v1.20.15 [--out kube1.20.15.tar.gz]"""

from __future__ import annotations

import sys

from .builder import main

sys.exit(main())
