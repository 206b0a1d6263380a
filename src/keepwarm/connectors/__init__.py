"""Connectors: one module per source kind; importing this package registers them all.

Every module of the package is imported, so a new connector registers itself by existing
(`@register("kind")` in its module) and nobody edits a shared list.
"""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")
