import numpy as np

from synface.facemodel.fitting import fit_pose, fit_sh_lighting
from synface.facemodel.latents import canonical_illumination, sample_illumination, sh_basis
from synface.generate.generator import FaceGenerator, GeneratorConfig


def test_pose_fit_recovers_the_pose_of_a_rendered_mean_face(data_root):
    g = FaceGenerator(GeneratorConfig())
    latents = g.latents(list(range(24)), [0] * 24)
    latents.shape[:] = 0.0
    latents.expression[:] = 0.0
    latents.camera_distance[:] = 400.0  # far: the weak-perspective fit is then near exact
    image = g.geometry(latents)["camera_image"].numpy()
    points3d = np.stack([g.mesh.neutral[list(grp)].mean(0).numpy() for grp in g.mesh.five_point_groups])
    errors = []
    for b in range(24):
        five = np.stack([image[b, list(grp)].mean(0) for grp in g.mesh.five_point_groups])
        fit = fit_pose(five * 400, points3d)
        errors.append(np.degrees(fit.pose - latents.pose[b]))
    errors = np.abs(np.array(errors))
    assert np.median(errors) < 0.5 and errors.max() < 2.0


def test_sh_lighting_fit_recovers_the_light():
    rng = np.random.default_rng(0)
    normals = rng.normal(size=(2000, 3))
    normals[:, 2] = np.abs(normals[:, 2])  # visible hemisphere
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    light = sample_illumination(rng)
    albedo = np.array([0.7, 0.5, 0.4])
    colors = albedo * (sh_basis(normals) @ light)
    fit = fit_sh_lighting(colors, normals, albedo, canonical_illumination(), strength=1e-4)
    np.testing.assert_allclose(sh_basis(normals) @ fit, sh_basis(normals) @ light, atol=0.02)


def test_analytic_pose_jacobian_matches_finite_differences():
    from scipy.optimize._numdiff import approx_derivative

    from synface.facemodel.fitting import project_weak, project_weak_jacobian

    rng = np.random.default_rng(1)
    points = rng.normal(size=(5, 3)) * 30
    for _ in range(5):
        params = np.concatenate([rng.uniform(-1.2, 1.2, 3), [rng.uniform(-1, 1)], rng.normal(size=2) * 10])
        numeric = approx_derivative(lambda p: project_weak(points, p).ravel(), params, method="3-point")
        np.testing.assert_allclose(project_weak_jacobian(points, params), numeric, rtol=1e-6, atol=1e-6)


def test_person_shape_fit_recovers_a_known_shape_from_68_projected_landmarks(data_root):
    from synface.facemodel.fitting import FIT_EXPRESSIONS, fit_person_shape, project_weak
    from synface.facemodel.model import FaceModel

    model = FaceModel.load()
    mesh = model.render_mesh()
    lm = mesh.landmarks68
    count = mesh.num_vertices
    base = mesh.neutral.numpy().astype(np.float64)[lm]
    shapes = mesh.id_basis.numpy().astype(np.float64).reshape(-1, count, 3)[:, lm]
    exps = mesh.exp_basis.numpy().astype(np.float64).reshape(-1, count, 3)
    exps = exps[[model.exp_names.index(n) for n in FIT_EXPRESSIONS]][:, lm]
    rng = np.random.default_rng(0)
    truth = np.zeros(len(shapes))
    truth[:10] = rng.normal(size=10)  # the leading modes, which 68 points determine
    photos, true_exp = [], []
    for j in range(12):
        expression = np.zeros(len(exps))
        expression[j % 3] = 0.4  # jaw open, smiles
        params = np.array([*np.radians(rng.uniform(-25, 25, 3) * [1, 0.4, 0.4]), np.log(3.0), 50.0, 55.0])
        points = base + np.tensordot(truth, shapes, 1) + np.tensordot(expression, exps, 1)
        photos.append(project_weak(points, params) + rng.normal(scale=0.2, size=(68, 2)))
        true_exp.append(expression)
    fit = fit_person_shape(photos, base, shapes, exps)
    assert np.median(fit.rms_error) < 0.025  # of the eye distance (~30 px); the prior keeps it above the noise
    # Coefficients are not unique (scale and depth trade against some modes under weak
    # perspective), so the test compares the 3D landmarks after a similarity alignment: the
    # fitted face is closer to the person's than the mean face is (0.09 against 0.15 cm here;
    # depth is what 2D points pin down least).
    person = base + np.tensordot(truth, shapes, 1)
    fitted = base + np.tensordot(fit.shape, shapes, 1)
    assert _procrustes_error(fitted, person) < 0.75 * _procrustes_error(base, person)
    mean_fit = fit_person_shape(photos, base, shapes * 0, exps * 0, iterations=1)
    assert np.median(fit.rms_error) < 0.75 * np.median(mean_fit.rms_error)
    assert np.all((fit.expressions >= 0) & (fit.expressions <= 1))
    assert np.corrcoef(fit.expressions[:, :3].ravel(), np.array(true_exp)[:, :3].ravel())[0, 1] > 0.8


def _procrustes_error(points: np.ndarray, target: np.ndarray) -> float:
    """RMS distance of ``points`` to ``target`` (both (N, 3)) after the best similarity."""
    a, b = points - points.mean(0), target - target.mean(0)
    u, sv, vt = np.linalg.svd(a.T @ b)
    d = np.sign(np.linalg.det(u @ vt))
    rotation = u @ np.diag([1, 1, d]) @ vt
    scale = (sv * [1, 1, d]).sum() / (a**2).sum()
    return float(np.sqrt(((scale * a @ rotation - b) ** 2).sum(1).mean()))
