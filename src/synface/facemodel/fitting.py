"""Fitting the face model to real images: head pose from 5 landmarks, lighting from pixels.

Used to give synthetic twins (Syn-LFW) the pose and light of real photographs. Pose uses a
weak-perspective camera on the mean face's 5 alignment points (5 points pin down the 3
rotation angles, scale and 2D shift: 10 equations, 6 unknowns). Lighting solves for 9
spherical-harmonics coefficients per colour channel from the pixels of visible skin,
given their normals and an assumed albedo, with a pull toward a neutral light.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

from synface.facemodel.latents import sh_basis
from synface.facemodel.pose import rotation_derivatives, rotation_matrix

# Yaw starts: a turned head can fit either side's minimum from a frontal start.
_YAW_STARTS_DEG = (-35.0, 0.0, 35.0)
# MTCNN-style annotations put the "nose" point higher between eyes and mouth than the mesh's
# nose-tip vertex does, which a 5-point fit reads as the head tilted back: over all 7,701
# images of our LFW copy (mostly level faces) the raw fit's median pitch is -12.6 deg. Fits to
# such landmarks (``annotated=True``) remove that offset.
ANNOTATION_PITCH_OFFSET_DEG = -12.6


@dataclass
class PoseFit:
    pose: np.ndarray  # (3,) yaw, pitch, roll in radians (the generator's convention)
    scale: float
    shift: np.ndarray  # (2,)
    rms_error: float  # in the landmarks' units, relative to the eye distance


def project_weak(points3d: np.ndarray, params: np.ndarray) -> np.ndarray:
    """(N, 3) model points -> (N, 2) image points (y down) under [yaw, pitch, roll, log s, tx, ty]."""
    r = rotation_matrix(*params[:3])
    cam = points3d @ r.T
    s = np.exp(params[3])
    return np.stack([s * cam[:, 0] + params[4], -s * cam[:, 1] + params[5]], axis=1)


def project_weak_jacobian(points3d: np.ndarray, params: np.ndarray) -> np.ndarray:
    """d(project_weak(points3d, params).ravel()) / d params: (2N, 6). Analytic, so a fit
    needs one Python call per iteration instead of seven (finite differences): the
    appearance basis fits 5,555 photos x 3 starts."""
    r, d_yaw, d_pitch, d_roll = rotation_derivatives(*params[:3])
    s = np.exp(params[3])
    n = len(points3d)
    jac = np.zeros((n, 2, 6))
    for k, dr in enumerate((d_yaw, d_pitch, d_roll)):
        dcam = points3d @ dr.T
        jac[:, 0, k], jac[:, 1, k] = s * dcam[:, 0], -s * dcam[:, 1]
    cam = points3d @ r.T
    jac[:, 0, 3], jac[:, 1, 3] = s * cam[:, 0], -s * cam[:, 1]
    jac[:, 0, 4] = 1.0
    jac[:, 1, 5] = 1.0
    return jac.reshape(2 * n, 6)


def fit_pose(landmarks: np.ndarray, points3d: np.ndarray, limit_deg: float = 80.0, annotated: bool = False) -> PoseFit:
    """Pose of the 5 model points ``points3d`` (N, 3) that best explains image ``landmarks`` (N, 2).

    ``annotated``: the landmarks come from a detector or annotator of real photos (not from
    our own mesh), so the convention offset above is removed from the pitch."""
    landmarks = np.asarray(landmarks, np.float64)
    points3d = np.asarray(points3d, np.float64) - np.asarray(points3d).mean(0)
    eye_model = np.linalg.norm(points3d[0, :2] - points3d[1, :2])
    eye_image = max(np.linalg.norm(landmarks[0] - landmarks[1]), 1e-6)
    centre = landmarks.mean(0)
    limit = np.radians(limit_deg)
    lower = [-limit, -limit, -limit, -np.inf, -np.inf, -np.inf]
    upper = [limit, limit, limit, np.inf, np.inf, np.inf]
    best = None
    for yaw0 in _YAW_STARTS_DEG:
        start = np.array([np.radians(yaw0), 0.0, 0.0, np.log(eye_image / eye_model), centre[0], centre[1]])
        result = least_squares(
            lambda p: (project_weak(points3d, p) - landmarks).ravel(), start,
            jac=lambda p: project_weak_jacobian(points3d, p), bounds=(lower, upper), method="trf",
        )
        if best is None or result.cost < best.cost:
            best = result
    residual = project_weak(points3d, best.x) - landmarks
    rms = float(np.sqrt((residual**2).sum(1).mean()) / eye_image)
    pose = best.x[:3].copy()
    if annotated:
        pose[1] -= np.radians(ANNOTATION_PITCH_OFFSET_DEG)
    return PoseFit(pose.astype(np.float32), float(np.exp(best.x[3])), best.x[4:].copy(), rms)


def fit_sh_lighting(
    colors: np.ndarray, normals: np.ndarray, albedo: np.ndarray, prior: np.ndarray, strength: float = 0.05
) -> np.ndarray:
    """SH coefficients (9, 3) such that colors ≈ albedo · (SH(normals) · L) per channel.

    ``colors`` (N, 3) in [0, 1], ``normals`` (N, 3) unit, ``albedo`` (3,) or (N, 3). The ridge
    term pulls toward ``prior`` (9, 3) with weight ``strength`` · N, which keeps the poorly
    observed bands (light from behind) from running away.
    """
    basis = sh_basis(np.asarray(normals, np.float64))  # (N, 9)
    albedo = np.broadcast_to(np.asarray(albedo, np.float64), colors.shape)
    lam = strength * len(colors)
    out = np.zeros((9, 3))
    for c in range(3):
        a = basis * albedo[:, c : c + 1]
        lhs = a.T @ a + lam * np.eye(9)
        rhs = a.T @ colors[:, c] + lam * prior[:, c]
        out[:, c] = np.linalg.solve(lhs, rhs)
    return out.astype(np.float32)
