"""The installed sqlite_embed package (bindings/python), run by
bindings/python/test.sh with the Python of a fresh virtual environment that
has the wheel installed, from a folder outside the repository.

PyTorch is the reference for to_torch/from_torch: a table's weights and
options become a torch.nn.Embedding bit for bit, torch trains it, and the
weights go back bit for bit. EMBED_ROOT is the repository (for the README's
quick start)."""
import json
import os
import re
import sqlite3
import subprocess
import sys

import apsw
import numpy as np
import pytest
import torch

import sqlite_embed

ROOT = os.environ["EMBED_ROOT"]


def connect(kind="sqlite3"):
    if kind == "apsw":
        con = apsw.Connection(":memory:")
    else:
        con = sqlite3.connect(":memory:", isolation_level=None)
    sqlite_embed.load(con)
    return con


def q(con, sql, params=()):
    return list(con.cursor().execute(sql, params))


def tricky(rng, n, dim):
    w = rng.standard_normal((n, dim)).astype(np.float32)
    special = np.array([0.0, -0.0, 1e-45, -1e-40, 3.4028235e38, 0.1, -7e-10],
                       dtype=np.float32)
    w.reshape(-1)[: special.size] = special[: w.size]
    return w


@pytest.fixture
def rng(request):
    return np.random.default_rng(abs(hash(request.node.name)) % 2**32)


def test_the_installed_package_is_used_outside_the_repository():
    here = os.path.realpath(os.getcwd())
    assert not here.startswith(os.path.realpath(ROOT) + os.sep)
    pkg = os.path.realpath(sqlite_embed.__file__)
    assert pkg.startswith(os.path.realpath(sys.prefix) + os.sep)  # the venv's
    path = sqlite_embed.loadable_path()
    assert os.path.dirname(path) == os.path.dirname(pkg)
    assert os.path.basename(path) == "embed.so" and os.path.isfile(path)


@pytest.mark.parametrize("kind", ["sqlite3", "apsw"])
def test_load_stdlib_and_apsw(kind):
    con = connect(kind)
    assert q(con, "SELECT embed_version()") == [(sqlite_embed.__version__,)]
    q(con, "CREATE VIRTUAL TABLE tok USING embedding(num_embeddings=4, dim=3, seed=42)")
    assert q(con, "SELECT embed_json(embed_lookup('tok', 2))") == \
        [("[0.061904464,-0.21851987,0.4206659]",)]
    # loading is switched off again afterwards
    with pytest.raises((sqlite3.Error, apsw.Error)):
        if kind == "apsw":
            con.loadextension(sqlite_embed.loadable_path())
        else:
            con.load_extension(sqlite_embed.loadable_path())


def test_load_rejects_other_objects():
    with pytest.raises(TypeError, match="expected a sqlite3 or apsw Connection"):
        sqlite_embed.load(object())


@pytest.mark.parametrize("kind", ["sqlite3", "apsw"])
def test_numpy_round_trip_is_bit_exact(kind, rng):
    con = connect(kind)
    w = tricky(rng, 300, 17)
    assert sqlite_embed.from_numpy(con, "t", w) == 300
    assert q(con, "SELECT count(*) FROM t") == [(300,)]
    back = sqlite_embed.to_numpy(con, "t")
    assert back.dtype == np.float32 and back.shape == (300, 17)
    assert back.tobytes() == w.tobytes()
    assert back.flags.writeable
    # the stored BLOBs are the array's rows
    assert q(con, "SELECT vector FROM t WHERE id = 5")[0][0] == w[5].tobytes()


def test_numpy_ids_order_repeats_and_missing(rng):
    con = connect()
    w = rng.standard_normal((6, 3)).astype(np.float32)
    ids = [40, -7, 3, 1000, 12, 5]
    sqlite_embed.from_numpy(con, "t", w, ids=ids)
    assert sorted(r[0] for r in q(con, "SELECT id FROM t")) == sorted(ids)
    whole = sqlite_embed.to_numpy(con, "t")  # id order
    assert whole.tobytes() == w[np.argsort(ids)].tobytes()
    pick = sqlite_embed.to_numpy(con, "t", ids=[1000, -7, 1000, 40])
    assert pick.tobytes() == w[[3, 1, 3, 0]].tobytes()
    with pytest.raises(KeyError, match="no id 8 in embedding t"):
        sqlite_embed.to_numpy(con, "t", ids=[40, 8])
    with pytest.raises(ValueError, match="2 ids for 6 rows"):
        sqlite_embed.from_numpy(con, "t", w, ids=[1, 2])
    with pytest.raises(ValueError, match="has dim 3, the array 4"):
        sqlite_embed.from_numpy(con, "t", np.zeros((1, 4), np.float32))
    with pytest.raises(ValueError, match="no embedding table nope"):
        sqlite_embed.to_numpy(con, "nope")
    q(con, "CREATE TABLE plain(x)")
    with pytest.raises(ValueError, match="plain is not an embedding table"):
        sqlite_embed.to_numpy(con, "plain")


