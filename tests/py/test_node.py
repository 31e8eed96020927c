"""examples/quickstart.js runs under Node with better-sqlite3@12 and prints
what it claims. Skipped when node or the package is missing (the Makefile's
node-deps target installs it: npm install --prefix build/node better-sqlite3@12)."""
import os
import re
import shutil
import subprocess

import pytest

from conftest import EXT, ROOT

PACKAGE = os.path.join(ROOT, "build", "node", "node_modules", "better-sqlite3")


def node_ready():
    if not shutil.which("node"):
        return "node is not installed"
    if not os.path.isdir(PACKAGE):
        return "better-sqlite3 is not installed in build/node"
    return None


@pytest.mark.skipif(node_ready() is not None, reason=str(node_ready()))
@pytest.mark.skipif("LD_PRELOAD" in os.environ,
                    reason="Node's own SQLite under the sanitizer preload")
def test_quickstart_js():
    out = subprocess.run(["node", os.path.join(ROOT, "examples", "quickstart.js")],
                         env=dict(os.environ, EMBED_EXT=EXT), cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""
    text = out.stdout
    assert re.search(r"embed \d+\.\d+\.\d+ on SQLite 3\.\d+\.\d+", text)
    assert "rows: 6" in text and "table has 7 rows" in text
    assert "apple  = [0.9000, 0.3000, 0.0000, 0.5000]" in text
    assert "[0.0000, 0.1000, 1.0000, 0.0000]" in text
    hits = re.findall(r"^   (\w+) +([0-9.]+)$", text.split("== 5.")[1], re.M)
    assert [t for t, _ in hits] == ["cherry", "apple", "red"]
    assert "after    [0.9000, 0.3000, 0.0000, -0.5000]" in text
    assert "rows changed: 1; equals w - lr * grad in float32: true" in text
