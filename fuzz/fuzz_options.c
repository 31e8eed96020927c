/*
** fuzz_options.c - libFuzzer harness for CREATE VIRTUAL TABLE arguments
** (ext/core/options.c): embed_config_apply_arg on each argument, then
** embed_config_finish. No SQLite.
**
** Input: the CREATE arguments, one a line (each copied into its own buffer
** of exactly its length plus the terminator SQLite gives). Properties
** checked for every accepted configuration, because a table reconnects by
** replaying its stored options (vtab.c load_config):
**   - each applicable option's stored text fits the 64 bytes vtab.c keeps
**     for it;
**   - the stored form, applied to a fresh configuration, is accepted and
**     prints back identically (what CREATE stored, CONNECT reads).
*/
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

#define CHECK(cond, ...)                                             \
  do {                                                               \
    if (!(cond)) {                                                   \
      fprintf(stderr, "fuzz_options: property failed: %s: ", #cond); \
      fprintf(stderr, __VA_ARGS__);                                  \
      fprintf(stderr, "\n");                                         \
      abort();                                                       \
    }                                                                \
  } while (0)

#define STORED 64 /* vtab.c create_storage: char value[64] */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  embed_config cfg, back;
  embed_error err;
  size_t start = 0, i;
  int k, ok = 1, args = 0;
  if (size > 4096) return 0;
  embed_config_defaults(&cfg);
  for (i = 0; i <= size && ok; i++) {
    if (i == size || data[i] == '\n') {
      size_t len = i - start;
      char *arg = (char *)malloc(len + 1);
      if (!arg) return 0;
      memcpy(arg, data + start, len);
      arg[len] = 0;
      if (len > 0 || i < size) {
        args++;
        ok = embed_config_apply_arg(&cfg, arg, &err) == 0;
        if (!ok)
          CHECK(err.text[0] != 0, "an error without a message for '%s'", arg);
      }
      free(arg);
      start = i + 1;
    }
  }
  if (!ok || args == 0) return 0;
  if (embed_config_finish(&cfg, &err)) {
    CHECK(err.text[0] != 0, "finish failed without a message");
    return 0;
  }
  /* replay the stored form, as load_config does on CONNECT */
  embed_config_defaults(&back);
  for (k = 0; k < embed_config_count(); k++) {
    char value[512];
    if (!embed_config_applies(&cfg, k)) continue;
    embed_config_value(&cfg, k, value, sizeof(value));
    CHECK(strlen(value) < STORED, "option %s stores %zu bytes: '%s'",
          embed_config_key(k), strlen(value), value);
    CHECK(embed_config_apply(&back, embed_config_key(k), value, &err) == 0,
          "stored option %s='%s' does not read back: %s", embed_config_key(k),
          value, err.text);
  }
  for (k = 0; k < embed_config_count(); k++) {
    char a[512], b[512];
    if (!embed_config_applies(&cfg, k)) continue;
    embed_config_value(&cfg, k, a, sizeof(a));
    embed_config_value(&back, k, b, sizeof(b));
    CHECK(strcmp(a, b) == 0,
          "option %s: CREATE stored '%s', CONNECT reads '%s'",
          embed_config_key(k), a, b);
  }
  return 0;
}
