# embed - a SQLite extension that makes SQLite an embedding layer.
#
#   make            build embed.so (the loadable extension)
#   make demo       run examples/quickstart.sql in the sqlite3 shell
#   make test       install missing test dependencies, then run every suite
#   make bench      speed against a plain table (figures go in the README)
#   make install    install embed.so so that `.load embed` works anywhere
#   make libembed.a the static library for apps that ship SQLite
#   make clean      remove embed.so, libembed.a and build/
#
# More:
#
#   make uninstall          remove what make install installed
#   make amalgamation       write dist/embed.c and dist/embed.h (one-file build)
#   make format             apply .clang-format to every C file
#   make help               print this list
#   make bench-knn          the similarity-search benchmark alone
#   make bench-ivf          the approximate-search (index=ivf) benchmark alone
#   make bench-files        the embedding-file benchmark alone
#
# The suites, in the order make test runs them; each is a quick loop alone.
# make test stops at the first that fails, ends with the suites that passed,
# were skipped or failed, and leaves out those in SKIP="test-fuzz ...":
#
#   make check-format       fail when a C file differs from .clang-format
#   make test-layers        ext/'s layers: no object cycle or upward use, files <= 800 lines; embed.so exports only sqlite3_embed_init
#   make test-tools         the self-test of tools/ on small made-up inputs
#   make test-unit          C unit tests of the pure core (tests/unit/unit.c)
#   make test-static        a C app linking libembed.a and the system SQLite
#   make test-app           examples/app.c with SQLite linked in statically
#   make test-sql           tests/sql/*.sql through the sqlite3 shell vs *.expected
#   make test-amalgamation  dist/embed.c built alone, then test-sql against it
#   make test-python        the pytest suites of tests/py/ and tests/robust/
#   make test-node          examples/quickstart.js on Node (skipped without node)
#   make test-pip           the Python package: wheel built offline, venv, tests outside the repo
#   make test-npm           the npm package: npm pack, installed offline, KNN and embed_update
#   make test-litestream    Litestream replicates a training WAL database; restores compared
#   make test-dqlite        a 3-node dqlite cluster: train, SIGKILL the leader, catch up
#   make test-asan          test-unit, test-sql and test-python, ASan + UBSan
#   make test-newer-sqlite  test-sql and test-python on SQLite 3.53
#   make test-oom           fail each allocation in turn (tests/robust/oom.c)
#   make test-oom-load      the same from sqlite3_load_extension() on (tests/robust/oom_load.c)
#   make test-ioerr         fail each I/O call in turn (tests/robust/ioerr.c)
#   make test-defensive     SQLite's defensive mode (tests/robust/defensive.c)
#   make test-valgrind      test-sql under valgrind memcheck
#   make test-fuzz          each libFuzzer harness of fuzz/ for 10 seconds
#
# Around them:
#
#   make test-deps          install what the suites need when it is missing
#   make node-deps          npm-install better-sqlite3@12 into build/node
#   make test-robust        test-oom to test-fuzz above, in a row
#   make fuzz               the robustness harnesses for longer (~15 minutes)

PREFIX     ?= /usr/local
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
CC         ?= cc
SQLITE3    ?= sqlite3
PYTHON     ?= /usr/bin/python3

WARN    = -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes
CFLAGS ?= -O2 -g
ALL_CFLAGS = -std=gnu11 -fPIC -fvisibility=hidden $(WARN) $(CFLAGS) -Iext
LDLIBS  = -lm

# The sources by layer, in dependency order (docs/DESIGN.md): each layer
# uses only the layers before it.
CORE_SRC  = $(sort $(wildcard ext/core/*.c))
VALUE_SRC = $(sort $(wildcard ext/value/*.c))
TABLE_SRC = $(sort $(wildcard ext/table/*.c))
SQL_SRC   = $(sort $(wildcard ext/sql/*.c))
IO_SRC    = $(sort $(wildcard ext/io/*.c))
SRC = $(CORE_SRC) $(VALUE_SRC) $(TABLE_SRC) $(SQL_SRC) $(IO_SRC) ext/embed.c
HDR = $(sort $(wildcard ext/*.h ext/*/*.h))
PURE_SRC = $(CORE_SRC)

