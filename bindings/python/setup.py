"""Build of the sqlite-embed package: the C sources of embed (ext/, the
repository's, or a copy inside an sdist) compiled into one loadable SQLite
extension, sqlite_embed/embed.so, shipped inside the package.

It is not a Python extension module (no Python C API, no PyInit_), so the
file is named embed.so, whose name gives SQLite the entry point
sqlite3_embed_init, and a wheel is tagged py3-none-PLATFORM: one wheel
serves every Python 3 of a platform. Needs a C compiler and SQLite's
headers (sqlite3.h, sqlite3ext.h); without either the build stops with a
message that says which and how to install it.
"""
import copy
import glob
import os
import re
import shutil
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.sdist import sdist

HERE = os.path.dirname(os.path.abspath(__file__))
# an sdist carries ext/ beside this file; the repository has it two up
EXT_DIR = next((d for d in (os.path.join(HERE, "ext"),
                            os.path.normpath(os.path.join(HERE, "..", "..", "ext")))
                if os.path.isfile(os.path.join(d, "embed.c"))), None)
if EXT_DIR is None:
    sys.exit("sqlite-embed: the C sources (ext/embed.c) are missing: build from "
             "the repository's bindings/python or from an sdist")

# the layers in dependency order, as the Makefile lists them
LAYERS = ["core", "value", "table", "sql", "io"]
SOURCES = [f for layer in LAYERS
           for f in sorted(glob.glob(os.path.join(EXT_DIR, layer, "*.c")))]
SOURCES.append(os.path.join(EXT_DIR, "embed.c"))
# setup() takes paths relative to this file; build_extension makes them
# absolute again, so that the objects stay inside build/
SOURCES_REL = [os.path.relpath(f, HERE) for f in SOURCES]
HEADERS_REL = [os.path.relpath(f, HERE) for f in
               sorted(glob.glob(os.path.join(EXT_DIR, "*.h")) +
                      glob.glob(os.path.join(EXT_DIR, "*", "*.h")))]


def version():
    text = open(os.path.join(EXT_DIR, "embed.h")).read()
    return re.search(r'#define EMBED_VERSION "([^"]+)"', text).group(1)


def header_dirs(compiler):
    dirs = list(compiler.include_dirs) + [EXT_DIR, "/usr/include", "/usr/local/include"]
    for var in ("CPATH", "C_INCLUDE_PATH"):
        dirs += [d for d in os.environ.get(var, "").split(os.pathsep) if d]
    for flag in os.environ.get("CFLAGS", "").split():
        if flag.startswith("-I"):
            dirs.append(flag[2:])
    return dirs


class BuildLoadable(build_ext):
    """Compile and link the sources as a loadable extension, with clear
    errors when the compiler or SQLite's headers are missing."""

    def get_ext_filename(self, ext_name):
        return os.path.join(*ext_name.split(".")) + ".so"

    def get_export_symbols(self, ext):
        return []  # not a Python module: no PyInit_ to export

    def build_extension(self, ext):
        cc = self.compiler.compiler_so[0] if getattr(self.compiler, "compiler_so", None) else None
        if cc and not shutil.which(cc):
            raise SystemExit(
                f"sqlite-embed: no C compiler: '{cc}' is not on PATH. Installing "
                "compiles embed's C sources; install a compiler (Debian/Ubuntu: "
                "apt-get install gcc) or set CC")
        if not any(os.path.isfile(os.path.join(d, "sqlite3ext.h"))
                   for d in header_dirs(self.compiler)):
            raise SystemExit(
                "sqlite-embed: SQLite's headers sqlite3.h and sqlite3ext.h were not "
                "found. Install them (Debian/Ubuntu: apt-get install libsqlite3-dev; "
                "Fedora: sqlite-devel; macOS: brew install sqlite) or give their "
                "folder in CFLAGS=-I...")
        ext = copy.copy(ext)  # setup()'s own stays relative
        ext.sources = [os.path.normpath(os.path.join(HERE, f)) for f in ext.sources]
        ext.include_dirs = [os.path.normpath(os.path.join(HERE, d)) for d in ext.include_dirs]
        ext.depends = [os.path.normpath(os.path.join(HERE, d)) for d in ext.depends]
        super().build_extension(ext)


class SdistWithSources(sdist):
    """An sdist is self-contained: it carries a copy of ext/."""

    def make_release_tree(self, base_dir, files):
        super().make_release_tree(base_dir, files)
        target = os.path.join(base_dir, "ext")
        if not os.path.isdir(target):
            shutil.copytree(EXT_DIR, target,
                            ignore=shutil.ignore_patterns("*.o", "*.so", "*.a"))


commands = {"build_ext": BuildLoadable, "sdist": SdistWithSources}
try:
    from wheel.bdist_wheel import bdist_wheel

    class PlatformWheel(bdist_wheel):
        """py3-none-PLATFORM: the library does not use Python's C API."""

        def get_tag(self):
            _, _, plat = super().get_tag()
            return "py3", "none", plat

    commands["bdist_wheel"] = PlatformWheel
except ImportError:  # wheel is needed only to build wheels
    pass

setup(
    version=version(),
    packages=["sqlite_embed"],
    ext_modules=[Extension(
        "sqlite_embed.embed",
        sources=SOURCES_REL,
        depends=HEADERS_REL,  # a changed header rebuilds
        include_dirs=[os.path.relpath(EXT_DIR, HERE)],
        libraries=["m"],
        # after Python's own CFLAGS: C11 with GNU extensions, no debug info,
        # and sqlite3_embed_init the only exported symbol (ext/embed.c)
        extra_compile_args=["-std=gnu11", "-O2", "-g0", "-fvisibility=hidden"],
    )],
    cmdclass=commands,
)
