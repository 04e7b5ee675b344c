"""The learned appearance basis: unwrapping, PCA, the build and the appearance modes."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from synface.errors import DataNotFoundError, SynfaceError
from synface.facemodel.latents import canonical_illumination, lighting_sh
from synface.facemodel.basis import LearnedBasis, StaleBasisError
from synface.facemodel.basis_builder import TexelMap, Unwrapper, build_learned_appearance, pca, reconstruction_error
from synface.facemodel.learned import build_appearance, learned_prior
from synface.facemodel.pose import rotation_matrices
from synface.generate.generator import FaceGenerator, GeneratorConfig


@pytest.fixture(scope="module")
def generator(data_root):
    return FaceGenerator(GeneratorConfig(size=(224, 224), appearance="procedural"))  # sharp, known textures


@pytest.fixture(scope="module")
def texel_map(generator):
    return TexelMap.build(generator.mesh, generator.appearance.size, generator.model.region_names)


def _render_known_texture(generator, texture: np.ndarray, light: np.ndarray, yaw_deg: float):
    """Render identity 0's shape (no hair) wearing ``texture`` (uint8 atlas) under ``light``."""
    latents = generator.latents([0], [0])
    latents.appearance[:] = 0.0  # no hair volume: the whole scalp shows
    latents.expression[:] = 0.0
    latents.pose[:] = np.radians([yaw_deg, 5.0, 0.0])
    geo = generator.geometry(latents)
    rgba = generator.renderer.render(
        geo["pixels"].numpy(), geo["depth"].numpy(), geo["normals"].numpy(), texture[None], light[None],
        np.zeros(1), np.zeros(1, np.int64),
    )
    s = generator.config.supersample
    pixels = (geo["pixels"][0].numpy() + 0.5) / s - 0.5  # supersampled frame -> output pixels
    rotation = rotation_matrices(latents.pose.astype(np.float64))[0]
    return rgba[0, ..., :3].astype(np.float64) / 255.0, pixels, geo["depth"][0].numpy(), rotation


def _recovery_error(generator, texel_map, identity: int, light: np.ndarray, reference: int | None = None):
    """Mean absolute error on well-seen texels between the unwrapped texture (after the best
    per-channel gain) and identity ``reference``'s true texture."""
    appearance = generator.appearance
    coefficients = torch.from_numpy(np.stack([generator.identity(identity)[1], generator.identity(reference or identity)[1]]))
    textures = appearance.texture_bytes(coefficients)
    image, pixels, depth, rotation = _render_known_texture(generator, textures[0], light, yaw_deg=20.0)
    unwrapper = Unwrapper(generator.mesh, texel_map, canvas=image.shape[:2])
    try:
        sums, weights = unwrapper.unwrap(image, pixels, depth, rotation)
    finally:
        unwrapper.close()
    seen = weights > 0.5
    recovered = sums[seen] / weights[seen, None]
    truth = textures[1].reshape(-1, 3)[texel_map.texels[seen]].astype(np.float64) / 255.0
    gain = (recovered * truth).sum(0) / (recovered * recovered).sum(0)
    return float(np.abs(recovered * gain - truth).mean()), int(seen.sum())


def test_unwrapping_a_render_recovers_its_known_texture(generator, texel_map):
    flat = canonical_illumination() * 0.0
    flat[0] = 1.0 / 0.282095  # uniform irradiance 1: colour = albedo
    error, seen = _recovery_error(generator, texel_map, 3, flat)
    assert seen > 0.2 * len(texel_map.texels)  # the face (not the scalp, cropped away) is seen
    assert error < 0.035, error  # texture edges (brows, lips) blur under pixel sampling
    other, _ = _recovery_error(generator, texel_map, 3, flat, reference=5)
    assert other > 3 * error  # the recovered texture is this person's, not any texture
    # Under a strong side light the fitted shading is divided out: the error stays small.
    side = lighting_sh(np.full(3, 0.35), np.array([0.8, 0.2, 0.6]), np.full(3, 0.6))
    lit, _ = _recovery_error(generator, texel_map, 3, side)
    assert lit < 0.06, lit


