"""Training recipes of the shipped models; run from the repository root as modules, e.g.
``python -m recipes.default_model.train --help``."""
