#!/bin/sh
# Installs what the test suites need when it is missing, and says so.
# Debian's python3 (/usr/bin/python3) is used: its sqlite3 module can load
# extensions, and Debian's python3-torch is the numeric reference.
set -e
PY=/usr/bin/python3
need=""
command -v sqlite3 >/dev/null 2>&1 || need="$need sqlite3"
[ -f /usr/include/sqlite3.h ] || need="$need libsqlite3-dev"
command -v valgrind >/dev/null 2>&1 || need="$need valgrind"
command -v clang >/dev/null 2>&1 || need="$need clang"
command -v clang-format >/dev/null 2>&1 || need="$need clang-format"
[ -x "$PY" ] || need="$need python3"
# test-dqlite: dqlite-demo and the dqlite shell (go-dqlite 1.11, libdqlite 1.11)
command -v dqlite-demo >/dev/null 2>&1 || need="$need go-dqlite"
if [ -x "$PY" ]; then
  "$PY" -c "import torch" 2>/dev/null || need="$need python3-torch"
  "$PY" -c "import numpy" 2>/dev/null || need="$need python3-numpy"
  "$PY" -c "import pytest" 2>/dev/null || need="$need python3-pytest"
  "$PY" -c "import gensim" 2>/dev/null || need="$need python3-gensim"
  # test-pip: Debian's build tools (offline builds), venv and APSW
  "$PY" -c "import setuptools" 2>/dev/null || need="$need python3-setuptools"
  "$PY" -c "import wheel" 2>/dev/null || need="$need python3-wheel"
  "$PY" -c "import ensurepip" 2>/dev/null || need="$need python3-venv"
  "$PY" -m pip --version >/dev/null 2>&1 || need="$need python3-pip"
  "$PY" -c "import apsw" 2>/dev/null || need="$need python3-apsw"
else
  need="$need python3-torch python3-numpy python3-pytest python3-gensim"
  need="$need python3-setuptools python3-wheel python3-venv python3-pip python3-apsw"
fi
if [ -n "$need" ]; then
  echo "make test: installing missing packages:$need"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q $need
else
  echo "make test: all test dependencies present (sqlite3, valgrind, clang, clang-format, python3-torch, numpy, pytest, gensim, setuptools, wheel, venv, pip, apsw, go-dqlite)"
fi
# test-litestream: Litestream 0.3.13, the static binary of an npm package,
# into build/litestream (x86_64 Linux only; the suite skips without it)
LITESTREAM=build/litestream/node_modules/@flydotio/litestream-linux-x64/litestream
if [ ! -x "$LITESTREAM" ] && [ "$(uname -sm)" = "Linux x86_64" ]; then
  if command -v npm >/dev/null 2>&1; then
    echo "make test: installing @flydotio/litestream-linux-x64@1.0.1 (Litestream 0.3.13) into build/litestream with npm"
    mkdir -p build/litestream
    npm install --prefix build/litestream --no-audit --no-fund --silent \
      @flydotio/litestream-linux-x64@1.0.1 ||
      echo "make test: Litestream not installed; test-litestream will skip"
  else
    echo "make test: no npm; test-litestream will skip"
  fi
fi