BUILD = build

.PHONY: all demo test bench install uninstall clean test-deps test-sql \
        test-unit test-python test-asan test-static format bench-knn bench-ivf \
        test-app node-deps test-newer-sqlite bench-files \
        test-oom test-oom-load test-ioerr test-defensive test-valgrind test-fuzz \
        test-robust fuzz \
        test-node check-format help

# What a suite target runs last: records in $(SUITES_LOG) that it passed, or
# (`$(call skipped,why)`) that it was skipped; make test's summary reads it.
SUITES_LOG = $(BUILD)/suites.log
passed = mkdir -p $(BUILD) && echo "passed $@" >> $(SUITES_LOG)
skipped = mkdir -p $(BUILD) && echo "skipped $@ ($(1))" >> $(SUITES_LOG)

all: embed.so

embed.so: $(SRC) $(HDR)
	$(CC) $(ALL_CFLAGS) -shared -o $@ $(SRC) $(LDLIBS)

$(BUILD)/static/%.o: ext/%.c $(HDR)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -DSQLITE_CORE -c -o $@ $<

libembed.a: $(patsubst ext/%.c,$(BUILD)/static/%.o,$(SRC))
	rm -f $@
	ar rcs $@ $^

# The sanitizer build: the same sources with ASan and UBSan, any report fatal.
SAN_FLAGS = -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all \
            -fno-omit-frame-pointer
$(BUILD)/asan/embed.so: $(SRC) $(HDR)
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -fPIC -fvisibility=hidden $(WARN) $(SAN_FLAGS) -Iext -shared -o $@ $(SRC) $(LDLIBS)

$(BUILD)/unit: tests/unit/unit.c $(PURE_SRC) $(HDR)
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 $(WARN) -O1 -g -Iext -o $@ tests/unit/unit.c $(PURE_SRC) $(LDLIBS)

$(BUILD)/unit-asan: tests/unit/unit.c $(PURE_SRC) $(HDR)
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 $(WARN) $(SAN_FLAGS) -Iext -o $@ tests/unit/unit.c $(PURE_SRC) $(LDLIBS)

# A C app linking the static library (here against the system SQLite).
$(BUILD)/static_app: tests/unit/static_app.c libembed.a
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 $(WARN) -O1 -Iext -o $@ tests/unit/static_app.c libembed.a -lsqlite3 $(LDLIBS)

test-static: $(BUILD)/static_app
	$(BUILD)/static_app
	@$(passed)

# examples/app.c: SQLite and embed both linked in statically (Debian's
# libsqlite3.a from libsqlite3-dev), no libsqlite3.so or embed.so needed.
SQLITE_A ?= $(firstword $(wildcard /usr/lib/$(shell $(CC) -print-multiarch 2>/dev/null)/libsqlite3.a /usr/lib/libsqlite3.a))
$(BUILD)/app: examples/app.c libembed.a
	@mkdir -p $(dir $@)
	@test -n "$(SQLITE_A)" || { echo "no libsqlite3.a (apt-get install libsqlite3-dev)"; exit 1; }
	$(CC) -std=gnu11 $(WARN) -O2 -Iext -o $@ examples/app.c libembed.a $(SQLITE_A) $(LDLIBS) -lpthread -ldl

test-app: $(BUILD)/app
	$(BUILD)/app $(BUILD)
	@! ldd $(BUILD)/app | grep libsqlite3 || { echo "$(BUILD)/app links a shared SQLite"; exit 1; }
	@$(passed)

# Node: better-sqlite3@12 (v13 needs Node 22) in a git-ignored folder.
NPM ?= npm
NODE_PKG = $(BUILD)/node/node_modules/better-sqlite3/package.json
$(NODE_PKG):
	@mkdir -p $(BUILD)/node
	$(NPM) install --prefix $(BUILD)/node --no-audit --no-fund better-sqlite3@12

