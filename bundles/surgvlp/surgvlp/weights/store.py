"""The weights folder: which files are there, where they came from, and whether they are still intact.

No checksums are published for the official checkpoints, so the SHA-256 of each file is recorded in
``manifest.json`` when it arrives and checked every time the file is used. A clinician's result is then
always traceable to the exact weights that produced it, and a damaged or swapped file is caught before it
silently changes what the model says.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

from surgvlp.errors import SurgVLPError
from surgvlp.folders import WEIGHTS_DIR_ENV, default_weights_dir
from surgvlp.weights.archive import extract_checkpoint, is_checkpoint_archive
from surgvlp.atomic import UnwritableOutput, atomic_path
from surgvlp.weights.sam2_files import check_sam2_file, is_untrained_sam2, require_sam2_folder
from surgvlp.weights.variants import (
    DEFAULT_TOKENIZER_CONFIG,
    REQUIRED_TEXT_MODEL_FILES,
    SAM2_FILES,
    SAM2_MODELS,
    TEXT_MODEL_DIRNAME,
    TEXT_MODEL_FILES,
    TEXT_MODEL_REPO,
    TOKENIZER_CONFIG,
    VARIANTS,
    checkpoint_url,
    sam2_url,
    text_model_url,
)

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1
HASH_CHUNK_BYTES = 1 << 20
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_.-]*")
VOCAB_MARKERS = frozenset({"[CLS]", "[SEP]", "[UNK]"})
IMPORT_PREFIX = "import:"
GENERATED_SOURCE = "generated"
CHECKPOINT_TEXT_MODEL_DIRNAME = "text_model"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def text_model_entry_name(filename: str) -> str:
    return f"{TEXT_MODEL_DIRNAME}/{filename}"


def own_text_model_entry_name(checkpoint_name: str, filename: str) -> str:
    """The entry of a file in the ``text_model/`` folder beside a checkpoint, e.g. ``untrained-tiny/text_model/vocab.txt``."""
    return f"{checkpoint_name}/{CHECKPOINT_TEXT_MODEL_DIRNAME}/{filename}"


def _is_text_model_entry(entry: WeightEntry) -> bool:
    return entry.name.startswith(f"{TEXT_MODEL_DIRNAME}/")


def sam2_entry_name(model: str, filename: str) -> str:
    return f"{model}/{filename}"


def _sam2_model_of(entry: WeightEntry) -> str | None:
    """The SAM2 model an entry belongs to (``sam2-tiny/model.safetensors`` -> ``sam2-tiny``), else None."""
    parts = entry.name.split("/")
    if len(parts) == 2 and parts[1] in SAM2_FILES and parts[0] != TEXT_MODEL_DIRNAME:
        return parts[0]
    return None


@dataclass(frozen=True)
class WeightEntry:
    """A weights file and its provenance; ``recorded_at`` is None for a file the manifest does not know."""

    name: str
    path: Path
    sha256: str
    size: int
    source: str
    untrained: bool = False
    recorded_at: str | None = None


@dataclass(frozen=True)
class Sam2Folder:
    """A SAM2 folder ready to load: its name, where it is, the SHA-256 of its weights and whether they are random."""

    name: str
    folder: Path
    sha256: str
    untrained: bool


class WeightStore:
    """A weights folder and its manifest (``root/manifest.json``); ``root`` defaults to ``default_weights_dir()``."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = (default_weights_dir() if root is None else Path(root).expanduser()).resolve()
        self.manifest_path = self.root / MANIFEST_NAME

    # -- the manifest ---------------------------------------------------------------------------------

    def _read(self) -> dict[str, WeightEntry]:
        if not self.manifest_path.is_file():
            return {}
        try:
            data = json.loads(self.manifest_path.read_text(encoding="utf-8"))
            entries = {}
            for name, fields in data["entries"].items():
                fields = dict(fields)
                entries[name] = WeightEntry(path=self.root / fields.pop("file"), **fields)
            return entries
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as error:
            raise SurgVLPError(
                f"weights manifest {self.manifest_path} is unreadable ({type(error).__name__}: {error}); "
                "restore it, or delete it and fetch or import the weights again"
            ) from None

    def _write(self, entries: dict[str, WeightEntry]) -> None:
        records = {}
        for name, entry in sorted(entries.items()):
            inside = entry.path.is_relative_to(self.root)
            fields = asdict(entry)
            del fields["path"]
            records[name] = {**fields, "file": entry.path.relative_to(self.root).as_posix() if inside else str(entry.path)}
        text = json.dumps({"format": MANIFEST_FORMAT, "entries": records}, indent=2) + "\n"
        with self._writing(), atomic_path(self.manifest_path) as staged:
            staged.write_text(text, encoding="utf-8")

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """Turn a read-only or full weights folder into the one-line error that says how to pick another."""
        try:
            yield
        except UnwritableOutput as error:
            raise SurgVLPError(f"{error}; pass --dir or set {WEIGHTS_DIR_ENV} to a writable folder") from None

    def record(self, name: str, path: Path, *, source: str, untrained: bool = False) -> WeightEntry:
        """Add or replace the manifest entry ``name`` for ``path``, hashing the file as it is now."""
        entry = _hashed_entry(name, path, source, untrained)
        entries = self._read()
        entries[name] = entry
        self._write(entries)
        return entry

    def record_own_text_model(self, checkpoint: WeightEntry) -> list[WeightEntry]:
        """Record every file of the ``text_model/`` folder beside ``checkpoint`` (see ``text_model_dir_for``).

        A test model's vocabulary and BERT shape are part of it, so they are hashed like the checkpoint and
        checked on every load and by ``verify``. Entries of files no longer there are dropped, so this also
        forgets the folder once it is gone.
        """
        prefix = own_text_model_entry_name(checkpoint.name, "")
        folder = checkpoint.path.parent / CHECKPOINT_TEXT_MODEL_DIRNAME
        files = sorted(path for path in folder.iterdir() if path.is_file()) if folder.is_dir() else []
        own = [_hashed_entry(prefix + path.name, path, checkpoint.source, checkpoint.untrained) for path in files]
        entries = {name: entry for name, entry in self._read().items() if not name.startswith(prefix)}
        self._write(entries | {entry.name: entry for entry in own})
        return own

    def entries(self) -> list[WeightEntry]:
        return [entry for _, entry in sorted(self._read().items())]

    # -- checking ------------------------------------------------------------------------------------

    def command(self, arguments: str) -> str:
        """The `surgvlp weights ...` command line that acts on this folder, quoted for an error message."""
        if self.root != default_weights_dir().resolve():
            arguments += f" --dir {shlex.quote(str(self.root))}"
        return f"`surgvlp weights {arguments}`"

    def _text_model_fetch_command(self, options: str = "") -> str:
        """Fetching any variant also fetches the text model, and skips a checkpoint that is already intact."""
        recorded = [entry.name for entry in self.entries() if entry.name in VARIANTS]
        return self.command(f"fetch {recorded[0] if recorded else 'peskavlp'}{options}")

    def _repair(self, entry: WeightEntry) -> str:
        """How to get an intact copy of ``entry`` back, as a command where there is one."""
        sam2 = _sam2_model_of(entry)
        if entry.source.startswith(IMPORT_PREFIX):
            original = Path(entry.source.removeprefix(IMPORT_PREFIX))
            if _is_text_model_entry(entry):
                return f"import it again with {self.command(f'import --text-model {shlex.quote(str(original.parent))}')}"
            if sam2 is not None:
                return f"import it again with {self.command(f'import --sam2 {shlex.quote(str(original.parent))} --name {sam2}')}"
            return f"import it again with {self.command(f'import {shlex.quote(str(original))} --name {entry.name}')}"
        if sam2 in SAM2_MODELS:
            base = entry.source.rsplit("/", 1)[0]
            mirror = f" --url {shlex.quote(base)}" if base != sam2_url(SAM2_MODELS[sam2]) else ""
            return f"fetch it again with {self.command(f'fetch {sam2}{mirror}')}"
        if entry.untrained:
            return "it is an untrained test model: write it again"
        if _is_text_model_entry(entry):
            base = entry.source.rsplit("/", 1)[0]
            mirror = f" --text-model-url {shlex.quote(base)}" if "://" in base and base != text_model_url() else ""
            return f"fetch it again with {self._text_model_fetch_command(mirror)}"
        if entry.name in VARIANTS:
            official = checkpoint_url(VARIANTS[entry.name])
            mirror = f" --url {shlex.quote(entry.source)}" if entry.source != official else ""
            return f"download it again with {self.command(f'fetch {entry.name}{mirror}')}"
        return f"replace it from {entry.source}"

    def _problem(self, entry: WeightEntry) -> str | None:
        """Why ``entry``'s file cannot be trusted (missing, or not the recorded bytes), or None if it is intact."""
        if not entry.path.is_file():
            return f"{entry.path} ({entry.name}) is missing; {self._repair(entry)}"
        actual = sha256_file(entry.path)
        if actual != entry.sha256:
            return (
                f"{entry.path} is not the {entry.name} file that was recorded (SHA-256 expected {entry.sha256}, "
                f"found {actual}): it was changed or damaged; {self._repair(entry)}"
            )
        return None

    def _require_intact(self, entry: WeightEntry) -> WeightEntry:
        problem = self._problem(entry)
        if problem:
            raise SurgVLPError(problem)
        return entry

    def init_untrained(self, size: str = "tiny", seed: int = 0) -> WeightEntry:
        """Write a random-weight model in the official layout as ``untrained-<size>``, recorded as untrained (it
        then runs only where untrained models are explicitly allowed, and every output says so)."""
        from surgvlp.network.untrained import write_untrained_model  # torch: only when a model is written

        name = f"untrained-{size}"
        files = write_untrained_model(self.root / name, size=size, seed=seed)
        entry = self.record(name, files.checkpoint, source=GENERATED_SOURCE, untrained=True)
        self.record_own_text_model(entry)
        return entry

    def intact_entry(self, name: str) -> WeightEntry | None:
        """The entry ``name`` if it is recorded and its file still matches, else None."""
        entry = self._read().get(name)
        return entry if entry is not None and self._problem(entry) is None else None

    def verify(self) -> list[tuple[WeightEntry, bool, str]]:
        """Every recorded file with whether it is intact and, if not, what is wrong and how to repair it.

        A file in a text-model folder that loading reads but the manifest does not know (copied in by hand)
        fails too: nothing vouches for it, and it changes what the prompts mean.
        """
        entries = self.entries()
        results = []
        for entry in entries:
            problem = self._problem(entry)
            results.append((entry, problem is None, problem or "ok"))
        recorded = {entry.path for entry in entries}
        for folder, repair in self._text_model_folders(entries).items():
            for path in sorted(folder.iterdir()):
                if path.is_file() and path.resolve() not in recorded:
                    name = path.relative_to(self.root).as_posix() if path.is_relative_to(self.root) else str(path)
                    entry = _hashed_entry(name, path, "unrecorded", False)
                    results.append((entry, False, f"{path} is not recorded in the manifest, so it cannot be verified; {repair}"))
        return results

    def _text_model_folders(self, entries: list[WeightEntry]) -> dict[Path, str]:
        """The text-model folders that loading from this weights folder reads, with how to record each one."""
        folders = {}
        shared = self.root / TEXT_MODEL_DIRNAME
        if shared.is_dir():
            folders[shared] = f"import the folder with {self.command(f'import --text-model {shlex.quote(str(shared))}')}"
        for entry in entries:
            own = entry.path.parent / CHECKPOINT_TEXT_MODEL_DIRNAME
            if own.is_dir() and own not in folders:
                folders[own] = f"it belongs to {entry.name}: {self._repair(entry)}"
        return folders

    # -- lookup --------------------------------------------------------------------------------------

    def resolve(self, name_or_path: str | Path) -> WeightEntry:
        """A recorded name (its file re-verified) or a checkpoint path (matched to an entry by content).

        Matching paths by content means a copy of a recorded file keeps its provenance. A file no entry
        matches is untrained when it carries the mark that ``surgvlp.network.untrained`` writes into it, so
        a random-weight file is known for what it is in any weights folder.
        """
        entries = self._read()
        key = name_or_path if name_or_path in entries else str(name_or_path).lower()
        if isinstance(name_or_path, str) and key in entries:
            return self._require_intact(entries[key])
        path = Path(name_or_path).expanduser()
        if not path.is_file():
            if str(name_or_path).lower() in VARIANTS:
                variant = VARIANTS[str(name_or_path).lower()]
                raise SurgVLPError(
                    f"no {variant.display_name} weights in {self.root}: run {self.command(f'fetch {variant.name}')}, "
                    f"or {self.command('import PATH')} for a copy you already have"
                )
            recorded = ", ".join(entries) or "none"
            raise SurgVLPError(
                f"checkpoint {name_or_path} is neither a file nor a recorded name (recorded in {self.root}: {recorded}); "
                f"give a .pth path or one of {', '.join(VARIANTS)}"
            )
        digest = sha256_file(path)
        for entry in entries.values():
            if entry.sha256 == digest:
                return replace(entry, path=path.resolve())
        from surgvlp.network.checkpoint import file_is_marked_untrained

        return WeightEntry(
            name=path.stem,
            path=path.resolve(),
            sha256=digest,
            size=path.stat().st_size,
            source=f"file:{path.resolve()}",
            untrained=file_is_marked_untrained(path),
        )

    def text_model_dir(self) -> Path:
        """The Bio_ClinicalBERT folder (config and vocabulary), checked against the manifest where recorded."""
        folder = self.root / TEXT_MODEL_DIRNAME
        missing = [name for name in REQUIRED_TEXT_MODEL_FILES if not (folder / name).is_file()]
        if missing:
            raise SurgVLPError(
                f"the text model {TEXT_MODEL_REPO} is not in {folder} (no {', '.join(missing)}): run "
                f"{self._text_model_fetch_command()}, or {self.command('import --text-model DIR')} for a copy you already have"
            )
        for entry in self.entries():
            if _is_text_model_entry(entry):
                self._require_intact(entry)
        return folder

    def text_model_dir_for(self, entry: WeightEntry) -> Path:
        """The text-model folder that goes with ``entry``'s checkpoint.

        A checkpoint with a ``text_model/`` folder beside it (the layout ``surgvlp.network.untrained`` writes) uses
        that folder, because a test model's vocabulary and BERT size are its own; every other checkpoint
        uses this weights folder's Bio_ClinicalBERT. Files of that folder recorded in the manifest (see
        ``record_own_text_model``) are checked.
        """
        return self.text_model_dir_in(entry.path.parent)

    def text_model_dir_in(self, folder: Path) -> Path:
        """The text model for the checkpoints in ``folder``: its ``text_model/`` if it has one, else Bio_ClinicalBERT.

        Files of that ``text_model/`` recorded in the manifest (see ``record_own_text_model``) are checked.
        """
        beside = Path(folder).resolve() / CHECKPOINT_TEXT_MODEL_DIRNAME
        if not beside.is_dir():
            return self.text_model_dir()
        for recorded in self.entries():
            if recorded.path.parent == beside:
                self._require_intact(recorded)
        return beside

    def sam2_folder(self, name: str) -> Sam2Folder:
        """The recorded SAM2 model ``name`` (e.g. ``sam2-tiny``), every file re-verified against its SHA-256."""
        recorded = {entry.name.split("/")[1]: entry for entry in self.entries() if _sam2_model_of(entry) == name}
        missing = [filename for filename in SAM2_FILES if filename not in recorded]
        if missing:
            fetch = f"run {self.command(f'fetch {name}')}, or " if name in SAM2_MODELS else ""
            raise SurgVLPError(
                f"no SAM2 model {name} in {self.root} (no {', '.join(missing)} recorded): "
                f"{fetch}{self.command('import --sam2 DIR --name ' + name)} for a copied folder"
            )
        for entry in recorded.values():
            self._require_intact(entry)
        weights = recorded["model.safetensors"]
        return Sam2Folder(name, weights.path.parent, weights.sha256, weights.untrained)

    def sam2_names(self) -> set[str]:
        """The SAM2 models with files recorded here (their files not checked)."""
        return {_sam2_model_of(entry) for entry in self.entries()} - {None}

    def resolve_sam2(self, name_or_folder: str | Path) -> Sam2Folder:
        """A recorded SAM2 name, or a folder holding ``config.json`` and ``model.safetensors``.

        A folder recorded here is verified like its name; another folder is hashed, and keeps the provenance of
        a recorded model whose weights it holds.
        """
        folder = Path(name_or_folder).expanduser()
        name = str(name_or_folder).lower()
        if not folder.exists() and (name in self.sam2_names() or name in SAM2_MODELS):
            return self.sam2_folder(name)
        require_sam2_folder(folder)
        entries = [entry for entry in self.entries() if _sam2_model_of(entry) is not None]
        folder = folder.resolve()
        for entry in entries:
            if entry.path.parent == folder:
                return self.sam2_folder(_sam2_model_of(entry))
        weights = folder / "model.safetensors"
        digest = sha256_file(weights)
        for entry in entries:
            if entry.sha256 == digest:
                return Sam2Folder(_sam2_model_of(entry), folder, digest, entry.untrained)
        return Sam2Folder(folder.name, folder, digest, is_untrained_sam2(weights))

    # -- adding files --------------------------------------------------------------------------------

    def install_checkpoint(self, name: str, path: Path, *, source: str) -> WeightEntry:
        """Put the checkpoint ``path`` (or the one inside the zip ``path``) in the folder as ``<name>.pth``.

        The file is checked to be an official-layout state_dict before it replaces anything, so a wrong or
        damaged file never displaces a good one. It is recorded as untrained when it carries the untrained mark.
        """
        from surgvlp.network.checkpoint import is_marked_untrained, read_state_dict

        path = Path(path)
        dest = self.root / f"{name}.pth"
        with self._writing(), atomic_path(dest) as staged:
            if is_checkpoint_archive(path):
                member = extract_checkpoint(path, staged)
                try:
                    untrained = is_marked_untrained(read_state_dict(staged))
                except SurgVLPError as error:
                    # Name the member of the user's archive, not the temporary file it was extracted to.
                    raise SurgVLPError(str(error).replace(str(staged), f"{member} (in {path})")) from None
            else:
                untrained = is_marked_untrained(read_state_dict(path))
                shutil.copyfile(path, staged)
        return self.record(name, dest, source=source, untrained=untrained)

    def import_checkpoint(self, path: Path, name: str | None = None) -> WeightEntry:
        """Install a checkpoint copied in by hand; the name is guessed from the file name unless given."""
        path = Path(path).expanduser()
        if not path.is_file():
            raise SurgVLPError(f"{path} does not exist or is not a file; give the .pth checkpoint or the official .zip")
        name = (name or _guess_variant(path)).lower()
        if not NAME_PATTERN.fullmatch(name):
            raise SurgVLPError(f"weights name {name!r} is not usable as a file name; use letters, digits, '.', '_' and '-'")
        return self.install_checkpoint(name, path, source=f"{IMPORT_PREFIX}{path.resolve()}")

    def add_text_model_file(self, filename: str, path: Path, *, source: str) -> WeightEntry:
        """Check a Bio_ClinicalBERT file, copy it into the text-model folder and record it."""
        _check_text_model_file(filename, Path(path), source.removeprefix(IMPORT_PREFIX))
        dest = self.root / TEXT_MODEL_DIRNAME / filename
        with self._writing(), atomic_path(dest) as staged:
            shutil.copyfile(path, staged)
        return self.record(text_model_entry_name(filename), dest, source=source)

    def add_default_tokenizer_config(self) -> WeightEntry:
        """Write the tokenizer configuration that the hub folder leaves implicit (see ``variants``)."""
        dest = self.root / TEXT_MODEL_DIRNAME / TOKENIZER_CONFIG
        with self._writing(), atomic_path(dest) as staged:
            staged.write_text(json.dumps(DEFAULT_TOKENIZER_CONFIG, indent=2) + "\n", encoding="utf-8")
        return self.record(text_model_entry_name(TOKENIZER_CONFIG), dest, source=GENERATED_SOURCE)

    def import_text_model(self, directory: Path) -> list[WeightEntry]:
        """Install a Bio_ClinicalBERT folder copied in by hand (its config, vocabulary and tokenizer files)."""
        directory = Path(directory).expanduser()
        if not directory.is_dir():
            raise SurgVLPError(f"{directory} is not a folder; give the folder holding Bio_ClinicalBERT's config.json and vocab.txt")
        missing = [name for name in REQUIRED_TEXT_MODEL_FILES if not (directory / name).is_file()]
        if missing:
            raise SurgVLPError(f"{directory} is not a Bio_ClinicalBERT folder: it has no {', '.join(missing)}")
        present = [name for name in TEXT_MODEL_FILES if (directory / name).is_file()]
        for name in present:  # check everything before copying anything
            _check_text_model_file(name, directory / name, str(directory / name))
        entries = [
            self.add_text_model_file(name, directory / name, source=f"{IMPORT_PREFIX}{(directory / name).resolve()}")
            for name in present
        ]
        if TOKENIZER_CONFIG not in present:
            entries.append(self.add_default_tokenizer_config())
        return entries


    def install_sam2_file(self, model: str, filename: str, path: Path, *, source: str, move: bool = False) -> WeightEntry:
        """Check a SAM2 file and put it in ``<root>/<model>/``, moved (a download) or copied, then record it."""
        path = Path(path)
        check_sam2_file(filename, path, source.removeprefix(IMPORT_PREFIX))
        dest = self.root / model / filename
        with self._writing(), atomic_path(dest) as staged:
            if move:
                path.replace(staged)
            else:
                shutil.copyfile(path, staged)
        untrained = filename == "model.safetensors" and is_untrained_sam2(dest)
        return self.record(sam2_entry_name(model, filename), dest, source=source, untrained=untrained)

    def import_sam2(self, directory: Path, name: str | None = None) -> list[WeightEntry]:
        """Install a SAM2 folder copied in by hand; the name is guessed from the folder's name unless given."""
        directory = Path(directory).expanduser()
        require_sam2_folder(directory)
        name = (name or _guess_sam2_name(directory)).lower()
        if not NAME_PATTERN.fullmatch(name) or name in VARIANTS or name == TEXT_MODEL_DIRNAME.lower():
            raise SurgVLPError(f"SAM2 name {name!r} is not usable; use letters, digits, '.', '_' and '-', and no model variant's name")
        for filename in SAM2_FILES:  # check everything before copying anything
            check_sam2_file(filename, directory / filename, str(directory / filename))
        return [
            self.install_sam2_file(name, filename, directory / filename, source=f"{IMPORT_PREFIX}{(directory / filename).resolve()}")
            for filename in SAM2_FILES
        ]


