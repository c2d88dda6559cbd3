"""The core package works without TensorFlow: importing it neither needs nor loads tensorflow."""
from __future__ import annotations

import subprocess
import sys
import textwrap

CORE_MODULES = ["ctr_models", "ctr_models.artifact", "ctr_models.trainer", "moon_features", "moon_features.cli",
                "moon_features.training.retrieval", "moon_features.training.train", "moon_features.serving"]


def run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300)


def test_core_imports_with_tensorflow_blocked_and_the_tf_package_names_the_extra():
    # sys.modules[name] = None makes `import name` raise ImportError, as if the extra were absent
    r = run(f"""
        import sys
        for name in ("tensorflow", "tensorflow_recommenders", "tf_keras"):
            sys.modules[name] = None
        import importlib
        for m in {CORE_MODULES!r}:
            importlib.import_module(m)
        try:
            import ctr_models.tf
        except ImportError as e:
            assert "moon-features[tf]" in str(e), e  # the error names the fix
            print("ok")
    """)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip().endswith("ok")


def test_importing_the_core_does_not_load_tensorflow():
    r = run(f"""
        import importlib, sys
        for m in {CORE_MODULES!r}:
            importlib.import_module(m)
        print(sorted(k for k in sys.modules if k.split(".")[0] in ("tensorflow", "tf_keras", "keras")))
    """)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip().splitlines()[-1] == "[]"