node-deps:
	@if command -v node >/dev/null 2>&1 && command -v $(NPM) >/dev/null 2>&1; then \
	  $(MAKE) --no-print-directory $(NODE_PKG) || \
	    echo "make test: better-sqlite3 not installed; test-node will skip"; \
	else echo "make test: no node/npm; test-node will skip"; fi

# tests/py/test_node.py, when node and the package are there.
test-node: node-deps embed.so
	@if ! command -v node >/dev/null 2>&1; then $(call skipped,no node); \
	elif [ ! -f $(NODE_PKG) ]; then $(call skipped,no better-sqlite3 package); \
	else EMBED_EXT=$(CURDIR)/embed $(PYTHON) -m pytest -q -p no:cacheprovider \
	  tests/py/test_node.py && $(passed); fi

# The Python package (bindings/python): a wheel built with no index
# reached, installed into a fresh venv, its tests run from outside the
# repository (bindings/python/test.sh).
.PHONY: test-pip
test-pip:
	sh bindings/python/test.sh $(PYTHON) $(BUILD)/pip
	@$(passed)

# The npm package (bindings/node): npm pack, the tarball installed into a
# temporary project with better-sqlite3@12 (bindings/node/test.sh).
.PHONY: test-npm
test-npm: node-deps
	@if ! command -v node >/dev/null 2>&1; then $(call skipped,no node); \
	elif [ ! -f $(NODE_PKG) ]; then $(call skipped,no better-sqlite3 package); \
	else sh bindings/node/test.sh $(BUILD)/npm $(dir $(NODE_PKG)) && $(passed); fi

# Scaling out (tests/ecosystem/, files not named test_*.py so that
# test-python leaves them out): Litestream 0.3.13 from npm, in build/litestream
# (tests/install-deps.sh), and dqlite-demo of Debian's go-dqlite with embed
# registered at the first open (tests/ecosystem/dqlite_embed.c).
.PHONY: test-litestream test-dqlite
LITESTREAM = $(BUILD)/litestream/node_modules/@flydotio/litestream-linux-x64/litestream
ECOSYSTEM_PYTEST = EMBED_EXT=$(CURDIR)/embed $(PYTHON) -m pytest -q -p no:cacheprovider
test-litestream: embed.so
	@if [ ! -x $(LITESTREAM) ]; then $(call skipped,no litestream binary: npm install failed or not x86_64); \
	else EMBED_LITESTREAM=$(CURDIR)/$(LITESTREAM) $(ECOSYSTEM_PYTEST) \
	  tests/ecosystem/litestream_check.py && $(passed); fi

$(BUILD)/dqlite/dqlite_embed.so: tests/ecosystem/dqlite_embed.c libembed.a
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 $(WARN) -O2 -shared -fPIC -Iext -o $@ tests/ecosystem/dqlite_embed.c libembed.a -ldl -lm -lpthread

test-dqlite: embed.so $(BUILD)/dqlite/dqlite_embed.so
	@if ! command -v dqlite-demo >/dev/null 2>&1; then $(call skipped,no dqlite-demo: apt-get install go-dqlite); \
	else EMBED_DQLITE_SHIM=$(CURDIR)/$(BUILD)/dqlite/dqlite_embed.so $(ECOSYSTEM_PYTEST) \
	  tests/ecosystem/dqlite_check.py && $(passed); fi

# The whole Python suite against the current SQLite release, built from the
# amalgamation inside better-sqlite3's npm package.
test-newer-sqlite: node-deps embed.so
	@sh tests/newer-sqlite.sh --python; rc=$$?; \
	if [ $$rc -eq 0 ]; then $(passed); \
	elif [ $$rc -eq 77 ]; then \
	  echo "make test: newer SQLite skipped (no better-sqlite3 package)"; \
	  $(call skipped,no better-sqlite3 package); \
	else exit $$rc; fi

# Reliability (tests/robust/: oom.c, oom_load.c, ioerr.c, defensive.c; and fuzz/): each
# prints its figure; `make fuzz` runs them longer.
ROBUST_LIBS = $(SQLITE_A) -lm -lpthread -ldl

