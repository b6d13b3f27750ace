"""Training recipes of the shipped models; run from the repository root as modules, e.g.
``python -m recipes.default_model.train --help``.

Corpora, caches and runs go under :data:`DATA` (``$EDGE_SPEECH_DATA``, else ``data/`` in the
current directory, which git ignores); every script's paths can also be given on its command line.
"""

import os
from pathlib import Path

DATA = Path(os.environ.get("EDGE_SPEECH_DATA", "data"))