def test_pca_reconstruction_error_falls_as_components_are_added():
    rng = np.random.default_rng(0)
    # Data with a decaying spectrum, like identity textures; held-out rows judge the basis.
    latent = rng.normal(size=(120, 12)) * (0.7 ** np.arange(12))
    data = latent @ rng.normal(size=(12, 300)) + 0.01 * rng.normal(size=(120, 300))
    train, held_out = data[:100], data[100:]
    errors = []
    for k in (1, 2, 4, 8, 12):
        mean, basis, variance = pca(train, k)
        assert np.allclose(basis @ basis.T, np.eye(k), atol=1e-8)
        assert np.all(np.diff(variance) <= 1e-12)
        errors.append(reconstruction_error(held_out, mean, basis))
    assert all(a > b for a, b in zip(errors, errors[1:])), errors
    assert errors[-1] < 0.1 * errors[0]


def test_pca_keeps_at_most_the_directions_the_rows_span():
    # N centred rows span N - 1 directions: asking for more (or for all) must not return a
    # null direction, whose zero variance would blow up the N(0, 1) coefficient scaling.
    data = np.random.default_rng(1).normal(size=(6, 50))
    mean, basis, variance = pca(data, 50)
    assert len(basis) == 5 and np.all(variance > 1e-6)
    coefficients = (data - mean) @ basis.T / np.sqrt(variance)
    assert np.allclose(mean + (coefficients * np.sqrt(variance)) @ basis, data)  # all of each row kept


@pytest.fixture(scope="module")
def small_real(data_root, tmp_path_factory):
    """4 celeba-299 identities x 4 images, plus one corrupt and one missing image."""
    source = data_root / "celeba-299"
    lines = (source / "landmarks.txt").read_text().splitlines()
    root = tmp_path_factory.mktemp("real")
    people: dict[str, list[str]] = {}
    for line in lines:
        person = line.split("/")[0]
        if len(people.get(person, [])) < 4 and (person in people or len(people) < 4):
            people.setdefault(person, []).append(line)
    kept = [line for group in people.values() for line in group]
    for line in kept:
        rel = line.split()[0]
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source / rel, root / rel)
    first = kept[0].split()[0]
    (root / first).write_bytes(b"not a jpeg")  # corrupt
    missing = kept[1].split()[0]
    (root / missing).unlink()  # listed in landmarks.txt, gone from disk
    (root / "landmarks.txt").write_text("\n".join(kept) + "\n")
    return root, first, missing


def test_build_skips_corrupt_and_missing_images_and_writes_a_loadable_basis(small_real, generator, tmp_path, capsys):
    root, corrupt, missing = small_real
    out = tmp_path / "basis.npz"
    report = build_learned_appearance(root, out, components=3, residual_components=2, progress=False)
    assert report.images == 16 and report.used + report.bad_fits == 14
    assert {path for path, _ in report.skipped} == {corrupt, missing}
    printed = capsys.readouterr()
    assert corrupt in printed.out + printed.err and missing in printed.out + printed.err
    assert report.identities == 4 and report.components == 3
    basis = LearnedBasis.load(out, generator.mesh, generator.appearance.size)
    assert basis.basis.shape == (3, 3 * len(basis.texels))
    assert basis.train_coefficients.shape == (4, 3)
    # Unit-variance coefficients: the training identities' coefficients have std ~1.
    assert np.allclose(basis.train_coefficients.std(0, ddof=1), 1.0, atol=1e-3)
    # The mean skin is a plausible skin colour (R > G > B, not black, not white).
    skin = basis.mean.reshape(-1, 3).mean(0)
    assert skin[0] > skin[1] > skin[2] and 0.2 < skin.mean() < 0.9


def test_appearance_modes_share_hair_and_mix_linearly(small_real, generator, tmp_path):
    root, _, _ = small_real
    out = tmp_path / "basis.npz"
    build_learned_appearance(root, out, components=3, residual_components=2, progress=False)
    model = generator.model
    learned = build_appearance(model, "learned", out)
    both = build_appearance(model, "both", out)
    assert learned.names[:3] == ["learned_0", "learned_1", "learned_2"]
    assert "hair_thick_crown" in learned.names and "brow_thick" not in learned.names
    assert set(generator.appearance.names) <= set(both.names)
    rng = np.random.default_rng(1)
    a, b = learned.sample(rng), learned.sample(rng)
    t = learned.albedo(torch.from_numpy(np.stack([a, b, 0.5 * a + 0.5 * b])).float())
    unclamped = ((t[:2] > 0.01) & (t[:2] < 0.99)).all(0)
    assert unclamped.float().mean() > 0.5
    assert torch.allclose(t[2][unclamped], ((t[0] + t[1]) / 2)[unclamped], atol=1e-5)
    g = FaceGenerator(GeneratorConfig(size=(112, 96), appearance="learned", appearance_path=str(out)), model=model)
    images = g.generate([0, 0, 1], [0, 1, 0])
    assert images.shape == (3, 112, 96, 3) and not np.array_equal(images[0], images[2])


