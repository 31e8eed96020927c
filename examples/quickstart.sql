-- quickstart.sql: an embedding layer inside SQLite, the way torch.nn.Embedding
-- works: a table of vectors keyed by token id, looked up by joins, compared
-- by cosine similarity, and trained in place with SGD steps.
--
--   make demo        (or: sqlite3 :memory: < examples/quickstart.sql)
.load ./embed
.mode column
.headers on

.print '== 1. A vocabulary and its embedding table: 8 rows of 8 floats, seeded'
CREATE TABLE vocab(id INTEGER PRIMARY KEY, token TEXT UNIQUE);
INSERT INTO vocab(id, token) VALUES
  (0, '<pad>'), (1, 'the'), (2, 'cat'), (3, 'dog'),
  (4, 'sat'), (5, 'on'), (6, 'mat'), (7, 'car');
CREATE VIRTUAL TABLE emb USING embedding(num_embeddings=8, dim=8,
                                         padding_idx=0, seed=7);
SELECT id, token, round(embed_norm(vector), 3) AS norm
FROM emb JOIN vocab USING (id);

.print ''
.print '== 2. A tokenized sentence joined to its vectors (the forward pass)'
CREATE TABLE sentence(pos INTEGER PRIMARY KEY, token_id INTEGER);
INSERT INTO sentence(pos, token_id)
  SELECT w.key, v.id
  FROM json_each('["the", "cat", "sat", "on", "the", "mat"]') AS w
  JOIN vocab v ON v.token = w.value;
SELECT s.pos, v.token, substr(embed_json(e.vector), 1, 48) || '...' AS vector
FROM sentence s
JOIN vocab v ON v.id = s.token_id
JOIN emb e ON e.id = s.token_id
ORDER BY s.pos;

.print ''
.print '== 3. The sentence as one bag: embed_mean (EmbeddingBag mode=mean)'
SELECT substr(embed_json(embed_mean(e.vector)), 1, 44) || '...' AS sentence_vector
FROM sentence s JOIN emb e ON e.id = s.token_id;

.print ''
.print '== 4. Nearest neighbours of "cat" by cosine distance (search; id > 0 skips <pad>)'
SELECT v.token, round(n.distance, 4) AS distance
FROM (SELECT id, distance FROM emb
      WHERE vector MATCH embed_lookup('emb', 2) AND k = 4 AND id > 0) AS n
JOIN vocab v ON v.id = n.id
ORDER BY n.distance;

.print ''
.print '== 5. Training: pull "cat" and "dog" together with SGD'
.print '   loss = |cat - dog|^2 / 2, so grad(cat) = cat - dog, grad(dog) = dog - cat;'
.print '   each step is one embed_update on both rows (a batch) with lr = 0.2'
.mode list
.headers off
CREATE TEMP VIEW cat_dog AS
  SELECT printf('cos(cat, dog) = %7.4f    cos(cat, car) = %7.4f',
                embed_cosine(embed_lookup('emb', 2), embed_lookup('emb', 3)),
                embed_cosine(embed_lookup('emb', 2), embed_lookup('emb', 7)))
         AS line;
CREATE TEMP VIEW step_grads AS
  SELECT '[' || embed_json(d) || ',' || embed_json(embed_scale(d, -1)) || ']' AS g
  FROM (SELECT embed_sub(embed_lookup('emb', 2), embed_lookup('emb', 3)) AS d);
SELECT 'before training:  ' || line FROM cat_dog;
SELECT printf('step 1: %d rows changed', embed_update('emb', '[2, 3]', g, 0.2)) FROM step_grads;
SELECT 'after step 1:     ' || line FROM cat_dog;
SELECT printf('step 2: %d rows changed', embed_update('emb', '[2, 3]', g, 0.2)) FROM step_grads;
SELECT 'after step 2:     ' || line FROM cat_dog;
SELECT printf('step 3: %d rows changed', embed_update('emb', '[2, 3]', g, 0.2)) FROM step_grads;
SELECT 'after step 3:     ' || line FROM cat_dog;
SELECT printf('step 4: %d rows changed', embed_update('emb', '[2, 3]', g, 0.2)) FROM step_grads;
SELECT 'after step 4:     ' || line FROM cat_dog;
SELECT printf('step 5: %d rows changed', embed_update('emb', '[2, 3]', g, 0.2)) FROM step_grads;
SELECT 'after training:   ' || line FROM cat_dog;
.mode column
.headers on

.print ''
.print '== 6. Nearest neighbours of "cat" after training: "dog" comes first'
SELECT v.token, round(n.distance, 4) AS distance
FROM (SELECT id, distance FROM emb
      WHERE vector MATCH embed_lookup('emb', 2) AND k = 4 AND id > 0) AS n
JOIN vocab v ON v.id = n.id
ORDER BY n.distance;

.print ''
.print '== 7. The padding row never trains: embed_update returns 0 for it'
SELECT embed_update('emb', 0, '[1,1,1,1,1,1,1,1]', 0.5) AS rows_changed,
       embed_json(embed_lookup('emb', 0)) AS pad_vector;
