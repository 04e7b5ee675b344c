import numpy as np
import pytest

from synface.config import ConfigError
from synface.datasets.spec import load_spec, plan_images, resolve_spec, spec_names

PAPER_SPECS = [
    "syn_10k_50", "syn_1k_50", "syn_2k_50", "syn_5k_50", "syn_10k_2", "syn_10k_5", "syn_10k_10", "syn_10k_20",
    "syn_10k_30", "syn_2k_ub1", "syn_2k_ub2", "attr_non", "attr_expression", "attr_pose", "attr_illumination",
    "syn1", "syn2", "syn3",
]


def test_every_paper_dataset_has_a_spec_with_and_without_mixup():
    names = set(spec_names())
    for name in PAPER_SPECS:
        assert name in names
        if not name.startswith("syn") or name.startswith("syn_"):
            assert f"{name}_im" in names
    for name in names:
        load_spec(name)  # every file parses against the schema


def test_long_tail_group_sizes_at_full_and_small_scale():
    spec = resolve_spec(load_spec("syn_2k_ub1"))
    assert spec.num_identities == 2000 and spec.num_images == 100_000
    plan = plan_images(spec)
    counts = np.bincount(plan.label)
    assert [int(counts[g * 400]) for g in range(5)] == [2, 2, 6, 40, 200]
    assert np.std(counts) == pytest.approx(76.35, abs=0.01)  # the paper's figure
    ub2 = plan_images(resolve_spec(load_spec("syn_2k_ub2")))
    assert np.std(np.bincount(ub2.label)) == pytest.approx(43.52, abs=0.01)
    small = resolve_spec(load_spec("syn_2k_ub1"), scale=0.01)
    assert [(g.identities, g.samples) for g in small.group_list] == [(4, 2), (4, 2), (4, 6), (4, 40), (4, 200)]
    assert small.num_images == 1000


def test_width_and_depth_overrides():
    spec = resolve_spec(load_spec("syn_10k_50"), width=30, depth=4)
    assert (spec.num_identities, spec.num_images) == (30, 120)
    with pytest.raises(ConfigError, match="--depth applies to balanced specs"):
        resolve_spec(load_spec("syn_2k_ub2"), depth=3)


def test_attribute_specs_vary_only_their_attribute():
    assert load_spec("attr_non").sampler.vary == ()
    assert load_spec("attr_pose").sampler.vary == ("pose",)


def test_mixup_plan_draws_partners_from_the_dataset():
    spec = resolve_spec(load_spec("syn3"), width=20, depth=10)
    plan = plan_images(spec)
    mixed = plan.secondary >= 0
    grid = np.linspace(0.6, 1.0, 11)
    assert np.all(np.abs(plan.phi[:, None] - grid[None]).min(1) < 1e-6)
    assert np.all(plan.phi[~mixed] == 1.0) and np.all(plan.phi[mixed] < 1.0)
    assert np.all(plan.secondary[mixed] != plan.label[mixed]) and plan.secondary.max() < 20
    # A larger dataset keeps the first identities' mixup ratios (each image's own stream).
    bigger = plan_images(resolve_spec(load_spec("syn3"), width=40, depth=10))
    np.testing.assert_array_equal(bigger.phi[:200], plan.phi)


def test_unknown_spec_name_lists_the_known_ones():
    from synface.errors import DataNotFoundError

    with pytest.raises(DataNotFoundError, match="unknown dataset spec 'syn_7k'.*syn_10k_50"):
        load_spec("syn_7k")


def test_the_appearance_prior_is_checked_and_written_only_when_set():
    from synface.datasets.build import generator_config
    from synface.datasets.spec import DatasetSpec

    plain = DatasetSpec(name="p", identities=2, samples=2)
    blend = DatasetSpec(name="p", identities=2, samples=2, appearance_prior="blend3")
    assert "appearance_prior" not in plain.to_yaml() and "appearance_prior: blend3" in blend.to_yaml()
    assert generator_config(blend).appearance_prior == "blend3"
    with pytest.raises(ValueError, match="unknown appearance_prior 'blend7'"):
        DatasetSpec(name="p", identities=2, samples=2, appearance_prior="blend7")
    with pytest.raises(ValueError, match="needs a learned appearance"):
        DatasetSpec(name="p", identities=2, samples=2, appearance="procedural", appearance_prior="blend2")
