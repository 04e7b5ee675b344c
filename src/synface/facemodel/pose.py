"""Head-pose rotations, shared by the generator (posing meshes) and the fitting of real
photos (finding their pose): one convention, yaw about y, pitch about x, roll about z."""

from __future__ import annotations

import numpy as np


def _factors(pose: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(B, 3) pose -> Ry, Rx, Rz, each (B, 3, 3)."""
    yaw, pitch, roll = pose[:, 0], pose[:, 1], pose[:, 2]
    cy, sy, cp, sp, cr, sr = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch), np.cos(roll), np.sin(roll)
    one, zero = np.ones_like(yaw), np.zeros_like(yaw)
    ry = np.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], 1).reshape(-1, 3, 3)
    # Positive pitch tilts the chin down (the face looks down).
    rx = np.stack([one, zero, zero, zero, cp, sp, zero, -sp, cp], 1).reshape(-1, 3, 3)
    rz = np.stack([cr, -sr, zero, sr, cr, zero, zero, zero, one], 1).reshape(-1, 3, 3)
    return ry, rx, rz


def rotation_matrices(pose: np.ndarray) -> np.ndarray:
    """(B, 3) yaw (about y), pitch (about x), roll (about z) -> (B, 3, 3), applied R = Rz Rx Ry."""
    ry, rx, rz = _factors(pose)
    return rz @ rx @ ry


def rotation_matrix(yaw: float, pitch: float, roll: float) -> np.ndarray:
    return rotation_matrices(np.array([[yaw, pitch, roll]], np.float64))[0]


def rotation_derivatives(yaw: float, pitch: float, roll: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """R and its derivatives dR/dyaw, dR/dpitch, dR/droll (each 3 x 3), for analytic
    Jacobians of pose fits."""
    ry, rx, rz = (m[0] for m in _factors(np.array([[yaw, pitch, roll]], np.float64)))
    cy, sy, cp, sp, cr, sr = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch), np.cos(roll), np.sin(roll)
    dry = np.array([[-sy, 0.0, cy], [0.0, 0.0, 0.0], [-cy, 0.0, -sy]])
    drx = np.array([[0.0, 0.0, 0.0], [0.0, -sp, cp], [0.0, -cp, -sp]])
    drz = np.array([[-sr, -cr, 0.0], [cr, -sr, 0.0], [0.0, 0.0, 0.0]])
    return rz @ rx @ ry, rz @ rx @ dry, rz @ drx @ ry, drz @ rx @ ry
