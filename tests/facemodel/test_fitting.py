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
