"""Drawing the synthetic laparoscopic frames with vectorised numpy.

A frame is: a moving tissue texture (smooth noise with specular spots, coloured through the phase's
palette, darkened towards the edges like an endoscope image), an optional blood pool, the instruments
in view (metallic capsules with cylindrical shading: a shaft from the trocar and the jaws, prongs,
hook, blades or clip that tell them apart; the specimen bag as a translucent blob) and an optional
smoke haze over everything. Each instrument pixel is also written to a label mask.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from surgvlp.sample_data.scenario import ENTER_SECONDS, INSTRUMENTS, PHASE_LOOKS, Event, PhaseLook, Scenario, Visit

_SPECULAR = np.array((255, 248, 240), dtype=np.float32)
_SMOKE = np.float32(206.0)
_BLOOD = PhaseLook((72, 0, 6), (205, 22, 28), (), 0.0, False)


class CaseRenderer:
    """Renders frame ``n`` of a :class:`Scenario` as an (H, W, 3) uint8 image and an (H, W) uint8 label mask."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        height, width = scenario.height, scenario.width
        rng = np.random.default_rng([scenario.seed, 1])
        self._margin = margin = max(4, round(0.05 * max(width, height)))
        field_shape = (height + 2 * margin, width + 2 * margin)
        tissue = 0.6 * _smooth_noise(rng, field_shape, 5) + 0.3 * _smooth_noise(rng, field_shape, 14)
        tissue += 0.1 * _smooth_noise(rng, field_shape, 40)
        spots = np.clip((_smooth_noise(rng, field_shape, 30) - 0.72) * 6.0, 0.0, 1.0)
        self._tissue = np.maximum(0.8 * tissue, spots).astype(np.float32)
        self._y, self._x = np.mgrid[0:height, 0:width].astype(np.float32)
        radius = np.hypot((self._x - width / 2) / (width / 2), (self._y - height / 2) / (height / 2))
        self._vignette = np.clip(1.1 - 0.45 * radius**2, 0.0, 1.0).astype(np.float32) * 255.0
        self._haze = _smooth_noise(rng, (height, 2 * width), 6)
        self._pool_edge = _smooth_noise(rng, (height, width), 8)
        self._pool_distance: dict[Event, np.ndarray] = {}
        self._palettes = {name: _palette(look) for name, look in PHASE_LOOKS.items()}
        self._blood = _palette(_BLOOD)
        self._size = float(min(width, height))

    def render(self, frame: int) -> tuple[np.ndarray, np.ndarray]:
        scenario = self.scenario
        time = frame / scenario.fps
        height, width, margin = scenario.height, scenario.width, self._margin
        dx = margin + round(0.8 * margin * math.sin(2 * math.pi * time / 3.7))
        dy = margin + round(0.8 * margin * math.sin(2 * math.pi * time / 5.3 + 1.0))
        shade = (self._tissue[dy : dy + height, dx : dx + width] * self._vignette).astype(np.uint8)
        image = self._palettes[scenario.phase_at(time)][shade]
        mask = np.zeros((height, width), dtype=np.uint8)
        active = [event for event in scenario.events if event.start <= time < event.end]
        for event in active:
            if event.kind == "bleeding":
                self._bleed(image, shade, event, time)
        visits = [visit for visit in scenario.visits if visit.start <= time < visit.end]
        for visit in sorted(visits, key=lambda visit: visit.instrument != "SpecimenBag"):
            self._draw(image, mask, visit, time)
        for event in active:
            if event.kind == "smoke":
                self._smoke(image, event, time)
        return np.clip(image, 0, 255).astype(np.uint8), mask

    def _bleed(self, image: np.ndarray, shade: np.ndarray, event: Event, time: float) -> None:
        """A blood pool spreading from the event's centre over the first 40 % of the event, then staying."""
        growth = min(1.0, (time - event.start) / (0.4 * (event.end - event.start)))
        if event not in self._pool_distance:
            cx, cy = event.center[0] * self.scenario.width, event.center[1] * self.scenario.height
            edge = 0.25 * event.strength * self._pool_edge
            self._pool_distance[event] = np.hypot(self._x - cx, self._y - cy) / self._size + edge
        inside = self._pool_distance[event] < event.strength * growth
        image[inside] = self._blood[shade[inside]]

    def _smoke(self, image: np.ndarray, event: Event, time: float) -> None:
        ramp = min(1.0, (time - event.start) / 0.5, (event.end - time) / 0.5)
        shift = int((time - event.start) * 0.08 * self.scenario.width) % self.scenario.width
        haze = self._haze[:, shift : shift + self.scenario.width]
        alpha = (event.strength * ramp) * (0.55 + 0.45 * haze)
        image += alpha[:, :, None] * (_SMOKE - image)

    def _draw(self, image: np.ndarray, mask: np.ndarray, visit: Visit, time: float) -> None:
        scenario, size = self.scenario, self._size
        label = INSTRUMENTS.index(visit.instrument) + 1
        depth = min(1.0, (time - visit.start) / ENTER_SECONDS, (visit.end - time) / ENTER_SECONDS)
        outward = np.array((math.cos(math.radians(visit.angle)), math.sin(math.radians(visit.angle))))
        across = np.array((-outward[1], outward[0]))
        sway = 0.03 * size * np.array((math.sin(1.3 * time + visit.wobble), math.cos(1.7 * time + 2 * visit.wobble)))
        reach = 1.3 * max(scenario.width, scenario.height)
        tip = np.array((visit.tip[0] * scenario.width, visit.tip[1] * scenario.height)) + sway
        tip = tip + outward * reach * (1.0 - _ease(depth))
        opening = 0.5 + 0.5 * math.sin(2.4 * time + visit.wobble)
        if visit.instrument == "SpecimenBag":
            self._bag(image, mask, tip, label)
            return
        for start, end, radius, colour in _instrument_parts(
            visit.instrument, tip, outward, across, opening, size, reach
        ):
            self._capsule(image, mask, start, end, radius, colour, label)

    def _capsule(
        self,
        image: np.ndarray,
        mask: np.ndarray,
        start: np.ndarray,
        end: np.ndarray,
        radius: float,
        colour: tuple[int, int, int],
        label: int,
    ) -> None:
        """A shaded cylinder with rounded ends from ``start`` to ``end``, drawn only inside its bounding box."""
        height, width = mask.shape
        x0, y0 = np.floor(np.minimum(start, end) - radius).astype(int)
        x1, y1 = np.ceil(np.maximum(start, end) + radius).astype(int) + 1
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
        if x0 >= x1 or y0 >= y1:
            return
        x, y = self._x[y0:y1, x0:x1], self._y[y0:y1, x0:x1]
        axis = end - start
        along = np.clip(((x - start[0]) * axis[0] + (y - start[1]) * axis[1]) / max(axis @ axis, 1e-6), 0.0, 1.0)
        distance = np.hypot(x - (start[0] + along * axis[0]), y - (start[1] + along * axis[1])) / radius
        inside = distance < 1.0
        if not inside.any():
            return
        d = distance[inside]
        light = 0.3 + 0.7 * np.sqrt(1.0 - d * d)
        gloss = 90.0 * np.clip(1.0 - np.abs(d - 0.45) * 5.0, 0.0, 1.0)
        region = image[y0:y1, x0:x1]
        region[inside] = np.asarray(colour, dtype=np.float32) * light[:, None] + gloss[:, None]
        mask[y0:y1, x0:x1][inside] = label

    def _bag(self, image: np.ndarray, mask: np.ndarray, centre: np.ndarray, label: int) -> None:
        """The specimen bag: a translucent plastic blob with a wavy outline."""
        rx, ry = 0.2 * self.scenario.width, 0.17 * self.scenario.height
        radius = np.hypot((self._x - centre[0]) / rx, (self._y - centre[1]) / ry) + 0.3 * (self._pool_edge - 0.5)
        inside = radius < 1.0
        film = np.array((226, 222, 204), dtype=np.float32) * (0.75 + 0.25 * (1.0 - radius[inside]))[:, None]
        image[inside] = 0.25 * image[inside] + 0.75 * film
        mask[inside] = label


