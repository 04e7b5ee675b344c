import numpy as np
import pytest

from synface.errors import DataNotFoundError, SynfaceError
from synface.facemodel.latents import SamplerConfig, sample_attributes, sample_expression
from synface.facemodel.model import FaceModel, RENDER_REGIONS


@pytest.fixture(scope="module")
def model(data_root):
    return FaceModel.load(data_root / "facemodels" / "ict-facekit.npz")


def test_model_loads_and_trims_to_the_render_regions(model):
    assert model.num_shape == 100 and model.num_expressions == 57
    mesh = model.render_mesh()
    assert mesh.faces.max() < mesh.num_vertices
    kept = {model.region_names[r] for r in np.unique(mesh.region)}
    assert kept <= set(RENDER_REGIONS)
    assert mesh.num_vertices < len(model.neutral) and len(mesh.faces) < len(model.faces)
    # The 5 alignment points: eye centres average 6 eyelid landmarks, the rest one vertex each.
    assert [len(g) for g in mesh.five_point_groups] == [6, 6, 1, 1, 1]
    assert max(max(g) for g in mesh.five_point_groups) < mesh.num_vertices


def test_missing_face_model_is_a_clear_error(tmp_path):
    with pytest.raises(DataNotFoundError, match="face model not found: .*nope.npz"):
        FaceModel.load(tmp_path / "nope.npz")


def test_malformed_face_model_files_are_clear_errors(tmp_path, model):
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"PK\x03\x04 definitely not a zip")
    with pytest.raises(SynfaceError, match="garbage.npz is not a readable npz"):
        FaceModel.load(garbage)
    partial = tmp_path / "partial.npz"
    np.savez(partial, neutral=model.neutral)
    with pytest.raises(SynfaceError, match="partial.npz lacks arrays: .*id_basis"):
        FaceModel.load(partial)
    arrays = {k: getattr(model, k) for k in ("neutral", "exp_basis", "faces", "face_region", "face_material",
                                               "vertex_region", "landmarks68", "uv", "faces_uv")}
    arrays.update(id_basis=model.id_basis[:, :10], exp_names=np.array(model.exp_names),
                  exp_in_config=model.exp_in_config, region_names=np.array(model.region_names),
                  material_names=np.array(model.material_names))
    bad = tmp_path / "bad_shapes.npz"
    np.savez(bad, **arrays)
    with pytest.raises(SynfaceError, match="bad_shapes.npz is malformed: id_basis"):
        FaceModel.load(bad)


def test_expression_sampler_is_sparse_and_varied(model):
    rng = np.random.default_rng(0)
    draws = np.stack([sample_expression(rng, model.exp_names, 2.0) for _ in range(500)])
    active = (draws > 0).sum(1)
    assert 1.0 < active.mean() < 8.0  # a few blendshapes at a time, not all
    assert ((draws >= 0) & (draws <= 1)).all()
    used = (draws > 0).any(0)
    assert used.sum() >= 30  # many expressions, not just smiles
    smile = model.exp_names.index("mouthSmile_L")
    assert (draws[:, smile] > 0).mean() < 0.3


def test_fixed_attributes_stay_canonical(model):
    config = SamplerConfig(vary=("expression",))
    a = sample_attributes(np.random.default_rng(1), model.exp_names, config)
    b = sample_attributes(np.random.default_rng(2), model.exp_names, config)
    assert np.array_equal(a["pose"], b["pose"]) and np.array_equal(a["illumination"], b["illumination"])
    with pytest.raises(ValueError, match="unknown attributes"):
        SamplerConfig(vary=("hairstyle",))


def test_render_mesh_is_simplified_with_uvs_in_its_regions_tiles(model):
    from synface.facemodel.model import ATLAS_TILES, INTERIOR_TRIANGLES, SKIN_TRIANGLES

    mesh = model.render_mesh()
    names = model.region_names
    skin = np.isin(mesh.region, [names.index("face"), names.index("head_neck")])
    surface = mesh.surface_faces
    assert skin[surface[:, 0]].sum() <= SKIN_TRIANGLES and (~skin[surface[:, 0]]).sum() <= INTERIOR_TRIANGLES
    # The skin is drawn before the parts it hides (early depth test).
    assert not np.any(np.diff(skin[surface[:, 0]].astype(int)) > 0)
    assert mesh.uv.min() >= 0.0 and mesh.uv.max() <= 1.0
    tile = np.floor(mesh.uv[:, 0] * len(ATLAS_TILES)).clip(0, len(ATLAS_TILES) - 1)
    assert set(tile[mesh.region == names.index("face")]) == {0}
    assert set(tile[mesh.region == names.index("head_neck")]) == {1}
    assert set(tile[np.isin(mesh.region, [names.index("eyeball_L"), names.index("eyeball_R")])]) == {2}
    # Render vertices copy model vertices; the 68 landmarks are among them.
    assert np.array_equal(mesh.source[mesh.landmarks68], model.landmarks68)
    surface = ~mesh.is_shell
    assert np.allclose(mesh.neutral.numpy()[surface], model.neutral[mesh.source[surface]])


def test_hair_shell_rests_inside_the_skin_and_moves_out_with_hair_coefficients(model):
    from synface.facemodel.hair import HAIR_GEOMETRY, SHELL_INSET

    mesh = model.render_mesh()
    shell = mesh.is_shell
    assert 300 < shell.sum() < mesh.num_vertices / 2
    # Shell triangles use shell vertices only; the surface's none.
    faces = mesh.faces.numpy()
    assert np.array_equal(shell[faces].any(1), shell[faces].all(1))
    depth = np.linalg.norm(mesh.neutral.numpy()[shell] - model.neutral[mesh.source[shell]], axis=1)
    assert np.allclose(depth, SHELL_INSET, atol=1e-4)
    basis = mesh.hair_basis.view(len(HAIR_GEOMETRY), -1, 3).numpy()
    assert np.abs(basis[:, ~shell]).max() == 0.0  # hair moves only the shell
    # 1 cm of crown hair moves crown vertices 1 cm outward (away from the head's centre).
    crown = shell & (mesh.neutral.numpy()[:, 1] > 12.0)
    moved = basis[HAIR_GEOMETRY.index("hair_thick_crown"), crown]
    assert np.allclose(np.linalg.norm(moved, axis=1), 1.0, atol=0.02)
    outward = mesh.neutral.numpy()[crown] - np.array([0.0, 2.0, 0.0])
    assert ((moved * outward).sum(1) > 0).all()
