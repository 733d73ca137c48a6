"""The official downloads are zip archives holding one ``.pth``; this gets that file out, or says why not."""

from __future__ import annotations

import shutil
import zipfile
import zlib
from pathlib import Path

from surgvlp.errors import SurgVLPError

ZIP_MAGIC = b"PK\x03\x04"
SHOWN_MEMBERS = 5


def is_checkpoint_archive(path: Path) -> bool:
    """True for a zip to extract a checkpoint from, False for a checkpoint itself.

    ``torch.save`` also writes zip files; those hold a ``<name>/data.pkl`` and are checkpoints, not archives
    (a mirror may serve the bare ``.pth``). A file named ``.zip`` that is not a readable zip counts as an
    archive, so that the error speaks of a damaged archive rather than of a checkpoint.
    """
    path = Path(path)
    if not zipfile.is_zipfile(path):
        return path.suffix.lower() == ".zip"
    with zipfile.ZipFile(path) as archive:
        return not any(name.endswith("/data.pkl") for name in archive.namelist())


def _not_a_zip(archive: Path) -> str:
    with open(archive, "rb") as file:
        head = file.read(len(ZIP_MAGIC)).lstrip()
    if head.startswith(ZIP_MAGIC):
        return f"{archive} is a truncated or damaged zip archive; download or copy it again"
    if head.startswith(b"<"):
        return (
            f"{archive} is a web page, not a zip archive: the link may have expired or need a log-in; "
            "download the zip in a browser and use `surgvlp weights import`"
        )
    return f"{archive} is not a zip archive"


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:SHOWN_MEMBERS])
    return shown + (f" and {len(names) - SHOWN_MEMBERS} more" if len(names) > SHOWN_MEMBERS else "") if names else "nothing"


def extract_checkpoint(archive: Path, dest: Path) -> str:
    """Write the archive's only ``.pth`` member to ``dest`` and return the member's name.

    The CRC of the member is checked while it is read, so a damaged download fails here, not at load time.
    """
    archive = Path(archive)
    try:
        with zipfile.ZipFile(archive) as bundle:
            members = [
                info
                for info in bundle.infolist()
                if not info.is_dir() and info.filename.lower().endswith(".pth") and not info.filename.startswith("__MACOSX/")
            ]
            if not members:
                raise SurgVLPError(f"{archive} holds no .pth checkpoint (it contains {_listing(bundle.namelist())})")
            if len(members) > 1:
                raise SurgVLPError(
                    f"{archive} holds several checkpoints ({_listing([info.filename for info in members])}): extract "
                    "the one you want and run `surgvlp weights import FILE.pth --name NAME`"
                )
            with bundle.open(members[0]) as source, open(dest, "wb") as out:
                shutil.copyfileobj(source, out, 1 << 20)
            return members[0].filename
    except zipfile.BadZipFile as error:
        if not zipfile.is_zipfile(archive):
            raise SurgVLPError(_not_a_zip(archive)) from None
        raise SurgVLPError(f"{archive} is damaged ({error}); download or copy it again") from None
    except (EOFError, zlib.error) as error:
        raise SurgVLPError(f"{archive} is truncated or damaged ({error}); download or copy it again") from None
    except NotImplementedError as error:
        raise SurgVLPError(f"{archive} cannot be read here ({error}): extract the .pth with another tool and import it") from None