def test_from_numpy_is_one_transaction(rng):
    con = connect()
    w = rng.standard_normal((50, 4)).astype(np.float32)
    w[49, 2] = np.nan  # the last row fails
    with pytest.raises(sqlite3.Error, match="element 2 is NaN"):
        sqlite_embed.from_numpy(con, "t", w)
    # nothing stays behind, not even the table it created
    assert q(con, "SELECT count(*) FROM sqlite_master") == [(0,)]
    assert not con.in_transaction
    # inside the caller's transaction it nests: the caller's ROLLBACK undoes it
    sqlite_embed.from_numpy(con, "t", w[:10])
    q(con, "BEGIN")
    sqlite_embed.from_numpy(con, "t", np.ones((10, 4), np.float32))
    assert con.in_transaction
    q(con, "ROLLBACK")
    assert sqlite_embed.to_numpy(con, "t").tobytes() == w[:10].tobytes()


def test_to_torch_has_the_tables_weights_and_options():
    con = connect()
    q(con, "CREATE VIRTUAL TABLE t USING embedding(num_embeddings=9, dim=5, "
           "seed=11, padding_idx=-2, max_norm=1.25, norm_type=1.5, "
           "scale_grad_by_freq=1, optimizer=adam)")
    g = np.random.default_rng(1).standard_normal((4, 5)).astype(np.float32)
    for _ in range(3):  # train in SQL first
        q(con, "SELECT embed_update('t', '[1, 3, 1, 8]', ?, 0.05)", (g.tobytes(),))
    emb = sqlite_embed.to_torch(con, "t")
    assert isinstance(emb, torch.nn.Embedding)
    assert (emb.num_embeddings, emb.embedding_dim) == (9, 5)
    assert emb.padding_idx == 7
    assert emb.max_norm == 1.25 and emb.norm_type == 1.5
    assert emb.scale_grad_by_freq is True and emb.sparse is False
    assert emb.weight.requires_grad
    w = emb.weight.detach().numpy()
    assert w.tobytes() == sqlite_embed.to_numpy(con, "t").tobytes()
    assert np.all(w[7] == 0)
    # the forward pass renormalizes as embed_lookup does (max_norm, p = 1.5)
    ids = [1, 3, 7, 0]
    lookup = np.frombuffer(q(con, "SELECT embed_lookup('t', ?)",
                             (json.dumps(ids),))[0][0], "<f4").reshape(4, 5)
    with torch.no_grad():
        out = emb(torch.tensor(ids)).numpy()
    assert np.allclose(out, lookup, rtol=1e-6, atol=1e-7)
    assert sqlite_embed.to_torch(con, "t", sparse=True).sparse is True


