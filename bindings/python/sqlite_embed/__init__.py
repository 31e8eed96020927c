"""sqlite_embed: the embed SQLite extension, packaged.

    import sqlite3, sqlite_embed
    con = sqlite3.connect("my.db")
    sqlite_embed.load(con)            # stdlib sqlite3 or APSW
    W = sqlite_embed.to_numpy(con, "tok")          # (n, D) float32
    emb = sqlite_embed.to_torch(con, "tok")        # torch.nn.Embedding
    sqlite_embed.from_torch(con, "tok", emb)       # weights back

load(con) loads the library built into this package (loadable_path()) into
a connection. The other helpers move a table's weights:

    to_numpy(con, table, ids=None)       (n, D) float32, rows in id order or
                                         in the order of ids
    from_numpy(con, table, array, ids=None)
                                         rows 0..n-1 (or ids) written, the
                                         table created (dim=D) when missing,
                                         in one transaction
    to_torch(con, table)                 torch.nn.Embedding with the weights
                                         and padding_idx, max_norm,
                                         norm_type, scale_grad_by_freq
    from_torch(con, table, module_or_tensor)
                                         the weights written back, the table
                                         created with the module's options
                                         when missing, in one transaction

The vectors go through unchanged (float32 bytes), so a round trip is bit
exact. numpy is imported by the array helpers and torch by the torch ones
only: `import sqlite_embed` and load() need neither. `table` may be
"schema.name" for an attached database.
"""
import json
import os
import re

__all__ = ["load", "loadable_path", "to_numpy", "from_numpy", "to_torch",
           "from_torch"]

try:
    from importlib.metadata import version as _version

    __version__ = _version("sqlite-embed")
except Exception:  # not installed as a distribution (a source checkout)
    __version__ = "unknown"


def loadable_path():
    """The path of the extension library inside the package (embed.so)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "embed.so")
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"sqlite_embed: {path} is missing: install the package "
            "(pip install), which compiles it")
    return path


def load(con):
    """Load the extension into `con`, a stdlib sqlite3 or an APSW
    connection. Extension loading is switched off again afterwards."""
    path = loadable_path()
    if hasattr(con, "enableloadextension"):  # APSW
        con.enableloadextension(True)
        try:
            con.loadextension(path)
        finally:
            con.enableloadextension(False)
    elif hasattr(con, "enable_load_extension"):  # sqlite3, newer APSW
        con.enable_load_extension(True)
        try:
            con.load_extension(path)
        finally:
            con.enable_load_extension(False)
    else:
        raise TypeError(
            "sqlite_embed.load: expected a sqlite3 or apsw Connection, got "
            f"{type(con).__name__}")


# ------------------------------------------------------------------ helpers

def _q(name):
    return '"' + name.replace('"', '""') + '"'


def _split(table):
    """'name' or 'schema.name' -> (schema, name)."""
    if not isinstance(table, str) or not table:
        raise TypeError("sqlite_embed: the table must be a non-empty str")
    schema, dot, name = table.partition(".")
    return (schema, name) if dot else ("main", table)


def _rows(con, sql, params=()):
    return list(con.cursor().execute(sql, params))


def _config(con, table):
    """The table's options from its config shadow table, or None when the
    table does not exist."""
    schema, name = _split(table)
    found = _rows(con, f"SELECT sql FROM {_q(schema)}.sqlite_master "
                       "WHERE type = 'table' AND name = ?", (name,))
    if not found:
        return None
    if not re.search(r"\busing\s+embedding\s*\(", found[0][0] or "", re.I):
        raise ValueError(f"sqlite_embed: {table} is not an embedding table")
    return dict(_rows(con, f"SELECT key, value FROM "
                           f"{_q(schema)}.{_q(name + '_config')}"))


def _need_config(con, table):
    conf = _config(con, table)
    if conf is None:
        raise ValueError(f"sqlite_embed: no embedding table {table}")
    return conf


def _target(table):
    schema, name = _split(table)
    return f"{_q(schema)}.{_q(name)}"


class _Savepoint:
    """One transaction around a write: a savepoint, so that it nests inside
    the caller's transaction and commits on its own otherwise."""

    def __init__(self, con):
        self.con = con

    def __enter__(self):
        self.con.cursor().execute("SAVEPOINT sqlite_embed")

    def __exit__(self, kind, value, tb):
        cur = self.con.cursor()
        if kind is not None:
            cur.execute("ROLLBACK TO sqlite_embed")
        cur.execute("RELEASE sqlite_embed")
        return False


def _numpy():
    try:
        import numpy
    except ImportError as e:
        raise ImportError("sqlite_embed: this helper needs numpy "
                          "(pip install numpy)") from e
    return numpy


def _torch():
    try:
        import torch
    except ImportError as e:
        raise ImportError("sqlite_embed: this helper needs PyTorch "
                          "(pip install torch)") from e
    return torch


# -------------------------------------------------------------------- numpy

def to_numpy(con, table, ids=None):
    """The stored vectors of `table` as an (n, D) float32 array: every row in
    id order, or the rows of `ids` (a sequence of ints) in that order. The
    rows are joined into one buffer that the array uses without a copy.
    KeyError names an id that is not in the table."""
    np = _numpy()
    dim = int(_need_config(con, table)["dim"])
    if ids is None:
        blobs = (r[0] for r in con.cursor().execute(
            f"SELECT vector FROM {_target(table)}"))
        want = None
    else:
        ids = [int(i) for i in ids]
        got = _rows(con, f"SELECT j.key, e.vector FROM json_each(?) j "
                         f"JOIN {_target(table)} e ON e.id = j.value "
                         "ORDER BY j.key", (json.dumps(ids),))
        if len(got) != len(ids):
            have = {k for k, _ in got}
            missing = next(ids[k] for k in range(len(ids)) if k not in have)
            raise KeyError(f"sqlite_embed: no id {missing} in embedding {table}")
        blobs = (v for _, v in got)
        want = len(ids)
    buf = bytearray().join(blobs)
    arr = np.frombuffer(buf, dtype="<f4").reshape(-1, dim)
    assert want is None or arr.shape[0] == want
    return arr.astype(np.float32, copy=False)


