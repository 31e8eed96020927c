"""The initial vector of row `id` is the documented pure function of
(seed, id): an independent Python implementation of the README's algorithm
must reproduce the table's rows bit for bit."""
import math
import sqlite3

import numpy as np

from conftest import EXT

M64 = (1 << 64) - 1


def mix(x):
    x = (x + 0x9E3779B97F4A7C15) & M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def initial_row(init, seed, row_id, dim):
    key = mix(mix(seed & M64) ^ (row_id & M64))
    bits = [mix(key ^ j) for j in range(dim + 1)]
    if init == "zeros":
        return np.zeros(dim, dtype=np.float32)
    if init == "uniform":
        return np.array([((b >> 40) - 2**23) * 2.0**-23 for b in bits[:dim]],
                        dtype=np.float32)
    out = []
    for j in range(0, dim, 2):
        u1 = 1.0 - (bits[j] >> 11) * 2.0**-53
        u2 = (bits[j + 1] >> 11) * 2.0**-53
        r = math.sqrt(-2.0 * math.log(u1))
        out.append(r * math.cos(2 * math.pi * u2))
        out.append(r * math.sin(2 * math.pi * u2))
    return np.array(out[:dim], dtype=np.float32)


def connect():
    conn = sqlite3.connect(":memory:")
    conn.enable_load_extension(True)
    conn.load_extension(EXT)
    return conn


def test_rows_match_the_documented_algorithm():
    conn = connect()
    for init, seed, dim in [("normal", 42, 7), ("normal", -3, 16),
                            ("uniform", 9, 5), ("zeros", 1, 3)]:
        conn.execute(f"CREATE VIRTUAL TABLE t USING embedding(dim={dim}, "
                     f"init={init}, seed={seed})")
        ids = [0, 1, 2, 1000, -5, 2**62]
        conn.executemany("INSERT INTO t(id) VALUES (?)", [(i,) for i in ids])
        for row_id in ids:
            (blob,) = conn.execute("SELECT vector FROM t WHERE id = ?",
                                   (row_id,)).fetchone()
            got = np.frombuffer(blob, dtype="<f4")
            want = initial_row(init, seed, row_id, dim)
            assert got.tobytes() == want.tobytes(), (init, seed, row_id)
        conn.execute("DROP TABLE t")
