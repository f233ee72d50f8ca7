"""Keep numba's on-disk cache honest across the engine's modules.

numba keys a cached function on its own source file only. The engine step compiles in the
functions of ``structures``, ``scores`` and ``regime`` and the constants of ``layout``; after
an edit (or a ``git pull``) of one of those files alone, the cached engine would still run the
old code. So a stamp of every kernel module's source sits beside the cache, and when it no
longer matches, every kernel's cache entries are flushed before anything is loaded from them.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from types import ModuleType

from numba.core.registry import CPUDispatcher

_STAMP = "sentiment-kernels.stamp"


def _dispatchers(modules: list[ModuleType]) -> list[CPUDispatcher]:
    return [obj for m in modules for obj in vars(m).values() if isinstance(obj, CPUDispatcher)]


def guard_caches(modules: list[ModuleType]) -> None:
    """Flush the cached kernels of ``modules`` when any of their sources changed."""
    digest = hashlib.sha256()
    for module in modules:
        digest.update(Path(module.__file__).read_bytes())
    stamp = digest.hexdigest()
    dispatchers = _dispatchers(modules)
    # numba quirk: the cache object is the dispatcher's private ``_cache``.
    paths = {d._cache.cache_path for d in dispatchers if getattr(d, "_cache", None)}
    for path in paths:
        stamp_file = Path(path) / _STAMP
        try:
            if stamp_file.read_text() == stamp:
                continue
        except OSError:
            pass
        for d in dispatchers:
            if d._cache.cache_path == path:
                d._cache.flush()
        try:
            os.makedirs(path, exist_ok=True)
            stamp_file.write_text(stamp)
        except OSError:
            pass  # a read-only cache location is numba's to handle