def _write_rows(con, table, arr, ids):
    con.cursor().executemany(
        f"INSERT OR REPLACE INTO {_target(table)}(id, vector) VALUES (?, ?)",
        ((i, arr[k].tobytes()) for k, i in enumerate(ids)))


def _as_rows(np, array, ids, who):
    arr = np.ascontiguousarray(np.asarray(array, dtype="<f4"))
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise ValueError(f"sqlite_embed.{who}: expected an (n, D) array, "
                         f"got shape {arr.shape}")
    ids = list(range(arr.shape[0])) if ids is None else [int(i) for i in ids]
    if len(ids) != arr.shape[0]:
        raise ValueError(f"sqlite_embed.{who}: {len(ids)} ids for "
                         f"{arr.shape[0]} rows")
    return arr, ids


def _check_dim(conf, dim, table, who):
    if int(conf["dim"]) != dim:
        raise ValueError(f"sqlite_embed.{who}: embedding {table} has dim "
                         f"{conf['dim']}, the array {dim}")


def from_numpy(con, table, array, ids=None):
    """Write the rows of an (n, D) array to `table` as ids 0..n-1 (or `ids`),
    replacing rows that exist, in one transaction; creates the table with
    dim=D when it is missing. Returns n. float32 values are stored bit for
    bit (other dtypes are rounded to float32 first)."""
    np = _numpy()
    arr, ids = _as_rows(np, array, ids, "from_numpy")
    with _Savepoint(con):
        conf = _config(con, table)
        if conf is None:
            con.cursor().execute(f"CREATE VIRTUAL TABLE {_target(table)} USING "
                                 f"embedding(dim={arr.shape[1]})")
        else:
            _check_dim(conf, arr.shape[1], table, "from_numpy")
        _write_rows(con, table, arr, ids)
    return len(ids)


# -------------------------------------------------------------------- torch

def _options(conf):
    none = lambda v: None if v == "none" else v  # noqa: E731
    pad = none(conf.get("padding_idx", "none"))
    max_norm = none(conf.get("max_norm", "none"))
    return dict(padding_idx=None if pad is None else int(pad),
                max_norm=None if max_norm is None else float(max_norm),
                norm_type=float(conf.get("norm_type", "2")),
                scale_grad_by_freq=conf.get("scale_grad_by_freq", "0") == "1")


def to_torch(con, table, sparse=False, freeze=False):
    """A torch.nn.Embedding holding the weights of `table` (ids 0..n-1, bit
    for bit) with its padding_idx, max_norm, norm_type and
    scale_grad_by_freq. A table whose ids are not 0..n-1 is a ValueError
    (use to_numpy with ids)."""
    torch = _torch()
    conf = _need_config(con, table)
    schema, name = _split(table)
    n, lo, hi = _rows(con, f"SELECT count(*), min(id), max(id) FROM "
                           f"{_q(schema)}.{_q(name + '_vectors')}")[0]
    if n and (lo != 0 or hi != n - 1):
        raise ValueError(f"sqlite_embed.to_torch: embedding {table} has {n} "
                         f"ids from {lo} to {hi}, not 0..{n - 1}: use "
                         "to_numpy(con, table, ids)")
    weight = torch.from_numpy(to_numpy(con, table))
    return torch.nn.Embedding.from_pretrained(weight, freeze=freeze,
                                              sparse=sparse, **_options(conf))


def _num(x):
    return "inf" if x == float("inf") else repr(float(x))


def from_torch(con, table, module_or_tensor):
    """Write the weights of a torch.nn.Embedding (or an (n, D) tensor) to
    `table` as ids 0..n-1, in one transaction. A missing table is created
    with num_embeddings=n, dim=D and the module's padding_idx, max_norm,
    norm_type and scale_grad_by_freq; an existing one keeps its options.
    Returns n."""
    torch = _torch()
    np = _numpy()
    module = module_or_tensor
    if isinstance(module, torch.nn.Embedding):
        weight = module.weight
    elif isinstance(module, torch.Tensor):
        weight, module = module, None
    else:
        raise TypeError("sqlite_embed.from_torch: expected a torch.nn.Embedding "
                        f"or a tensor, got {type(module).__name__}")
    arr = weight.detach().to("cpu", torch.float32).contiguous().numpy()
    arr, ids = _as_rows(np, arr, None, "from_torch")
    n, dim = arr.shape
    with _Savepoint(con):
        conf = _config(con, table)
        if conf is None:
            opts = [f"num_embeddings={n}", f"dim={dim}", "init=zeros"]
            if module is not None:
                if module.padding_idx is not None:
                    opts.append(f"padding_idx={int(module.padding_idx)}")
                if module.max_norm is not None:
                    opts.append(f"max_norm={_num(module.max_norm)}")
                opts.append(f"norm_type={_num(module.norm_type)}")
                opts.append("scale_grad_by_freq="
                            f"{int(bool(module.scale_grad_by_freq))}")
            con.cursor().execute(f"CREATE VIRTUAL TABLE {_target(table)} USING "
                                 f"embedding({', '.join(opts)})")
        else:
            _check_dim(conf, dim, table, "from_torch")
        _write_rows(con, table, arr, ids)
    return n