def test_a_blend_prior_mixes_distinct_real_people_at_the_gaussian_spread():
    people = np.random.default_rng(0).normal(size=(50, 8))
    people = (people - people.mean(0)) / people.std(0)  # unit variance, as the basis stores them
    blend = learned_prior("blend2", people, scale=1.25)
    draws = np.stack([blend(np.random.default_rng(seed)) for seed in range(2000)])
    # Same rng, same person; the spread matches the Gaussian prior's scale.
    assert np.array_equal(blend(np.random.default_rng(7)), draws[7])
    assert np.allclose(draws.std(0), 1.25, atol=0.1)
    # Each draw lies in the span of exactly 2 distinct real people (a convex blend, renormalised).
    rng = np.random.default_rng(3)
    chosen = rng.choice(len(people), 2, replace=False)
    weights = rng.dirichlet([2.0, 2.0])
    expected = 1.25 * (weights @ people[chosen]) / np.sqrt(np.sum(weights**2))
    assert np.allclose(blend(np.random.default_rng(3)), expected)
    gaussian = learned_prior("gaussian", people, scale=1.25)
    assert np.abs(gaussian(np.random.default_rng(1))).max() <= 2.5 * 1.25
    with pytest.raises(SynfaceError, match="unknown appearance prior 'blend9'"):
        learned_prior("blend9", people, 1.0)
    with pytest.raises(SynfaceError, match="blends 3 people; the basis has 2"):
        learned_prior("blend3", people[:2], 1.0)


@pytest.fixture(scope="module")
def small_basis(small_real, tmp_path_factory):
    """A 3-component basis (2 photo residuals) of the small real set."""
    out = tmp_path_factory.mktemp("prior-basis") / "basis.npz"
    build_learned_appearance(small_real[0], out, components=3, residual_components=2, progress=False)
    return out


def _prior_generator(basis, generator, prior: str):
    """(config, generator) drawing learned coefficients from ``prior`` on ``basis``."""
    config = GeneratorConfig(size=(56, 48), appearance="learned", appearance_path=str(basis), appearance_prior=prior)
    return config, FaceGenerator(config, model=generator.model)


def test_the_blend_prior_renders_other_people_and_names_itself_in_the_signature(small_basis, generator):
    from synface.generate.generator import generator_signature

    (plain, gaussian), (blended, blend) = (_prior_generator(small_basis, generator, p) for p in ("gaussian", "blend2"))
    assert "prior=blend2" in generator_signature(blended) and "prior" not in generator_signature(plain)
    # The shape is drawn first, as before; the appearance comes from the blend prior.
    a, b = gaussian.identity(4), blend.identity(4)
    assert np.array_equal(a[0], b[0]) and not np.array_equal(a[1][:3], b[1][:3])
    assert np.array_equal(blend.generate([4], [0]), blend.generate([4], [0]))
    with pytest.raises(SynfaceError, match="'procedural' has none"):
        build_appearance(generator.model, "procedural", prior="blend2")


def test_the_real_people_prior_gives_identity_i_real_person_i_and_keeps_shape_and_hair(small_basis, generator):
    from synface.generate.generator import generator_signature

    _, gaussian = _prior_generator(small_basis, generator, "gaussian")
    config, real = _prior_generator(small_basis, generator, "real_people")
    assert "prior=real_people" in generator_signature(config)
    people = LearnedBasis.load(small_basis, generator.mesh, gaussian.appearance.size).train_coefficients
    assert len(people) >= 2
    for identity in (0, 1, len(people) + 1):
        (shape_g, look_g), (shape_r, look_r) = gaussian.identity(identity), real.identity(identity)
        assert np.array_equal(look_r[:3], people[identity % len(people)].astype(np.float32))
        # Only the learned skin changes: the shape and everything after the learned columns
        # (hair, eyes) are the Gaussian prior's, so the two arms differ in the skin alone.
        assert np.array_equal(shape_g, shape_r) and np.array_equal(look_g[3:], look_r[3:])
    assert not np.array_equal(real.identity(0)[1][:3], real.identity(1)[1][:3])
    assert np.array_equal(real.generate([1], [0]), real.generate([1], [0]))


