"""numba caches a kernel against its own file only; jit.guard_caches covers the callees."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def _run(pkg_dir) -> str:
    code = textwrap.dedent("""
        import sys
        sys.path.insert(0, sys.argv[1])
        import kern.caller as c
        print(c.f(2.0))
    """)
    out = subprocess.run([sys.executable, "-c", code, str(pkg_dir)], check=True,
                         capture_output=True, text=True)
    return out.stdout.strip()


def test_editing_a_callee_recompiles_the_cached_caller(tmp_path):
    pkg = tmp_path / "kern"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "callee.py").write_text(textwrap.dedent("""
        from numba import njit

        @njit(cache=True)
        def g(x):
            return x * 10.0
    """))
    (pkg / "caller.py").write_text(textwrap.dedent("""
        import sys
        from numba import njit
        from kern import callee
        from sentiment.core import jit

        @njit(cache=True)
        def f(x):
            return callee.g(x) + 1.0

        jit.guard_caches([callee, sys.modules[__name__]])
    """))
    assert _run(tmp_path) == "21.0"
    assert _run(tmp_path) == "21.0"  # from the cache
    assert list((pkg / "__pycache__").glob("caller.f-*.nbc"))
    (pkg / "callee.py").write_text((pkg / "callee.py").read_text().replace("10.0", "100.0"))
    assert _run(tmp_path) == "201.0"