def test_train_in_torch_then_back_is_bit_exact():
    con = connect()
    q(con, "CREATE VIRTUAL TABLE t USING embedding(num_embeddings=20, dim=8, seed=5)")
    emb = sqlite_embed.to_torch(con, "t", sparse=True)
    opt = torch.optim.SparseAdam(emb.parameters(), lr=0.01)
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        ids = torch.randint(0, 20, (12,), generator=gen)
        loss = emb(ids).pow(2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    trained = emb.weight.detach().clone()
    assert sqlite_embed.from_torch(con, "t", emb) == 20
    back = sqlite_embed.to_numpy(con, "t")
    assert back.tobytes() == trained.numpy().tobytes()
    again = sqlite_embed.to_torch(con, "t")
    assert torch.equal(again.weight.detach(), trained)
    # a tensor works too, and writes the same bits
    sqlite_embed.from_torch(con, "t", trained * 2)
    assert sqlite_embed.to_numpy(con, "t").tobytes() == (trained * 2).numpy().tobytes()


def test_from_torch_creates_the_table_with_the_modules_options():
    con = connect()
    torch.manual_seed(3)
    emb = torch.nn.Embedding(7, 5, padding_idx=2, max_norm=0.75, norm_type=3.0,
                             scale_grad_by_freq=True)
    assert sqlite_embed.from_torch(con, "w", emb) == 7
    conf = dict(q(con, "SELECT key, value FROM w_config"))
    assert (conf["num_embeddings"], conf["dim"], conf["padding_idx"]) == \
        ("7", "5", "2")
    assert (conf["max_norm"], conf["norm_type"], conf["scale_grad_by_freq"]) == \
        ("0.75", "3", "1")
    back = sqlite_embed.to_torch(con, "w")
    for attr in ("num_embeddings", "embedding_dim", "padding_idx", "max_norm",
                 "norm_type", "scale_grad_by_freq"):
        assert getattr(back, attr) == getattr(emb, attr), attr
    assert torch.equal(back.weight.detach(), emb.weight.detach())
    # the table then trains as the module does: one batch step each
    ids = [1, 4, 1, 2, 6]
    g = torch.randn(5, 5, generator=torch.Generator().manual_seed(4))
    ref = torch.nn.Embedding(7, 5, padding_idx=2, scale_grad_by_freq=True)
    with torch.no_grad():
        ref.weight.copy_(emb.weight)  # ids whose rows are within max_norm
    ref(torch.tensor(ids)).backward(g)
    torch.optim.SGD(ref.parameters(), lr=0.1).step()
    small = (emb.weight.detach().norm(p=3, dim=1) <= 0.75).tolist()
    q(con, "SELECT embed_update('w', ?, ?, 0.1)", (json.dumps(ids), g.numpy().tobytes()))
    got = sqlite_embed.to_numpy(con, "w")
    for i in {1, 4, 6}:
        if small[i]:
            assert np.allclose(got[i], ref.weight.detach().numpy()[i], atol=1e-6)
    assert np.all(got[2] == emb.weight.detach().numpy()[2])  # padding row


def test_from_torch_tensor_existing_tables_and_errors():
    con = connect()
    sqlite_embed.from_torch(con, "plain", torch.ones(3, 2))
    assert dict(q(con, "SELECT key, value FROM plain_config"))["padding_idx"] == "none"
    with pytest.raises(ValueError, match="has dim 2, the array 3"):
        sqlite_embed.from_torch(con, "plain", torch.ones(3, 3))
    with pytest.raises(TypeError, match="expected a torch.nn.Embedding or a tensor"):
        sqlite_embed.from_torch(con, "plain", [[1.0, 2.0]])
    q(con, "INSERT INTO plain(id, vector) VALUES (10, '[1, 2]')")
    with pytest.raises(ValueError, match="has 4 ids from 0 to 10, not 0..3"):
        sqlite_embed.to_torch(con, "plain")
    # an attached schema
    q(con, "ATTACH ':memory:' AS aux")
    sqlite_embed.from_torch(con, "aux.e", torch.zeros(2, 4))
    assert q(con, "SELECT count(*) FROM aux.e") == [(2,)]
    assert sqlite_embed.to_torch(con, "aux.e").weight.shape == (2, 4)


def test_import_and_load_without_torch_or_numpy():
    code = (
        "import sys\n"
        "sys.modules['torch'] = None\n"
        "sys.modules['numpy'] = None\n"
        "import sqlite3, sqlite_embed\n"
        "con = sqlite3.connect(':memory:')\n"
        "sqlite_embed.load(con)\n"
        "print(con.execute('SELECT embed_norm(\\'[3, 4]\\')').fetchone()[0])\n"
        "try:\n"
        "    sqlite_embed.to_torch(con, 't')\n"
        "except ImportError as e:\n"
        "    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "5.0", "sqlite_embed: this helper needs PyTorch (pip install torch)"]


def readme_quick_start():
    """The ```python block of the README's "The Python package" section."""
    text = open(os.path.join(ROOT, "README.md")).read()
    part = text.split("\n### The Python package\n")[1].split("\n### ")[0]
    return re.findall(r"^```python\n(.*?)^```", part, flags=re.M | re.S)[0]


def test_readme_quick_start_runs_and_prints_what_it_shows(tmp_path):
    code = readme_quick_start()
    want = [m.group(1) for line in code.splitlines()
            for m in [re.search(r"^print\(.*\)\s+# (.*)$", line)] if m]
    assert len(want) >= 3
    (tmp_path / "quickstart.py").write_text(code)
    out = subprocess.run([sys.executable, "quickstart.py"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == want
