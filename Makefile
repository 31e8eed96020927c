# embed - a SQLite extension that makes SQLite an embedding layer.
#
#   make            build embed.so (the loadable extension)
#   make demo       run examples/quickstart.sql in the sqlite3 shell
#   make test       install missing test dependencies, then run every suite
#   make bench      speed against a plain table (figures go in the README)
#   make install    install embed.so so that `.load embed` works anywhere
#   make libembed.a the static library for apps that ship SQLite
#   make clean

PREFIX     ?= /usr/local
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
CC         ?= cc
SQLITE3    ?= sqlite3
PYTHON     ?= /usr/bin/python3

WARN    = -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes
CFLAGS ?= -O2 -g
ALL_CFLAGS = -std=gnu11 -fPIC $(WARN) $(CFLAGS) -Iext
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
        test-unit test-python test-asan test-static format bench-knn \
        test-app node-deps test-newer-sqlite bench-files \
        test-oom test-ioerr test-defensive test-valgrind test-fuzz test-robust fuzz

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
	$(CC) -std=gnu11 -fPIC $(WARN) $(SAN_FLAGS) -Iext -shared -o $@ $(SRC) $(LDLIBS)

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

# Node: better-sqlite3@12 (v13 needs Node 22) in a git-ignored folder.
NPM ?= npm
NODE_PKG = $(BUILD)/node/node_modules/better-sqlite3/package.json
$(NODE_PKG):
	@mkdir -p $(BUILD)/node
	$(NPM) install --prefix $(BUILD)/node --no-audit --no-fund better-sqlite3@12

node-deps:
	@if command -v node >/dev/null 2>&1 && command -v $(NPM) >/dev/null 2>&1; then \
	  $(MAKE) --no-print-directory $(NODE_PKG) || \
	    echo "make test: better-sqlite3 not installed; tests/py/test_node.py will skip"; \
	else echo "make test: no node/npm; tests/py/test_node.py will skip"; fi

# The whole Python suite against the current SQLite release, built from the
# amalgamation inside better-sqlite3's npm package.
test-newer-sqlite: node-deps embed.so
	@sh tests/newer-sqlite.sh --python || { rc=$$?; [ $$rc -eq 77 ] && \
	  echo "make test: newer SQLite skipped (no better-sqlite3 package)" || exit $$rc; }

# Reliability (tests/robust/oom.c, tests/robust/ioerr.c, tests/robust/defensive.c, fuzz/): each
# prints its figure; `make fuzz` runs them longer.
ROBUST_LIBS = $(SQLITE_A) -lm -lpthread -ldl

$(BUILD)/oom: tests/robust/oom.c libembed.a
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 $(WARN) -O1 -g -Iext -o $@ tests/robust/oom.c libembed.a $(ROBUST_LIBS)

$(BUILD)/oom-asan: tests/robust/oom.c $(SRC) $(HDR)
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 $(WARN) $(SAN_FLAGS) -DSQLITE_CORE -Iext -o $@ tests/robust/oom.c $(SRC) $(ROBUST_LIBS)

$(BUILD)/ioerr: tests/robust/ioerr.c libembed.a
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 $(WARN) -O1 -g -Iext -o $@ tests/robust/ioerr.c libembed.a $(ROBUST_LIBS)

$(BUILD)/defensive: tests/robust/defensive.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 $(WARN) -O1 -g -o $@ tests/robust/defensive.c -lsqlite3

test-oom: $(BUILD)/oom
	$(BUILD)/oom
test-ioerr: $(BUILD)/ioerr
	$(BUILD)/ioerr
test-defensive: embed.so $(BUILD)/defensive
	$(BUILD)/defensive ./embed
test-valgrind: embed.so
	sh tests/robust/valgrind.sh ./embed
test-fuzz:
	SRC="$(SRC)" sh fuzz/run.sh 10
test-robust: test-oom test-ioerr test-defensive test-valgrind test-fuzz

fuzz: embed.so $(BUILD)/oom-asan $(BUILD)/ioerr
	ASAN_OPTIONS=detect_leaks=0 $(BUILD)/oom-asan --all
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

test-unit: $(BUILD)/unit
	$(BUILD)/unit

test-python: embed.so
	EMBED_EXT=$(CURDIR)/embed $(PYTHON) -m pytest -q tests

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

# What `make test` runs (make stops at the first failing one).
SUITES = unit static-app app sql python asan newer-sqlite oom ioerr \
         defensive valgrind fuzz

test: test-deps
	$(MAKE) embed.so
	$(MAKE) test-unit
	$(MAKE) test-static
	$(MAKE) test-app
	$(MAKE) test-sql
	$(MAKE) node-deps
	$(MAKE) test-python
	$(MAKE) test-asan
	$(MAKE) test-newer-sqlite
	$(MAKE) test-robust
	@echo "make test: every suite passed"
	@echo "suites: $(words $(SUITES)) passed, 0 failed"

bench: embed.so
	$(PYTHON) bench/bench.py
	$(PYTHON) bench/bench_knn.py
	$(PYTHON) bench/bench_train.py
	$(PYTHON) bench/bench_files.py

bench-files: embed.so
	$(PYTHON) bench/bench_files.py

bench-knn: embed.so
	$(PYTHON) bench/bench_knn.py

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

format:
	clang-format -i ext/*.c ext/*.h ext/*/*.c ext/*/*.h tests/*/*.c examples/*.c bench/*.c fuzz/*.c fuzz/*.h

clean:
	rm -rf $(BUILD) embed.so libembed.a
