"""Serve a folder of videos to 3D Slicer: weights checked (fetched when missing and the network allows), then the
stock ``monailabel start_server`` on 127.0.0.1 with this app, and the URL to give Slicer printed first.

    python monai_app/serve.py STUDIES [--port 8000] [--checkpoint peskavlp] [--allow-untrained]

Without the licensed weights and without network access it says what to do and stops, unless
``--allow-untrained`` asks for the random-weight model, whose every answer is then marked ``"untrained": true``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

APP = Path(__file__).resolve().parent
UNTRAINED = "untrained-tiny"


def _weights(checkpoint: str, allow_untrained: bool) -> str:
    """The checkpoint to serve: the one asked for, fetched if need be, else the untrained one if allowed."""
    from surgvlp.errors import SurgVLPError
    from surgvlp.weights import WeightStore, fetch
    from surgvlp.weights.variants import VARIANTS

    store = WeightStore()
    if checkpoint not in VARIANTS or store.intact_entry(checkpoint) is not None:
        return checkpoint
    try:
        print(f"fetching the {checkpoint} weights (licence CC BY-NC-SA 4.0) ...", flush=True)
        fetch(checkpoint, store=store)
        return checkpoint
    except SurgVLPError as error:
        if not allow_untrained:
            raise SystemExit(f"serve: the {checkpoint} weights are missing and could not be fetched ({error}).\n"
                             f"Copy the official zip here and run `surgvlp weights import FILE.zip`, or run with "
                             f"--allow-untrained to try the server with a random-weight model") from None
    if store.intact_entry(UNTRAINED) is None:
        store.init_untrained("tiny")
    print(f"serving the UNTRAINED model {UNTRAINED}: its answers say \"untrained\": true and mean nothing", flush=True)
    return UNTRAINED


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("studies", help="folder of videos (mp4, mkv, avi, mov, DICOM) or a DICOMweb URL")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--checkpoint", default="peskavlp", help="variant, checkpoint file or weights folder")
    parser.add_argument("--allow-untrained", action="store_true", help="serve a random-weight model if need be")
    args = parser.parse_args()
    if not args.studies.startswith(("http://", "https://")) and not Path(args.studies).is_dir():
        raise SystemExit(f"serve: {args.studies}: no such folder")
    checkpoint = _weights(args.checkpoint, args.allow_untrained)
    binaries = Path(sys.executable).parent
    command = [shutil.which("monailabel", path=str(binaries)) or "monailabel", "start_server", "--app", str(APP),
               "--studies", args.studies, "--host", "127.0.0.1", "--port", str(args.port),
               "--conf", "checkpoint", checkpoint]
    if checkpoint == UNTRAINED:
        command += ["--conf", "allow_untrained", "true"]
    print(f"\nIn 3D Slicer, SlicerSurgVLP module, connect to:  http://127.0.0.1:{args.port}\n", flush=True)
    environment = {**os.environ, "PATH": f"{binaries}{os.pathsep}{os.environ.get('PATH', '')}"}
    os.execvpe(command[0], command, environment)


if __name__ == "__main__":
    main()
