"""SurgVLP-family surgical video-language models (SurgVLP, HecVL, PeskaVLP) for zero-shot video understanding.

This package is the code of the MONAI bundle ``bundles/surgvlp``: the CLI, the bundle configs and the
MONAI Label app all import it, so each piece of logic lives here once.
"""

__version__ = "0.1.0"
