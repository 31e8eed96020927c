/*
** tokens.c - the set of tokens an embed_file scan has seen, so that a
** repeated token keeps its first vector (as gensim's
** KeyedVectors.load_word2vec_format does).
**
** Usage:
**
**     SELECT n, token FROM embed_file('dup.vec');
**     -- entries cat, dog, cat, car give (0, cat), (1, dog), (3, car):
**     -- the second cat is skipped, and n still counts it
**
**     embed_token_set seen = {0};
**     rc = embed_token_set_add(&seen, token, len, &added); // NOMEM or OK
**     if (!added) ...skip the entry...
**     embed_token_set_free(&seen);
**
** Design:
**  - Records [hash u64][length u32][bytes] are appended to one arena
**    (grown by doubling from 64 KiB), and an open-addressing table of
**    arena offsets + 1 (0: an empty slot) finds them with linear probing.
**    The table starts at 1024 slots and doubles at 70% load; growing
**    reinserts from the hashes stored in the records.
**  - The hash is FNV-1a over the bytes, mixed with the length through
**    embed_mix64 (core/initializer.c), so similar tokens spread.
**  - This set is the only part of a scan whose memory grows with the
**    file: about 12 bytes plus the token plus a slot per distinct token.
*/
#include <string.h>

#include "io/io.h"

/* The record layout: the hash, then the length, then the token's bytes. */
#define TOKENS_LEN_AT 8
#define TOKENS_BYTES_AT 12

void embed_token_set_free(embed_token_set *s) {
  sqlite3_free(s->arena);
  sqlite3_free(s->slots);
  memset(s, 0, sizeof(*s));
}

static uint64_t tokens_hash(const char *p, int64_t n) {
  uint64_t h = 0xcbf29ce484222325ULL;
  int64_t i;
  for (i = 0; i < n; i++) h = (h ^ (unsigned char)p[i]) * 0x100000001b3ULL;
  return embed_mix64(h ^ (uint64_t)n);
}

int embed_token_set_add(embed_token_set *s, const char *p, int64_t n,
                        int *added) {
  uint64_t h = tokens_hash(p, n);
  int64_t i, need;
  if ((s->n + 1) * 10 > (s->mask + 1) * 7) { /* grow at 70% */
    int64_t nslots = s->mask ? (s->mask + 1) * 2 : 1024, j;
    int64_t *slots = sqlite3_malloc64((sqlite3_uint64)nslots * sizeof(int64_t));
    if (!slots) return SQLITE_NOMEM;
    memset(slots, 0, (size_t)nslots * sizeof(int64_t));
    for (j = 0; s->mask && j <= s->mask; j++) {
      uint64_t hj;
      int64_t k;
      if (!s->slots[j]) continue;
      memcpy(&hj, s->arena + s->slots[j] - 1, sizeof(hj));
      for (k = (int64_t)(hj & (uint64_t)(nslots - 1)); slots[k];
           k = (k + 1) & (nslots - 1)) {
      }
      slots[k] = s->slots[j];
    }
    sqlite3_free(s->slots);
    s->slots = slots;
    s->mask = nslots - 1;
  }
  for (i = (int64_t)(h & (uint64_t)s->mask); s->slots[i];
       i = (i + 1) & s->mask) {
    const char *rec = s->arena + s->slots[i] - 1;
    uint64_t hr;
    uint32_t len;
    memcpy(&hr, rec, sizeof(hr));
    memcpy(&len, rec + TOKENS_LEN_AT, sizeof(len));
    if (hr == h && (int64_t)len == n &&
        memcmp(rec + TOKENS_BYTES_AT, p, (size_t)n) == 0) {
      *added = 0;
      return SQLITE_OK;
    }
  }
  need = TOKENS_BYTES_AT + n;
  if (s->arena_len + need > s->arena_cap) {
    int64_t cap = s->arena_cap ? s->arena_cap * 2 : 65536;
    char *grown;
    while (cap < s->arena_len + need) cap *= 2;
    grown = sqlite3_realloc64(s->arena, (sqlite3_uint64)cap);
    if (!grown) return SQLITE_NOMEM;
    s->arena = grown;
    s->arena_cap = cap;
  }
  {
    uint32_t len = (uint32_t)n;
    char *rec = s->arena + s->arena_len;
    memcpy(rec, &h, sizeof(h));
    memcpy(rec + TOKENS_LEN_AT, &len, sizeof(len));
    memcpy(rec + TOKENS_BYTES_AT, p, (size_t)n);
  }
  s->slots[i] = s->arena_len + 1;
  s->arena_len += need;
  s->n++;
  *added = 1;
  return SQLITE_OK;
}
