"""What happens in the synthetic case, decided from the seed before any pixel is drawn.

The seven Cholec80 phases follow each other in their surgical order, each lasting whole seconds so
that 1 fps sampling sees every phase. Each phase has a look that a frame classifier can pick up from
global image statistics: its own tissue colours, its own instruments (the ones Cholec80 surgeons use
in that phase) and its own events (diathermy smoke while hooking, a bleed during coagulation).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PHASES = (
    "Preparation",
    "CalotTriangleDissection",
    "ClippingCutting",
    "GallbladderDissection",
    "GallbladderPackaging",
    "CleaningCoagulation",
    "GallbladderRetraction",
)

INSTRUMENTS = ("Grasper", "Bipolar", "Hook", "Scissors", "Clipper", "Irrigator", "SpecimenBag")
"""Cholec80 tool order; an instrument's mask label is its position here plus one (0 is background)."""

MIN_DURATION = len(PHASES)
"""At least one second per phase."""

ENTER_SECONDS = 0.6
"""How long an instrument takes to slide into (or out of) view."""


@dataclass(frozen=True)
class PhaseLook:
    """How a phase looks: tissue colours (dark and light end of the texture), tools, haze and bleeding."""

    tissue_dark: tuple[int, int, int]
    tissue_light: tuple[int, int, int]
    instruments: tuple[str, ...]
    smoke: float
    bleeding: bool


PHASE_LOOKS = {
    "Preparation": PhaseLook((160, 112, 104), (250, 216, 206), ("Grasper",), 0.0, False),
    "CalotTriangleDissection": PhaseLook((130, 30, 82), (246, 122, 172), ("Grasper", "Hook"), 0.35, False),
    "ClippingCutting": PhaseLook((132, 62, 22), (252, 184, 96), ("Grasper", "Clipper", "Scissors"), 0.0, False),
    "GallbladderDissection": PhaseLook((92, 22, 8), (204, 84, 48), ("Grasper", "Hook"), 0.6, False),
    "GallbladderPackaging": PhaseLook((68, 82, 30), (204, 214, 112), ("Grasper", "SpecimenBag"), 0.0, False),
    "CleaningCoagulation": PhaseLook((58, 6, 12), (172, 44, 42), ("Irrigator", "Bipolar"), 0.2, True),
    "GallbladderRetraction": PhaseLook((70, 50, 112), (182, 152, 232), ("Grasper", "SpecimenBag"), 0.0, False),
}

_LONG_PHASES_FIRST = (1, 3, 5, 2, 0, 4, 6)
"""Which phases get the seconds left over once each has ``duration // 7`` (Calot and dissection are longest)."""

_ENTRY_ANGLES = {  # direction (degrees, 0 = right, 90 = down) of the trocar an instrument comes from
    "Grasper": -60.0,
    "Bipolar": -20.0,
    "Hook": 10.0,
    "Scissors": 20.0,
    "Clipper": 30.0,
    "Irrigator": 160.0,
    "SpecimenBag": 200.0,
}


@dataclass(frozen=True)
class Visit:
    """One instrument in view from ``start`` to ``end`` seconds, working around ``tip`` (fractions of width/height).

    It slides in during the first and out during the last :data:`ENTER_SECONDS`.
    """

    instrument: str
    start: float
    end: float
    tip: tuple[float, float]
    angle: float
    wobble: float


@dataclass(frozen=True)
class Event:
    """Smoke or bleeding from ``start`` to ``end`` seconds; ``strength`` is the peak haze or pool size."""

    kind: str
    start: float
    end: float
    center: tuple[float, float]
    strength: float


@dataclass(frozen=True)
class Scenario:
    seed: int
    duration: int
    fps: int
    width: int
    height: int
    phase_bounds: tuple[tuple[str, int, int], ...]
    visits: tuple[Visit, ...]
    events: tuple[Event, ...]

    @property
    def frame_count(self) -> int:
        return self.duration * self.fps

    def phase_at(self, time: float) -> str:
        for name, start, end in self.phase_bounds:
            if start <= time < end:
                return name
        return self.phase_bounds[-1][0]


def phase_seconds(duration: int) -> list[int]:
    """Whole seconds per phase: an equal share each, the remainder to the phases that run longest."""
    seconds = [duration // len(PHASES)] * len(PHASES)
    for phase in _LONG_PHASES_FIRST[: duration % len(PHASES)]:
        seconds[phase] += 1
    return seconds


def plan_scenario(seed: int, duration: int, fps: int, width: int, height: int) -> Scenario:
    """Phase boundaries, instrument visits and events of the case for ``seed``."""
    rng = np.random.default_rng(seed)
    bounds = []
    start = 0
    for name, seconds in zip(PHASES, phase_seconds(duration), strict=True):
        bounds.append((name, start, start + seconds))
        start += seconds
    visits: list[Visit] = []
    events: list[Event] = []
    for name, begin, end in bounds:
        look = PHASE_LOOKS[name]
        length = end - begin
        tools = look.instruments
        for number, tool in enumerate(tools):
            # In full view from the phase's first frame (it slid in just before) until shortly before its end.
            visit_start, visit_end = begin - ENTER_SECONDS, end - rng.uniform(0.0, 0.12) * length
            if name == "ClippingCutting" and tool != "Grasper":  # clip first, then cut
                middle = begin + length / 2
                visit_start, visit_end = (
                    (visit_start, middle) if tool == "Clipper" else (middle - ENTER_SECONDS, visit_end)
                )
            tip = (
                0.5 + rng.uniform(-0.18, 0.18) + 0.12 * (number - (len(tools) - 1) / 2),
                0.5 + rng.uniform(-0.15, 0.15),
            )
            angle = _ENTRY_ANGLES[tool] + rng.uniform(-12.0, 12.0)
            visits.append(Visit(tool, visit_start, visit_end, tip, angle, rng.uniform(0.0, 2 * np.pi)))
        center = (rng.uniform(0.35, 0.65), rng.uniform(0.4, 0.65))
        if look.smoke:
            events.append(Event("smoke", begin - 0.25, end - 0.05 * length, center, look.smoke))
        if look.bleeding:
            events.append(Event("bleeding", begin, end, center, rng.uniform(0.22, 0.3)))
    return Scenario(seed, duration, fps, width, height, tuple(bounds), tuple(visits), tuple(events))
