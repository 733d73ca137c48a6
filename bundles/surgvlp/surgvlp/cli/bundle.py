"""``surgvlp bundle verify``: the model zoo's checks of the MONAI bundle, offline."""

from __future__ import annotations

import argparse
from pathlib import Path

from surgvlp.cli.options import add_allow_untrained_option
from surgvlp.cli.preflight import bundle_folder, require_inputs


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bundle",
        help="check the MONAI bundle (metadata, weights, network input and output) without internet access",
        description="Checks the MONAI bundle as the model zoo does, without downloading a schema: the metadata "
        "fields and types, the version in the changelog, the recorded hashes of the weights, and the network's "
        "input and output shapes (MONAI's verify_net_in_out on network_def).",
    )
    actions = parser.add_subparsers(dest="bundle_command", required=True, metavar="ACTION")
    verify = actions.add_parser("verify", help="check metadata, weights and the network's input and output")
    verify.add_argument("--bundle", type=Path, help="bundle folder (default: the bundle this package belongs to)")
    verify.add_argument(
        "--config", default="configs/inference.json", help="config holding network_def, relative to the bundle (default: %(default)s)"
    )
    add_allow_untrained_option(verify, "also verify random test weights")
    verify.set_defaults(handler=run_verify)


def run_verify(args: argparse.Namespace) -> int:
    bundle = bundle_folder(args.bundle)
    meta_file = bundle / "configs" / "metadata.json"
    require_inputs({"metadata": meta_file, "--config": bundle / args.config})
    from monai.bundle import verify_net_in_out

    from surgvlp.errors import SurgVLPError
    from surgvlp.bundle.metadata_check import check_metadata
    from surgvlp.weights import WeightStore

    metadata = check_metadata(meta_file)
    print(f"ok      metadata: version {metadata['version']}, every model zoo field present")
    failures = [message for _, ok, message in WeightStore(bundle / "models").verify() if not ok]
    if failures:
        raise SurgVLPError(f"weights in {bundle / 'models'}: {failures[0]}")
    print(f"ok      weights: every file in {bundle / 'models'} matches its recorded SHA-256")
    try:
        verify_net_in_out(
            net_id="network_def",
            meta_file=str(meta_file),
            config_file=str(bundle / args.config),
            device="cpu",
            bundle_root=str(bundle),
            allow_untrained=args.allow_untrained,
        )
    except RuntimeError as error:  # the config parser wraps what the network's loader raised
        if isinstance(error.__cause__, SurgVLPError):
            raise error.__cause__ from None
        raise
    except ValueError as error:
        raise SurgVLPError(f"network_def does not match the metadata: {error}") from None
    print("ok      network_def: input image 3x224x224 gives pred as the metadata describes")
    return 0
