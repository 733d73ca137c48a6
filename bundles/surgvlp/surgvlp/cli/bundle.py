"""``surgvlp bundle verify``: the model zoo's checks of the MONAI bundle, offline."""

from __future__ import annotations

import argparse
from pathlib import Path

from surgvlp.cli.options import add_allow_untrained_option
from surgvlp.cli.preflight import require_inputs


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bundle",
        help="check the MONAI bundle (metadata, weights, network input and output, checkpoint) without internet access",
        description="Checks the MONAI bundle with MONAI's own functions, as the model zoo does, without downloading "
        "anything: verify_metadata against the schema shipped in configs/schema/, the recorded hashes of the weights, "
        "the output channels against the classes stored in models/model.pt, verify_net_in_out on network_def and "
        "ckpt_export of models/model.pt.",
    )
    actions = parser.add_subparsers(dest="bundle_command", required=True, metavar="ACTION")
    verify = actions.add_parser("verify", help="check metadata, weights, classes, the network's input and output, and the checkpoint")
    verify.add_argument("--bundle", type=Path, help="bundle folder (default: $SURGVLP_BUNDLE_DIR, else ~/.local/share/surgvlp/bundle)")
    verify.add_argument(
        "--config", default="configs/inference.json", help="config holding network_def, relative to the bundle (default: %(default)s)"
    )
    add_allow_untrained_option(verify, "also verify random test weights")
    verify.set_defaults(handler=run_verify)


def run_verify(args: argparse.Namespace) -> int:
    import logging

    from surgvlp.folders import bundle_dir

    bundle = bundle_dir(args.bundle)
    config = bundle / args.config
    require_inputs({"--config": config})
    from surgvlp.bundle import verification

    logging.getLogger("monai.bundle").setLevel(logging.WARNING)  # MONAI's input summaries would bury the verdicts
    metadata = verification.verify_metadata_offline(bundle)
    print(f"ok      metadata: version {metadata['version']} meets the model zoo schema {Path(metadata['schema']).name}")
    verification.verify_weights(bundle, args.allow_untrained)
    print(f"ok      weights: every file in {bundle / 'models'} matches its recorded SHA-256")
    classes = verification.verify_classes(bundle, metadata)
    print(f"ok      classes: the {len(classes)} output channels are the classes stored in models/model.pt")
    verification.verify_network(bundle, config)
    print(f"ok      network_def: input image 3x224x224 gives pred with {len(classes)} channels, as the metadata says")
    verification.verify_export(bundle, config)
    print("ok      model.pt: loads strictly into network_def, which exports to TorchScript")
    return 0
