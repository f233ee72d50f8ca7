"""Keep numba's on-disk cache honest across the engine's modules.

numba keys a cached function on its own source file only. The engine step compiles in the
functions of ``structures``, ``scores`` and ``regime`` and the constants of ``layout``; after
an edit (or a ``git pull``) of one of those files alone, the cached engine would still run the
old code. So a stamp of every kernel module's source sits beside the cache, and when it no
longer matches, every kernel's cache entries are flushed before anything is loaded from them.

Only numba's public API is used: ``numba.extending.is_jitted`` finds the kernels, a
dispatcher's ``stats.cache_path`` says where its cache lives (``__pycache__`` beside the
source, or under ``NUMBA_CACHE_DIR``; ``None`` without ``cache=True``), and
``Dispatcher.recompile()`` drops its cached entries (called before the first call, it has
no signature to compile again). Under ``NUMBA_DISABLE_JIT=1`` the kernels are plain Python
functions and there is nothing to guard.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from numba.extending import is_jitted

if TYPE_CHECKING:
    from numba.core.dispatcher import Dispatcher

_STAMP = "sentiment-kernels.stamp"


def _dispatchers(modules: list[ModuleType]) -> list[Dispatcher[Any]]:
    return [obj for m in modules for obj in vars(m).values()
            if callable(obj) and is_jitted(obj)]


def guard_caches(modules: list[ModuleType]) -> None:
    """Flush the cached kernels of ``modules`` when any of their sources changed."""
    digest = hashlib.sha256()
    for module in modules:
        digest.update(Path(str(module.__file__)).read_bytes())
    stamp = digest.hexdigest()
    dispatchers = _dispatchers(modules)
    paths = {path for d in dispatchers if (path := d.stats.cache_path)}
    for path in paths:
        stamp_file = Path(path) / _STAMP
        try:
            if stamp_file.read_text() == stamp:
                continue
        except OSError:
            pass
        for d in dispatchers:
            if d.stats.cache_path == path:
                d.recompile()
        try:
            os.makedirs(path, exist_ok=True)
            stamp_file.write_text(stamp)
        except OSError:
            pass  # a read-only cache location is numba's to handle
