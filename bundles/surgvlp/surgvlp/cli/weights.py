"""``surgvlp weights fetch|import|list|verify|init-untrained|convert``: get the licensed weights (and the public SAM2
trackers) onto a machine and keep them honest."""

from __future__ import annotations

import argparse
from pathlib import Path

from surgvlp.cli import arguments
from surgvlp.errors import SurgVLPError
from surgvlp.weights.store import WEIGHTS_DIR_ENV, WeightEntry, WeightStore
from surgvlp.weights.variants import SAM2_MODELS, TEXT_MODEL_REPO, TEXT_MODEL_URL_ENV, VARIANTS

SHA256_SHOWN = 12


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "weights",
        help="fetch, import, list and verify the model weights",
        description="Manage the SurgVLP, HecVL and PeskaVLP weights (CC BY-NC-SA 4.0, fetched by each site, "
        "never redistributed), the Bio_ClinicalBERT text-model files and the SAM2.1 trackers of `surgvlp segment`.",
    )
    folder = argparse.ArgumentParser(add_help=False)
    folder.add_argument(
        "--dir",
        type=Path,
        default=None,
        help=f"weights folder (default: ${WEIGHTS_DIR_ENV}, else ~/.local/share/surgvlp/weights)",
    )
    actions = parser.add_subparsers(dest="weights_command", required=True, metavar="ACTION")

    fetch = actions.add_parser(
        "fetch", parents=[folder], help="download a model's official checkpoint and the text-model files, or a SAM2.1 tracker"
    )
    fetch.add_argument(
        "variant",
        choices=[*VARIANTS, *SAM2_MODELS],
        help="which model to download; sam2-tiny and sam2-small are the public SAM2.1 Hiera trackers (from the Hugging "
        "Face hub, facebook/sam2.1-hiera-tiny and -small) that `surgvlp segment --sam2` uses",
    )
    fetch.add_argument(
        "--url",
        help="download the zip from this mirror instead (default: $SURGVLP_<VARIANT>_URL, else the official link); "
        "for a SAM2 model the base URL of its folder (default: $SURGVLP_SAM2_TINY_URL or $SURGVLP_SAM2_SMALL_URL, else the hub)",
    )
    fetch.add_argument(
        "--text-model-url",
        help=f"base URL of the {TEXT_MODEL_REPO} files (default: ${TEXT_MODEL_URL_ENV}, else the Hugging Face hub)",
    )
    fetch.add_argument("--force", action="store_true", help="download again even files that are present and intact")
    fetch.add_argument("--timeout", type=arguments.number(above=0, maximum=3600), default=60.0, help="seconds to wait for the server (default: 60)")
    fetch.set_defaults(handler=_fetch)

    imports = actions.add_parser(
        "import", parents=[folder], help="install a checkpoint or text-model folder copied in by hand"
    )
    what = imports.add_mutually_exclusive_group(required=True)
    what.add_argument("path", nargs="?", type=Path, help="the .pth checkpoint, or the official .zip holding it")
    what.add_argument("--text-model", type=Path, metavar="DIR", help="a Bio_ClinicalBERT folder (config.json, vocab.txt)")
    what.add_argument("--sam2", type=Path, metavar="DIR", help="a SAM2 folder in the transformers layout (config.json, model.safetensors)")
    imports.add_argument(
        "--name",
        help=f"name to record the checkpoint or SAM2 folder under (default: guessed from its name: {', '.join(VARIANTS)}; "
        f"{', '.join(SAM2_MODELS)})",
    )
    imports.set_defaults(handler=_import)

    listing = actions.add_parser("list", parents=[folder], help="show the recorded weights and where they came from")
    listing.set_defaults(handler=_list)

    verify = actions.add_parser(
        "verify",
        parents=[folder],
        help="check every recorded file (checkpoints and text-model files) against its SHA-256, and that no text-model file is unrecorded",
    )
    verify.set_defaults(handler=_verify)

    untrained = actions.add_parser(
        "init-untrained",
        parents=[folder],
        help="write a random-weight model in the official layout, for demos and tests (outputs say untrained)",
    )
    untrained.add_argument("--size", choices=("tiny", "full"), default="tiny", help="tiny: small BERT, loads instantly; full: Bio_ClinicalBERT's shape, for speed figures (default: tiny)")
    untrained.add_argument("--seed", type=arguments.seed, default=0, help="random seed (default: 0)")
    untrained.set_defaults(handler=_init_untrained)

    convert = actions.add_parser(
        "convert",
        parents=[folder],
        help="install a checkpoint as the MONAI bundle's models/model.pt, the state_dict of its network_def",
        description="Check that a checkpoint loads strictly, add the class embeddings of a phase prompt set as the "
        "network's head, and write the result as BUNDLE/models/model.pt with the text model it needs, recorded in that "
        "folder's manifest (untrained exactly when the source is); BUNDLE/configs/metadata.json then names those classes.",
    )
    convert.add_argument("source", help="a name recorded in the weights folder (e.g. peskavlp), a .pth checkpoint or the official .zip")
    convert.add_argument(
        "--bundle", type=Path, help="bundle folder to install into (default: $SURGVLP_BUNDLE_DIR, else ~/.local/share/surgvlp/bundle)"
    )
    convert.add_argument(
        "--prompt-set",
        default="cholec80",
        help="phase prompt set whose class embeddings become the network's head; the bundle's metadata is rewritten "
        "to name its classes as the output channels (default: %(default)s)",
    )
    convert.set_defaults(handler=_convert)