$(BUILD)/oom: tests/robust/oom.c tests/robust/harness.h tests/robust/fault_alloc.h libembed.a
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 $(WARN) -O1 -g -Iext -o $@ tests/robust/oom.c libembed.a $(ROBUST_LIBS)

$(BUILD)/oom-asan: tests/robust/oom.c $(SRC) $(HDR)
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 $(WARN) $(SAN_FLAGS) -DSQLITE_CORE -Iext -o $@ tests/robust/oom.c $(SRC) $(ROBUST_LIBS)

$(BUILD)/ioerr: tests/robust/ioerr.c libembed.a
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 $(WARN) -O1 -g -Iext -o $@ tests/robust/ioerr.c libembed.a $(ROBUST_LIBS)

# Debian's shared libsqlite3, into which the sweep loads embed.so.
$(BUILD)/oom-load: tests/robust/oom_load.c tests/robust/harness.h tests/robust/fault_alloc.h
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 $(WARN) -O1 -g -o $@ tests/robust/oom_load.c -lsqlite3

$(BUILD)/defensive: tests/robust/defensive.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 $(WARN) -O1 -g -o $@ tests/robust/defensive.c -lsqlite3

# The sweep's points split between OOM_SHARDS processes run side by side
# (oom.c --shard), each logging to build/oom.K.log, shown when all end.
OOM_SHARDS ?= 2
test-oom: $(BUILD)/oom
	@pids=; logs=; k=0; while [ $$k -lt $(OOM_SHARDS) ]; do \
	  $(BUILD)/oom --shard $$k/$(OOM_SHARDS) > $(BUILD)/oom.$$k.log 2>&1 & \
	  pids="$$pids $$!"; logs="$$logs $(BUILD)/oom.$$k.log"; k=$$((k + 1)); done; \
	ok=1; for p in $$pids; do wait $$p || ok=0; done; \
	cat $$logs; cat $$logs | awk '/allocation points tried/ { p += $$2; f += $$6 } \
	  END { printf "oom: %d allocation points tried in all, %d failures\n", p, f }'; \
	[ $$ok = 1 ]
	@$(passed)
test-oom-load: embed.so $(BUILD)/oom-load
	$(BUILD)/oom-load ./embed.so
	@$(passed)
test-ioerr: $(BUILD)/ioerr
	$(BUILD)/ioerr
	@$(passed)
test-defensive: embed.so $(BUILD)/defensive
	$(BUILD)/defensive ./embed
	@$(passed)
test-valgrind: embed.so
	sh tests/robust/valgrind.sh ./embed
	@$(passed)
test-fuzz:
	SRC="$(SRC)" sh fuzz/run.sh 10
	@$(passed)
test-robust: test-oom test-oom-load test-ioerr test-defensive test-valgrind test-fuzz

fuzz: embed.so $(BUILD)/oom-asan $(BUILD)/ioerr $(BUILD)/oom-load
	ASAN_OPTIONS=detect_leaks=0 $(BUILD)/oom-asan --all
	$(BUILD)/oom-load ./embed.so
	$(BUILD)/ioerr --long
	EMBED_CRASH_KILLS=300 EMBED_CONCURRENCY_SECONDS=60 EMBED_EXT=$(CURDIR)/embed \
	  $(PYTHON) -m pytest -q -p no:cacheprovider tests/robust/test_crash.py \
	  tests/robust/test_concurrency.py tests/robust/test_corrupt.py
	SRC="$(SRC)" sh fuzz/run.sh 600

demo: embed.so
	$(SQLITE3) :memory: < examples/quickstart.sql

test-deps:
	@sh tests/install-deps.sh

test-sql: embed.so
	@sh tests/sql/run-sql.sh ./embed
	@$(passed)

test-unit: $(BUILD)/unit
	$(BUILD)/unit
	@$(passed)

# Every pytest suite but tests/py/test_node.py (test-node runs it).
test-python: embed.so
	EMBED_EXT=$(CURDIR)/embed $(PYTHON) -m pytest -q tests \
	  --ignore=tests/py/test_node.py
	@$(passed)

