"""quickstart.py: embed from Python's standard sqlite3 module, with numpy.

  1. load the extension into a connection
  2. create an embedding table (torch.nn.Embedding(6, 4) in a database)
  3. insert numpy vectors: a vector is the BLOB of float32 .tobytes()
  4. look rows up; numpy.frombuffer reads a BLOB without copying it
  5. similarity search: the k nearest rows to a query vector
  6. a training step: embed_update applies SGD, w <- w - lr * grad,
     the same numbers numpy computes

    python3 examples/quickstart.py     (after `make`; EMBED_EXT=path/to/embed)

Python's sqlite3 must allow extensions (Debian's /usr/bin/python3 does).
"""
import os
import sqlite3

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXT = os.environ.get("EMBED_EXT") or os.path.join(ROOT, "embed")

np.set_printoptions(precision=4, suppress=True)

print("== 1. Load the extension")
db = sqlite3.connect(":memory:", isolation_level=None)  # autocommit
db.enable_load_extension(True)
db.load_extension(EXT)
db.enable_load_extension(False)
(version,) = db.execute("SELECT embed_version()").fetchone()
print(f"   embed {version} on SQLite {sqlite3.sqlite_version}")

print("\n== 2. An embedding table of 6 rows x 4 floats (seeded, like torch's N(0, 1) init)")
db.execute("CREATE VIRTUAL TABLE emb USING embedding(num_embeddings=6, dim=4, "
           "seed=1)")
db.execute("CREATE TABLE vocab(id INTEGER PRIMARY KEY, token TEXT UNIQUE)")
db.executemany("INSERT INTO vocab VALUES (?, ?)",
               enumerate(["<pad>", "red", "green", "blue", "apple", "cherry"]))
print("   rows:", db.execute("SELECT count(*) FROM emb").fetchone()[0])

print("\n== 3. Insert numpy vectors (float32 .tobytes() is the BLOB format)")
colors = {"red": [1.0, 0.1, 0.0, 0.0], "green": [0.0, 1.0, 0.1, 0.0],
          "blue": [0.0, 0.1, 1.0, 0.0], "apple": [0.9, 0.3, 0.0, 0.5],
          "cherry": [0.95, 0.05, 0.1, 0.6]}
db.execute("BEGIN")  # one transaction for the whole batch
for token, v in colors.items():
    blob = np.array(v, dtype=np.float32).tobytes()
    db.execute("UPDATE emb SET vector = ? WHERE id = "
               "(SELECT id FROM vocab WHERE token = ?)", (blob, token))
db.execute("INSERT INTO vocab VALUES (6, 'purple')")
db.execute("INSERT INTO emb(id, vector) VALUES (6, ?)",
           (np.array([0.5, 0.0, 0.5, 0.0], dtype=np.float32).tobytes(),))
db.execute("COMMIT")
print("   purple inserted as id 6; table has",
      db.execute("SELECT count(*) FROM emb").fetchone()[0], "rows")

print("\n== 4. Look up: a BLOB read as a numpy array without a copy")
(blob,) = db.execute("SELECT vector FROM emb WHERE id = 4").fetchone()
apple = np.frombuffer(blob, dtype="<f4")  # a read-only view of the bytes
print(f"   apple  = {apple}  (shares memory with the BLOB: "
      f"{np.shares_memory(apple, np.frombuffer(blob, dtype=np.uint8))})")
batch = db.execute("SELECT embed_lookup('emb', '[1, 2, 3]')").fetchone()[0]
print("   embed_lookup('emb', '[1, 2, 3]'), one BLOB of 3 x 4 floats:")
for row in np.frombuffer(batch, dtype="<f4").reshape(3, 4):
    print("     ", row)

print("\n== 5. Similarity search: the 3 rows nearest to cherry (cosine distance)")
query = np.array(colors["cherry"], dtype=np.float32).tobytes()
for token, dist in db.execute(
        "SELECT v.token, n.distance FROM (SELECT id, distance FROM emb "
        "WHERE vector MATCH ? AND k = 3) AS n JOIN vocab v ON v.id = n.id "
        "ORDER BY n.distance", (query,)):
    print(f"   {token:8} {dist:.4f}")

print("\n== 6. A training step: SGD on row 1 (red), lr = 0.5")
grad = np.array([0.2, -0.4, 0.0, 1.0], dtype=np.float32)
before = np.frombuffer(db.execute("SELECT vector FROM emb WHERE id = 1")
                       .fetchone()[0], dtype="<f4")
(changed,) = db.execute("SELECT embed_update('emb', 1, ?, 0.5)",
                        (grad.tobytes(),)).fetchone()
after = np.frombuffer(db.execute("SELECT vector FROM emb WHERE id = 1")
                      .fetchone()[0], dtype="<f4")
expected = before - np.float32(0.5) * grad
print(f"   before   {before}\n   grad     {grad}\n   after    {after}")
print(f"   rows changed: {changed}; equals numpy's w - lr * grad: "
      f"{np.array_equal(after, expected)}")
db.close()
