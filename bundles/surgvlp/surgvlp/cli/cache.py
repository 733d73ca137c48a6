"""``surgvlp cache``: see and clear the embedding cache."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "cache",
        help="show or clear the frame and prompt embedding cache",
        description="The cache lives in $SURGVLP_CACHE_DIR (default ~/.cache/surgvlp/embeddings) and is limited to "
        "$SURGVLP_CACHE_LIMIT_MB megabytes (default 2048), least recently used entries going first.",
    )
    parser.add_argument("action", choices=("info", "clear"), help="info: location, entries and size; clear: delete every entry")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> None:
    from surgvlp.recognition.cache import EmbeddingCache

    cache = EmbeddingCache()
    if args.action == "clear":
        print(f"cleared {cache.root}: freed {cache.clear() / 1e6:.1f} MB")
    else:
        print(f"{cache.root}: {len(cache.entries())} entries, {cache.size_bytes() / 1e6:.1f} MB of {cache.limit_bytes / 1e6:.0f} MB")
