"""make install puts embed.so where `.load embed` finds it from any folder;
make uninstall removes what install put there."""
import os
import subprocess

import pytest

from conftest import ROOT


@pytest.mark.skipif("LD_PRELOAD" in os.environ,
                    reason="checked in the plain run, not under the sanitizer preload")
def test_install_then_load_by_name_then_uninstall(tmp_path):
    prefix, loader = tmp_path / "prefix", tmp_path / "loader"
    make = ["make", "-s", "-C", ROOT, f"PREFIX={prefix}", f"LOADER_DIR={loader}"]
    subprocess.run(make + ["install"], check=True, capture_output=True)
    assert (prefix / "lib" / "embed.so").is_file()
    assert (prefix / "lib" / "libembed.a").is_file()
    assert (prefix / "include" / "embed.h").is_file()
    assert os.readlink(loader / "embed.so") == str(prefix / "lib" / "embed.so")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # the loader folder stands in for the system one: LD_LIBRARY_PATH
    env = dict(os.environ, LD_LIBRARY_PATH=str(loader))
    out = subprocess.run(["sqlite3", "-cmd", ".load embed", ":memory:",
                          "SELECT embed_norm('[3, 4]')"],
                         cwd=elsewhere, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "5.0"
    subprocess.run(make + ["uninstall"], check=True, capture_output=True)
    assert not (prefix / "lib" / "embed.so").exists()
    assert not os.path.lexists(loader / "embed.so")