def _guess_sam2_name(directory: Path) -> str:
    found = [name for name in SAM2_MODELS if name.removeprefix("sam2-") in directory.resolve().name.lower()]
    if len(found) != 1:
        raise SurgVLPError(
            f"cannot tell from the folder name {directory.name!r} which SAM2 model it holds; add --name "
            f"({', '.join(SAM2_MODELS)} or a name of your own)"
        )
    return found[0]


def _hashed_entry(name: str, path: Path, source: str, untrained: bool) -> WeightEntry:
    path = Path(path).resolve()
    return WeightEntry(
        name=name,
        path=path,
        sha256=sha256_file(path),
        size=path.stat().st_size,
        source=source,
        untrained=untrained,
        recorded_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )


def _guess_variant(path: Path) -> str:
    found = [name for name in VARIANTS if name in path.name.lower()]
    if len(found) != 1:
        raise SurgVLPError(
            f"cannot tell from the name {path.name!r} which model it holds; add --name with one of {', '.join(VARIANTS)}"
        )
    return found[0]


def _check_text_model_file(filename: str, path: Path, origin: str) -> None:
    """Catch a web page or a wrong file before it stands in for Bio_ClinicalBERT's configuration or vocabulary."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise SurgVLPError(f"{filename} from {origin} is not readable text ({error})") from None
    if filename.endswith(".json"):
        try:
            valid = isinstance(json.loads(text), dict)
        except ValueError:
            valid = False
        if not valid:
            raise SurgVLPError(f"{filename} from {origin} is not a JSON object; is it the Bio_ClinicalBERT file?")
    elif not VOCAB_MARKERS <= set(text.splitlines()):
        raise SurgVLPError(
            f"{filename} from {origin} is not a BERT vocabulary (no {', '.join(sorted(VOCAB_MARKERS))} lines)"
        )
