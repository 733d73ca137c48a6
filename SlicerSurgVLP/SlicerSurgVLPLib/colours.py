"""Colours of phases, tools and segments, the same in the band, the curves, the table and the legend.

The first ten are the "tableau" qualitative palette the server's PNG plots use, so that with up to ten
classes a phase has the same colour in Slicer as in ``surgvlp phases --plot``; beyond ten they repeat in
lighter tints.
"""

from __future__ import annotations

_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
            "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
UNTRAINED_WARNING_COLOUR = "#d62728"  # the red every untrained-model warning is drawn in


def rgb(hex_colour: str) -> tuple[float, float, float]:
    """``#rrggbb`` as three floats in 0..1, as VTK, MRML and ``.seg.nrrd`` files take colours."""
    value = hex_colour.lstrip("#")
    return tuple(int(value[index:index + 2], 16) / 255.0 for index in (0, 2, 4))


def class_colours(count: int) -> list[tuple[float, float, float]]:
    """One colour per class, in class order."""
    colours = []
    for index in range(count):
        red, green, blue = rgb(_PALETTE[index % len(_PALETTE)])
        tint = 1.0 - 0.5 ** (index // len(_PALETTE))  # 0 for the first ten, then halfway to white, ...
        colours.append((red + (1 - red) * tint, green + (1 - green) * tint, blue + (1 - blue) * tint))
    return colours