def _instrument_parts(
    instrument: str,
    tip: np.ndarray,
    outward: np.ndarray,
    across: np.ndarray,
    opening: float,
    size: float,
    reach: float,
) -> list[tuple[np.ndarray, np.ndarray, float, tuple[int, int, int]]]:
    """Capsules (start, end, radius, colour) of an instrument whose working end is at ``tip``."""
    jaw = 0.09 * size
    base = tip + outward * jaw
    far = tip + outward * 2 * reach
    silver = (200, 200, 206)
    if instrument == "Grasper":
        spread = (0.2 + 0.5 * opening) * jaw
        return [
            (base, far, 0.04 * size, (48, 48, 54)),
            (base, tip + across * spread, 0.016 * size, (176, 176, 182)),
            (base, tip - across * spread, 0.016 * size, (176, 176, 182)),
        ]
    if instrument == "Bipolar":
        gap = (0.15 + 0.15 * opening) * jaw
        return [
            (base, far, 0.035 * size, (36, 36, 72)),
            (base, base + outward * 0.12 * size, 0.037 * size, (40, 92, 212)),
            (base + across * gap, tip + across * gap, 0.01 * size, silver),
            (base - across * gap, tip - across * gap, 0.01 * size, silver),
        ]
    if instrument == "Hook":
        return [
            (base, far, 0.03 * size, (26, 26, 30)),
            (base, tip, 0.011 * size, silver),
            (tip, tip + across * 0.45 * jaw, 0.011 * size, silver),
        ]
    if instrument == "Scissors":
        spread = 0.25 * opening * jaw
        return [
            (base, far, 0.035 * size, (72, 72, 78)),
            (base, tip + across * spread, 0.013 * size, (218, 218, 224)),
            (base, tip - across * spread, 0.013 * size, (218, 218, 224)),
        ]
    if instrument == "Clipper":
        clip = tip + outward * 0.25 * jaw
        return [
            (base, far, 0.05 * size, (158, 158, 168)),
            (base, tip + across * 0.2 * jaw, 0.014 * size, (150, 150, 160)),
            (base, tip - across * 0.2 * jaw, 0.014 * size, (150, 150, 160)),
            (clip + across * 0.25 * jaw, clip - across * 0.25 * jaw, 0.012 * size, (236, 186, 40)),
        ]
    if instrument == "Irrigator":
        return [(tip, far, 0.022 * size, (206, 206, 212))]
    raise ValueError(f"no drawing for instrument {instrument!r}")


def _palette(look: PhaseLook) -> np.ndarray:
    """256-entry colour table: dark to light tissue, the top 15 % blending into specular white."""
    level = np.linspace(0.0, 1.0, 256, dtype=np.float32)[:, None]
    dark, light = np.asarray(look.tissue_dark, np.float32), np.asarray(look.tissue_light, np.float32)
    tissue = dark + (light - dark) * np.minimum(level / 0.85, 1.0)
    gloss = np.clip((level - 0.85) / 0.15, 0.0, 1.0)
    return (tissue * (1.0 - gloss) + _SPECULAR * gloss).astype(np.float32)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    """Noise in [0, 1] with about ``cells`` blobs across the longer side (bicubic upsampling of a coarse grid)."""
    height, width = shape
    step = max(height, width) / cells
    coarse = rng.random((max(2, math.ceil(height / step) + 1), max(2, math.ceil(width / step) + 1)), dtype=np.float32)
    smooth = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BICUBIC))
    low, high = smooth.min(), smooth.max()
    return ((smooth - low) / max(high - low, 1e-6)).astype(np.float32)


def _ease(depth: float) -> float:
    """Smooth start and stop for instruments sliding in and out of view."""
    return depth * depth * (3.0 - 2.0 * depth)