def test_missing_or_unknown_appearance_is_a_clear_error(generator, tmp_path):
    with pytest.raises(DataNotFoundError, match="appearance build"):
        build_appearance(generator.model, "learned", tmp_path / "absent.npz")
    with pytest.raises(SynfaceError, match="unknown appearance mode"):
        build_appearance(generator.model, "painted")
    (tmp_path / "bad.npz").write_bytes(b"junk")
    with pytest.raises(SynfaceError, match="not a readable appearance basis"):
        build_appearance(generator.model, "learned", tmp_path / "bad.npz")


def test_a_basis_built_for_another_mesh_is_refused_or_rebuilt_when_it_is_the_default(
    small_real, generator, tmp_path, monkeypatch
):
    import synface.facemodel.learned as learned_module

    root, _, _ = small_real
    stale = tmp_path / "stale.npz"
    build_learned_appearance(root, stale, components=3, residual_components=2, progress=False)
    with np.load(stale) as z:
        arrays = dict(z)
    arrays["mesh_signature"] = np.array("0123456789abcdef")  # as if built before a mesh change
    np.savez(stale, **arrays)
    assert not learned_module.basis_is_current(stale, generator.mesh)
    # A basis the user named is theirs: refused with the command that rebuilds it.
    with pytest.raises(StaleBasisError, match="appearance build"):
        build_appearance(generator.model, "learned", stale)
    # The default basis is ours: rebuilt in place (here from the small real set, for speed).
    rebuilt = []

    def small_build(real, out, model=None, fit="landmarks5"):
        rebuilt.append(out)
        return build_learned_appearance(root, out, model=model, components=3, residual_components=2, progress=False,
                                        fit=fit)

    monkeypatch.setattr(learned_module, "default_basis_path", lambda fit="landmarks5": stale)
    monkeypatch.setattr(learned_module, "build_learned_appearance", small_build)
    appearance = build_appearance(generator.model, "learned")
    assert rebuilt == [stale] and learned_module.basis_is_current(stale, generator.mesh)
    assert appearance.names[:3] == ["learned_0", "learned_1", "learned_2"]


def test_a_landmarks68_basis_unwraps_onto_each_persons_fitted_shape(small_real, small_basis, generator, tmp_path):
    pytest.importorskip("dlib")
    from synface.generate.generator import generator_signature

    root, _, _ = small_real
    out = tmp_path / "basis68.npz"
    report = build_learned_appearance(root, out, components=3, residual_components=2, progress=False,
                                      fit="landmarks68")
    assert report.identities == 4 and report.used + report.bad_fits == 14 and report.used >= 12
    basis = LearnedBasis.load(out, generator.mesh, generator.appearance.size)
    shapes = basis.train_shapes
    assert shapes is not None and shapes.shape == (4, generator.model.num_shape)
    assert np.all(np.abs(shapes).max(1) > 0.1) and len(np.unique(shapes.round(3), axis=0)) == 4
    with np.load(out) as z:
        assert json.loads(str(z["report"]))["fit"] == "landmarks68"
    assert LearnedBasis.load(small_basis, generator.mesh, generator.appearance.size).train_shapes is None  # landmarks5

    config = GeneratorConfig(size=(56, 48), appearance="learned", appearance_path=str(out), appearance_fit="landmarks68")
    assert "fit=landmarks68" in generator_signature(config)
    faces = FaceGenerator(config, model=generator.model).generate([0, 1], [0, 0])
    assert np.array_equal(faces, FaceGenerator(config, model=generator.model).generate([0, 1], [0, 0]))


def test_an_unknown_basis_fit_is_a_clear_error(small_real, generator, tmp_path):
    with pytest.raises(SynfaceError, match="unknown appearance fit 'dense'.*landmarks68"):
        build_learned_appearance(small_real[0], tmp_path / "b.npz", fit="dense", progress=False)
    with pytest.raises(SynfaceError, match="unknown appearance fit"):
        FaceGenerator(GeneratorConfig(appearance_fit="dense"), model=generator.model)
