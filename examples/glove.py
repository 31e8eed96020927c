"""glove.py: a vocabulary workflow on a GloVe-format file, all in SQL.

The example writes a small GloVe-format file itself (no download): 32 words
whose 16-dim vectors are sums of hidden features (royal, male, female, young,
city, country, France, Italy, ...) plus noise, so the classic analogies hold.
Then, in SQL only:

  1. load the file into a vocabulary table and an embedding table in one
     transaction (embed_file reads GloVe, word2vec text/binary, fastText
     .vec and .npy);
  2. the nearest words to a word (vector MATCH ... AND k = N);
  3. analogies a - b + c (embed_sub, embed_add, then MATCH);
  4. the table written back out as word2vec binary with embed_save.

    python3 examples/glove.py          (after `make`; EMBED_EXT=path/to/embed)
"""
import os
import random
import sqlite3
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXT = os.environ.get("EMBED_EXT") or os.path.join(ROOT, "embed")

DIM = 16
# word -> its hidden features
WORDS = {
    "king": "royal male", "queen": "royal female",
    "prince": "royal male young", "princess": "royal female young",
    "man": "male", "woman": "female", "boy": "male young", "girl": "female young",
    "paris": "city france", "france": "country france",
    "rome": "city italy", "italy": "country italy",
    "berlin": "city germany", "germany": "country germany",
    "tokyo": "city japan", "japan": "country japan",
    "madrid": "city spain", "spain": "country spain",
    "cat": "animal feline", "kitten": "animal feline young",
    "dog": "animal canine", "puppy": "animal canine young",
    "horse": "animal equine", "foal": "animal equine young",
    "apple": "fruit red", "cherry": "fruit red small",
    "banana": "fruit yellow", "lemon": "fruit yellow sour",
    "car": "vehicle", "bus": "vehicle big", "bike": "vehicle small",
    "the": "",
}


def write_glove_file(path, seed=42):
    """One line per word: the word, then DIM numbers (GloVe has no header)."""
    rnd = random.Random(seed)
    features = {}
    with open(path, "w", encoding="utf-8") as f:
        for word, feats in WORDS.items():
            v = [rnd.gauss(0, 0.15) for _ in range(DIM)]  # the word's own noise
            for feat in feats.split():
                if feat not in features:
                    features[feat] = [rnd.gauss(0, 1) for _ in range(DIM)]
                v = [a + b for a, b in zip(v, features[feat])]
            f.write(word + " " + " ".join(f"{x:.5f}" for x in v) + "\n")


NEAREST = """
SELECT v.token, round(n.distance, 3) AS distance
FROM (SELECT id, distance FROM emb
      WHERE vector MATCH (SELECT e.vector FROM emb e JOIN vocab w ON w.id = e.id
                          WHERE w.token = :word)
        AND k = :k + 1) AS n
JOIN vocab v ON v.id = n.id
WHERE v.token <> :word
ORDER BY n.distance
"""

# a - b + c, then the nearest word that is none of a, b, c (as gensim's
# most_similar(positive=[a, c], negative=[b]) excludes its inputs)
ANALOGY = """
WITH q(v) AS (
  SELECT embed_add(embed_sub(embed_lookup('emb', a.id),
                             embed_lookup('emb', b.id)),
                   embed_lookup('emb', c.id))
  FROM vocab a, vocab b, vocab c
  WHERE a.token = :a AND b.token = :b AND c.token = :c)
SELECT v.token, round(n.distance, 3) AS distance
FROM (SELECT id, distance FROM emb
      WHERE vector MATCH (SELECT v FROM q) AND k = 4) AS n
JOIN vocab v ON v.id = n.id
WHERE v.token NOT IN (:a, :b, :c)
ORDER BY n.distance
LIMIT 1
"""


def main():
    work = tempfile.mkdtemp(prefix="embed-glove-")
    path = os.path.join(work, "tiny_glove.16d.txt")
    write_glove_file(path)

    db = sqlite3.connect(":memory:", isolation_level=None)
    db.enable_load_extension(True)
    db.load_extension(EXT)
    db.enable_load_extension(False)

    print(f"== 1. A GloVe-format file: {len(WORDS)} words x {DIM} numbers")
    with open(path, encoding="utf-8") as f:
        print("   first line:", f.readline()[:60].rstrip() + " ...")
    print("   what embed_file sees:")
    for n, token, dim, fmt in db.execute(
            "SELECT n, token, embed_dim(vector), format FROM embed_file(?) "
            "LIMIT 3", (path,)):
        print(f"   n={n}  token={token!r:12} dim={dim}  format={fmt}")

    print("\n== 2. Load it into vocab + an embedding table, one transaction")
    db.execute("BEGIN")
    db.execute("CREATE TABLE vocab(id INTEGER PRIMARY KEY, token TEXT UNIQUE)")
    db.execute(f"CREATE VIRTUAL TABLE emb USING embedding(dim={DIM})")
    db.execute("INSERT INTO vocab(id, token) SELECT n, token FROM embed_file(?)",
               (path,))
    db.execute("INSERT INTO emb(id, vector) SELECT n, vector FROM embed_file(?)",
               (path,))
    db.execute("COMMIT")
    (nv,), (ne,) = (db.execute("SELECT count(*) FROM vocab").fetchone(),
                    db.execute("SELECT count(*) FROM emb").fetchone())
    print(f"   vocab: {nv} rows, emb: {ne} rows")

    print("\n== 3. Nearest words (cosine distance)")
    for word in ("cat", "paris", "apple"):
        near = db.execute(NEAREST, {"word": word, "k": 3}).fetchall()
        print(f"   {word:7} -> " + ", ".join(f"{t} ({d})" for t, d in near))

    print("\n== 4. Analogies: a - b + c")
    for a, b, c in (("king", "man", "woman"), ("paris", "france", "italy"),
                    ("puppy", "dog", "cat"), ("prince", "boy", "girl"),
                    ("tokyo", "japan", "spain")):
        token, dist = db.execute(ANALOGY, {"a": a, "b": b, "c": c}).fetchone()
        print(f"   {a} - {b} + {c} = {token}  (distance {dist})")

    print("\n== 5. Written back as word2vec binary with embed_save")
    out = os.path.join(work, "tiny.bin")
    (count,) = db.execute(
        "SELECT embed_save(?, 'word2vec-binary', token, vector) FROM "
        "(SELECT v.token, e.vector FROM vocab v JOIN emb e ON e.id = v.id "
        " ORDER BY v.id)", (out,)).fetchone()
    print(f"   {count} vectors, {os.path.getsize(out)} bytes; read back:",
          db.execute("SELECT count(*), min(format) FROM embed_file(?)",
                     (out,)).fetchone())
    db.close()
    for name in os.listdir(work):
        os.remove(os.path.join(work, name))
    os.rmdir(work)


if __name__ == "__main__":
    main()