ASAN_LIB = $(shell $(CC) -print-file-name=libasan.so)
UBSAN_LIB = $(shell $(CC) -print-file-name=libubsan.so)
ASAN_ENV = LD_PRELOAD="$(ASAN_LIB) $(UBSAN_LIB)" \
           ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
           UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

test-asan: $(BUILD)/asan/embed.so $(BUILD)/unit-asan
	$(BUILD)/unit-asan
	$(ASAN_ENV) sh tests/sql/run-sql.sh $(CURDIR)/$(BUILD)/asan/embed
	$(ASAN_ENV) EMBED_EXT=$(CURDIR)/$(BUILD)/asan/embed \
	  $(PYTHON) -m pytest -q -p no:cacheprovider tests
	@$(passed)

# What `make test` runs, in order; it stops at the first suite that fails.
# Each suite records its result in $(SUITES_LOG), which make test empties
# first, and tests/summary.sh counts from it what passed and was skipped.
TEST_SUITES = check-format test-layers test-tools test-unit test-static \
              test-app test-sql test-amalgamation \
              test-python test-node test-pip test-npm \
              test-litestream test-dqlite test-asan test-newer-sqlite \
              test-oom test-oom-load test-ioerr test-defensive test-valgrind \
              test-fuzz
SKIP ?=

test:
	@rm -f $(SUITES_LOG)
	$(MAKE) --no-print-directory test-deps
	$(MAKE) --no-print-directory embed.so
	@failed=; for t in $(TEST_SUITES); do \
	  case " $(SKIP) " in *" $$t "*) \
	    mkdir -p $(BUILD); echo "skipped $$t (in SKIP)" >> $(SUITES_LOG); \
	    continue ;; esac; \
	  echo "$(MAKE) $$t"; \
	  $(MAKE) --no-print-directory $$t || { failed=$$t; break; }; \
	done; \
	sh tests/summary.sh $(SUITES_LOG) "$(TEST_SUITES)" $$failed

bench: embed.so
	$(PYTHON) bench/bench.py
	$(PYTHON) bench/bench_knn.py
	$(PYTHON) bench/bench_ivf.py
	$(PYTHON) bench/bench_live.py
	$(PYTHON) bench/bench_train.py
	$(PYTHON) bench/bench_train.py --no-memory --no-insert --checkpoint-every 4
	$(PYTHON) bench/bench_train.py --no-insert --page-size 65536
	$(PYTHON) bench/bench_train.py --no-memory --no-insert --checkpoint-every 4 --page-size 65536
	$(PYTHON) bench/bench_files.py

bench-files: embed.so
	$(PYTHON) bench/bench_files.py

bench-knn: embed.so
	$(PYTHON) bench/bench_knn.py

bench-ivf: embed.so
	$(PYTHON) bench/bench_ivf.py

# `.load embed` (no path) makes SQLite dlopen("embed.so"), which searches only
# LD_LIBRARY_PATH and the loader's system folders; ldconfig does not cache
# files not named lib*.so, so $(PREFIX)/lib alone is not enough. install
# therefore also links embed.so into the loader's folder (LOADER_DIR; set
# LOADER_DIR= to skip the link).
LOADER_DIR ?= $(firstword $(wildcard /usr/lib/$(shell $(CC) -print-multiarch 2>/dev/null)) /usr/lib)

install: embed.so libembed.a
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR)
	install -m 0755 embed.so $(DESTDIR)$(LIBDIR)/embed.so
	install -m 0644 libembed.a $(DESTDIR)$(LIBDIR)/libembed.a
	install -m 0644 ext/embed.h $(DESTDIR)$(INCLUDEDIR)/embed.h
	if [ -n "$(LOADER_DIR)" ] && [ "$(LOADER_DIR)" != "$(LIBDIR)" ]; then \
	  install -d $(DESTDIR)$(LOADER_DIR) && \
	  ln -sf $(LIBDIR)/embed.so $(DESTDIR)$(LOADER_DIR)/embed.so; fi

uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/embed.so $(DESTDIR)$(LIBDIR)/libembed.a \
	      $(DESTDIR)$(INCLUDEDIR)/embed.h
	if [ -n "$(LOADER_DIR)" ] && [ -L $(DESTDIR)$(LOADER_DIR)/embed.so ]; then \
	  rm -f $(DESTDIR)$(LOADER_DIR)/embed.so; fi

# Every C file of the repository.
C_FILES = $(sort $(shell find ext tests examples bench fuzz -name '*.[ch]'))

format:
	clang-format -i $(C_FILES)

check-format:
	clang-format --dry-run --Werror $(C_FILES)
	@$(passed)

# The header of this file.
help:
	@sed -n -e '/^#/!q' -e 's/^# \{0,1\}//p' $(firstword $(MAKEFILE_LIST))

clean:
	rm -rf $(BUILD) embed.so libembed.a

# Build tools (tools/). RUN_SQL: the SQL suite runner (if it moves, change
# this line). LAYER_CHECKS: a subset for test-layers, as "--cycles --lines".
.PHONY: amalgamation test-amalgamation test-layers test-tools
RUN_SQL ?= tests/sql/run-sql.sh
LAYER_CHECKS ?=
DIST = dist
LIB_OBJ = $(patsubst ext/%.c,$(BUILD)/static/%.o,$(SRC))
AMALG_CFLAGS = -std=gnu11 -fPIC -fvisibility=hidden $(WARN) $(CFLAGS)

# make amalgamation: dist/embed.c (all of embed in one C file, as SQLite ships) and dist/embed.h
amalgamation: $(DIST)/embed.c $(DIST)/embed.h

$(DIST)/embed.c: $(SRC) $(HDR) tools/amalgamate.py
	$(PYTHON) tools/amalgamate.py --cc "$(CC)" -I ext --header ext/embed.h -o $@ $(SRC)

$(DIST)/embed.h: ext/embed.h
	@mkdir -p $(dir $@)
	cp ext/embed.h $@

# No -Iext: dist/embed.c needs only sqlite3.h and sqlite3ext.h.
$(BUILD)/amalgamation/embed.so: $(DIST)/embed.c
	@mkdir -p $(dir $@)
	$(CC) $(AMALG_CFLAGS) -shared -o $@ $(DIST)/embed.c $(LDLIBS)

$(BUILD)/amalgamation/embed.o: $(DIST)/embed.c
	@mkdir -p $(dir $@)
	$(CC) $(AMALG_CFLAGS) -DSQLITE_CORE -c -o $@ $(DIST)/embed.c

# A loadable build exports sqlite3_embed_init and nothing else (ext/embed.c).
check_exports = exports=$$(nm -D --defined-only $(1) | awk '{print $$3}'); \
	test "$$exports" = sqlite3_embed_init || \
	{ echo "$(1) exports more than sqlite3_embed_init:" $$exports; exit 1; }

# make test-amalgamation: build dist/embed.c alone (loadable and -DSQLITE_CORE), run the SQL suite on it
test-amalgamation: $(BUILD)/amalgamation/embed.so $(BUILD)/amalgamation/embed.o
	@$(call check_exports,$(BUILD)/amalgamation/embed.so)
	@! grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' $(DIST)/embed.c | \
	  grep -vE '"sqlite3(ext)?\.h"' || { echo "$(DIST)/embed.c includes a local header"; exit 1; }
	BUILD_DIR=$(BUILD)/amalgamation sh $(RUN_SQL) $(BUILD)/amalgamation/embed
	@$(passed)

# make test-layers: object cycles and layer order (libembed.a), file length, shadow-table names, citations, embed.so's one export
test-layers: libembed.a embed.so
	@$(call check_exports,embed.so)
	$(PYTHON) tools/check_layers.py $(LAYER_CHECKS) --objdir $(BUILD)/static $(LIB_OBJ)
	@$(passed)

# make test-tools: the self-test of tools/ on small made-up inputs
test-tools:
	$(PYTHON) tests/tools_selftest.py
	@$(passed)
