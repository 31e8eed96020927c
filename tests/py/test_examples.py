"""The examples run and show what they claim (make test runs them here)."""
import os
import re
import subprocess

from conftest import ROOT


def test_quickstart_demo_pulls_cat_and_dog_together():
    out = subprocess.run(
        ["sqlite3", ":memory:"],
        stdin=open(os.path.join(ROOT, "examples", "quickstart.sql")),
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    assert out.stderr == ""
    cos = [float(x) for x in re.findall(r"cos\(cat, dog\) = +(-?[0-9.]+)", out.stdout)]
    assert len(cos) == 6  # before training and after each of 5 steps
    assert all(b > a for a, b in zip(cos, cos[1:])), cos  # rises every step
    assert cos[0] < 0 and cos[-1] > 0.9
    after = out.stdout.split("== 6.")[1].split("== 7.")[0]
    tokens = re.findall(r"^(\S+)\s+[0-9.]+\s*$", after, re.M)
    assert tokens[:2] == ["cat", "dog"]
    assert re.search(r"^0\s+\[0,0,0,0,0,0,0,0\]", out.stdout.split("== 7.")[1], re.M)