def _size(size: int) -> str:
    for unit in ("B", "KiB", "MiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.2f} GiB"


def _describe(entry: WeightEntry) -> str:
    return f"{entry.name}: {entry.path} (SHA-256 {entry.sha256[:SHA256_SHOWN]}, {_size(entry.size)})"


def _how_to_run_untrained(name: str) -> str:
    return f"run it with --checkpoint {name} --allow-untrained; every output will say untrained: true"


def _fetch(args: argparse.Namespace) -> None:
    from surgvlp.weights.fetch import fetch, fetch_sam2

    store = WeightStore(args.dir)
    if args.variant in SAM2_MODELS:
        if args.text_model_url is not None:
            raise SurgVLPError("--text-model-url applies to the SurgVLP variants; a SAM2 model has no text model")
        for entry in fetch_sam2(args.variant, args.url, store=store, force=args.force, timeout=args.timeout):
            print(_describe(entry))
        print(f"SAM2 folder: {store.sam2_folder(args.variant).folder} (use it with `surgvlp segment --sam2 {args.variant}`)")
        return
    entry = fetch(args.variant, args.url, args.text_model_url, store=store, force=args.force, timeout=args.timeout)
    print(_describe(entry))
    print(f"text model: {store.text_model_dir()}")


def _import(args: argparse.Namespace) -> None:
    store = WeightStore(args.dir)
    if args.text_model is not None:
        if args.name is not None:
            raise SurgVLPError("--name names a checkpoint or a SAM2 folder; it does not apply to --text-model")
        store.import_text_model(args.text_model)
        print(f"text model: {store.text_model_dir()}")
    elif args.sam2 is not None:
        entries = store.import_sam2(args.sam2, args.name)
        for entry in entries:
            print(_describe(entry))
        name = entries[0].name.split("/")[0]
        print(f"SAM2 folder: {store.sam2_folder(name).folder} (use it with `surgvlp segment --sam2 {name}`)")
    else:
        entry = store.import_checkpoint(args.path, args.name)
        print(_describe(entry))
        if entry.untrained:
            print(f"untrained (random) weights: {_how_to_run_untrained(entry.name)}")


def _list(args: argparse.Namespace) -> None:
    store = WeightStore(args.dir)
    entries = store.entries()
    print(f"weights folder: {store.root}")
    if not entries:
        print(f"no weights recorded; run {store.command('fetch peskavlp')} or {store.command('import PATH')}")
        return
    rows = [("NAME", "SHA-256", "SIZE", "UNTRAINED", "SOURCE")]
    rows += [
        (entry.name, entry.sha256[:SHA256_SHOWN], _size(entry.size), "yes" if entry.untrained else "no", entry.source)
        for entry in entries
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)), row[-1], sep="  ")


def _init_untrained(args: argparse.Namespace) -> None:
    entry = WeightStore(args.dir).init_untrained(args.size, args.seed)
    print(_describe(entry))
    print(_how_to_run_untrained(entry.name))


def _verify(args: argparse.Namespace) -> int:
    store = WeightStore(args.dir)
    results = store.verify()
    if not results:
        print(f"no weights recorded in {store.root}")
    for entry, ok, message in results:
        print(f"ok      {entry.name}" if ok else f"FAILED  {entry.name}: {message}")
    return 0 if all(ok for _, ok, _ in results) else 1


def _convert(args: argparse.Namespace) -> None:
    from surgvlp.bundle.convert import convert_checkpoint

    converted = convert_checkpoint(args.source, args.bundle, args.prompt_set, WeightStore(args.dir))
    print(_describe(converted.checkpoint))
    print(f"text model: {converted.text_model_dir}")
    print(_describe(converted.prompt_set))
    print(f"output channels: {', '.join(converted.classes)} (configs/metadata.json updated)")
    if converted.checkpoint.untrained:
        print("untrained weights: the bundle runs them only with --allow_untrained true, and every output says untrained")
