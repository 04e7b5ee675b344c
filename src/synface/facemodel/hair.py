"""Hair: where it grows (painted) and how far it stands off the scalp (a shell mesh).

Hair is two things that share one set of regions, functions of a point of the neutral head
(centimetres, +y up, the face looks toward +z):

- **colour**, painted into the albedo texture (``appearance.py``: hair_crown / hair_mid /
  hair_fringe darkening plus colour components), and
- **volume**, a shell: a copy of the scalp and forehead triangles, pushed out along the
  neutral normals by ``Σ t_k · mask_k`` centimetres. The shell's resting place is
  ``SHELL_INSET`` below the skin, so where an identity has no hair there (all t_k = 0) the
  skin hides it; where t_k > SHELL_INSET it stands out as hair with a real silhouette. The
  shell reuses the scalp's texture coordinates, so it shows the painted hair colour.

The displacement is linear in the coefficients t_k (they are identity coefficients), so
identity mixup of two people mixes their hair volume as it mixes their face shape.
"""

from __future__ import annotations

import numpy as np

# Hairlines (height in cm above the model origin; the brows sit at about 6, the crown at 14.5).
HAIRLINES = {"crown": 10.5, "mid": 8.6, "fringe": 7.0}
SHELL_INSET = 0.2  # cm: the shell rests this far inside the skin where an identity has no hair

# Hairline styles (the generator's ``hairline``): "low", the three bands above, where three
# people in four have hair 2.6 cm above the brows and the hair colour and strands, which are
# painted over every band's region, tint the forehead of those without (a pale ghost fringe);
# "high", only the crown band (4.5 cm above the brows, a usual forehead), with hair colour and
# strands painted on it alone. The bands below stay in the model, unused, so that both styles
# share one appearance vector.
HAIRLINE_STYLES = ("low", "high")
LOW_BAND_COMPONENTS = ("hair_mid", "hair_fringe", "hair_thick_mid", "hair_thick_fringe")


def check_hairline(style: str) -> str:
    if style not in HAIRLINE_STYLES:
        raise ValueError(f"unknown hairline {style!r}; choose from {', '.join(HAIRLINE_STYLES)}")
    return style


# Hair geometry components (identity coefficients, in cm of displacement at mask = 1).
HAIR_GEOMETRY = ("hair_thick_crown", "hair_thick_mid", "hair_thick_fringe", "hair_volume_top", "hair_volume_sides")


def falloff(distance: np.ndarray, radius: float, soft: float) -> np.ndarray:
    """1 inside ``radius``, 0 beyond ``radius + soft``, smooth in between."""
    t = np.clip((distance - radius) / soft, 0.0, 1.0)
    return 1.0 - t * t * (3 - 2 * t)


def hair_cover(pos: np.ndarray, hairline: float) -> np.ndarray:
    """Where hair grows for a hairline at height ``hairline``: the top of the head above it,
    and the back and sides of the head above the ears."""
    top = falloff(hairline - pos[:, 1], 0, 0.6)
    back = (pos[:, 2] < 2.0) * falloff(-2.0 - pos[:, 1], 0, 1.5)
    return np.clip(np.maximum(top, back * (pos[:, 2] < 4.0)), 0, 1)


def hair_bands(pos: np.ndarray) -> dict[str, np.ndarray]:
    """The three painted bands: crown (always with hair), mid (a normal hairline) and fringe
    (hair down the forehead), each the part its hairline adds to the one above."""
    crown, mid, fringe = (hair_cover(pos, HAIRLINES[k]) for k in ("crown", "mid", "fringe"))
    return {"crown": crown, "mid": np.clip(mid - crown, 0, 1), "fringe": np.clip(fringe - mid, 0, 1)}


def hair_geometry_masks(pos: np.ndarray) -> dict[str, np.ndarray]:
    """Displacement per unit coefficient of each HAIR_GEOMETRY component at points ``pos``."""
    bands = hair_bands(pos)
    # Height above the ears, 0..1, and how far to the side: volume on top, fullness at the sides.
    top = np.clip((pos[:, 1] - 6.0) / 8.5, 0, 1) ** 2
    sides = falloff(np.abs(pos[:, 1] - 4.0), 3.0, 4.0) * np.clip((np.abs(pos[:, 0]) - 5.0) / 5.0, 0, 1)
    return {
        "hair_thick_crown": bands["crown"],
        "hair_thick_mid": bands["mid"],
        "hair_thick_fringe": bands["fringe"],
        "hair_volume_top": bands["crown"] * top,
        "hair_volume_sides": bands["crown"] * sides,
    }


def shell_vertices(pos: np.ndarray, is_skin: np.ndarray) -> np.ndarray:
    """Which vertices the hair shell copies: skin where any hairline's hair can grow."""
    return is_skin & (hair_cover(pos, HAIRLINES["fringe"]) > 0.0)


def sample_hair(rng: np.random.Generator, crown_paint: float, mid: bool, fringe: bool) -> dict[str, float]:
    """Hair volume of one identity, consistent with its painted hair: thickness only where
    hair is painted, in proportion to how dark (dense) it is painted; none for the bald."""
    if crown_paint < 0.3:
        return dict.fromkeys(HAIR_GEOMETRY, 0.0)
    thickness = rng.uniform(0.3, 1.3) * min(1.0, crown_paint)
    return {
        "hair_thick_crown": thickness,
        "hair_thick_mid": thickness if mid else 0.0,
        "hair_thick_fringe": thickness * rng.uniform(0.5, 1.0) if fringe else 0.0,
        "hair_volume_top": rng.uniform(0.0, 2.0) * rng.random(),
        "hair_volume_sides": rng.uniform(0.0, 1.5) * (rng.random() < 0.5),
    }
