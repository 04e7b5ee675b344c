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


# ---- shape from 68 landmarks ------------------------------------------------------------------
# Expressions a 68-point fit solves for per photo, so that a smile or an open mouth moves the
# lips instead of bending the person's shape (the rest barely move the 68 points).
FIT_EXPRESSIONS = ("jawOpen", "mouthSmile_L", "mouthSmile_R", "mouthFunnel", "mouthPucker",
                   "browInnerUp_L", "browInnerUp_R", "eyeBlink_L", "eyeBlink_R")
# The jaw contour (points 0-16) is where a photo's silhouette falls, not fixed skin: it slides
# over the mesh as the head turns, so it counts for less.
CONTOUR_WEIGHT = 0.5
# Landmark noise as a fraction of the eye distance (dlib's 68 points on ~100 px faces), and the
# prior spread of a fitted expression weight: together with the shape prior N(0, 1) they set how
# far the fit trusts the points.
LANDMARK_NOISE = 0.04
EXPRESSION_SPREAD = 0.5


@dataclass
class PersonFit:
    shape: np.ndarray  # (S,) identity coefficients shared by the person's photos
    expressions: np.ndarray  # (n, E) FIT_EXPRESSIONS weights per photo, in [0, 1]
    params: np.ndarray  # (n, 6) project_weak parameters per photo (of uncentred model points)
    rms_error: np.ndarray  # (n,) misfit of the 51 inner points (not the contour) per photo, / eye distance


def _landmark_weights() -> np.ndarray:
    weights = np.ones(68)
    weights[:17] = CONTOUR_WEIGHT
    return np.repeat(weights, 2)


def _eye_distance(points: np.ndarray) -> float:
    return max(float(np.linalg.norm(points[36:42].mean(0) - points[42:48].mean(0))), 1e-6)


def fit_person_shape(
    landmarks: list[np.ndarray], base: np.ndarray, shape_basis: np.ndarray, exp_basis: np.ndarray,
    iterations: int = 4,
) -> PersonFit:
    """One person's shape from the 68 landmarks (n photos x (68, 2)) of their photos.

    ``base`` (68, 3) the mean face's landmark vertices, ``shape_basis`` (S, 68, 3) and
    ``exp_basis`` (E, 68, 3) their displacements per unit coefficient. Alternates a pose per
    photo (weak perspective, as ``fit_pose``) with one linear ridge solve for the shared shape
    and each photo's expression (prior N(0, 1) on the shape, EXPRESSION_SPREAD on the
    expressions): every photo constrains the same shape, so it is better determined than any
    one photo's."""
    n, s_count, e_count = len(landmarks), len(shape_basis), len(exp_basis)
    if n == 0:
        raise ValueError("fit_person_shape needs at least one photo's landmarks")
    targets = [np.asarray(x, np.float64) for x in landmarks]
    eye = np.array([_eye_distance(x) for x in targets])
    weights = _landmark_weights()
    shape = np.zeros(s_count)
    expressions = np.zeros((n, e_count))
    params = np.zeros((n, 6))
    flat_shape = shape_basis.reshape(s_count, -1).T  # (68*3, S)
    flat_exp = exp_basis.reshape(e_count, -1).T  # (68*3, E)
    for it in range(iterations):
        # Poses, given the shape: the first from fit_pose's multi-start, later ones warm.
        for j, x in enumerate(targets):
            points = base + (flat_shape @ shape + flat_exp @ expressions[j]).reshape(68, 3)
            if it == 0:
                start = fit_pose(x, points)
                centre = points.mean(0)
                r = rotation_matrix(*start.pose.astype(np.float64))
                cam = centre @ r.T
                shift = start.shift - start.scale * np.array([cam[0], -cam[1]])
                params[j] = [*start.pose, np.log(start.scale), *shift]
            result = least_squares(
                lambda q: weights * (project_weak(points, q) - x).ravel(), params[j],
                jac=lambda q: weights[:, None] * project_weak_jacobian(points, q), method="lm",
            )
            params[j] = result.x
        # Shape and expressions, given the poses: x = s * P R (base + B w + E e) + t is linear.
        unknowns = s_count + n * e_count
        lhs = np.zeros((unknowns, unknowns))
        rhs = np.zeros(unknowns)
        for j, x in enumerate(targets):
            r = rotation_matrix(*params[j, :3])
            linear = np.exp(params[j, 3]) * np.stack([r[0], -r[1]])  # (2, 3)
            project = lambda flat: np.einsum("ik,nkc->nic", linear, flat.reshape(68, 3, -1)).reshape(136, -1)
            a_shape, a_exp = project(flat_shape), project(flat_exp)
            offset = (base @ linear.T + params[j, 4:]).ravel()
            scale = weights / (LANDMARK_NOISE * eye[j])
            a = np.zeros((136, unknowns))
            a[:, :s_count] = a_shape
            cols = slice(s_count + j * e_count, s_count + (j + 1) * e_count)
            a[:, cols] = a_exp
            a *= scale[:, None]
            b = (x.ravel() - offset) * scale
            lhs += a.T @ a
            rhs += a.T @ b
        prior = np.concatenate([np.ones(s_count), np.full(n * e_count, 1.0 / EXPRESSION_SPREAD**2)])
        solution = np.linalg.solve(lhs + np.diag(prior), rhs)
        shape = solution[:s_count]
        expressions = np.clip(solution[s_count:].reshape(n, e_count), 0.0, 1.0)
    rms = np.empty(n)
    for j, x in enumerate(targets):
        points = base + (flat_shape @ shape + flat_exp @ expressions[j]).reshape(68, 3)
        residual = project_weak(points, params[j]) - x
        rms[j] = np.sqrt((residual[17:] ** 2).sum(1).mean()) / eye[j]
    return PersonFit(shape, expressions, params, rms)
