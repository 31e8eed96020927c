"""The Python examples run and print what they claim: examples/quickstart.py
(stdlib sqlite3 + numpy) and examples/glove.py (a vocabulary workflow on a
GloVe-format file, all in SQL)."""
import os
import re
import subprocess
import sys

from conftest import EXT, ROOT



def run_example(name):
    out = subprocess.run([sys.executable, os.path.join(ROOT, "examples", name)],
                         env=dict(os.environ, EMBED_EXT=EXT), cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""
    return out.stdout


def section(text, n):
    return text.split(f"== {n}.")[1].split(f"== {n + 1}.")[0]


def test_quickstart_py():
    out = run_example("quickstart.py")
    assert re.search(r"embed \d+\.\d+\.\d+ on SQLite 3\.\d+", out)
    assert "rows: 6" in section(out, 2)
    assert "table has 7 rows" in section(out, 3)
    s4 = section(out, 4)
    assert "apple  = [0.9 0.3 0.  0.5]  (shares memory with the BLOB: True)" in s4
    assert "[1.  0.1 0.  0. ]" in s4 and "[0.  0.1 1.  0. ]" in s4
    hits = re.findall(r"^   (\w+) +([0-9.]+)$", section(out, 5), re.M)
    assert [t for t, _ in hits] == ["cherry", "apple", "red"]
    assert float(hits[0][1]) == 0.0
    s6 = section(out, 6)
    assert "after    [ 0.9  0.3  0.  -0.5]" in s6
    assert "rows changed: 1; equals numpy's w - lr * grad: True" in s6


def test_glove_example_finds_neighbours_and_analogies():
    out = run_example("glove.py")
    assert "format=glove" in section(out, 1)
    assert "vocab: 32 rows, emb: 32 rows" in section(out, 2)
    near = dict(re.findall(r"^   (\w+) +-> (\w+)", section(out, 3), re.M))
    assert near == {"cat": "kitten", "paris": "madrid", "apple": "cherry"}
    analogies = re.findall(r"^   (\w+) - (\w+) \+ (\w+) = (\w+)", section(out, 4),
                           re.M)
    assert [a[3] for a in analogies] == ["queen", "rome", "kitten", "princess",
                                         "madrid"]
    assert "32 vectors" in out and "(32, 'word2vec-binary')" in out
