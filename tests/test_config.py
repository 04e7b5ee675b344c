from dataclasses import dataclass, field

import pytest

from synface.config import ADDED_OPTION, ConfigError, dump_yaml, from_dict, key_dict, load_yaml, to_dict


@dataclass
class Inner:
    rate: float = 1.0
    names: tuple[str, ...] = ("a",)


@dataclass
class Outer:
    name: str
    count: int = 1
    inner: Inner = field(default_factory=Inner)
    choice: str | list[float] = "none"
    limit: int | None = None


def test_nested_values_convert_and_round_trip(tmp_path):
    cfg = from_dict(Outer, {"name": "x", "inner": {"rate": 2, "names": ["p", "q"]}, "choice": [0.5, 1]})
    assert cfg.inner.rate == 2.0 and cfg.inner.names == ("p", "q") and cfg.choice == [0.5, 1.0]
    path = tmp_path / "c.yaml"
    path.write_text(dump_yaml(cfg))
    assert from_dict(Outer, load_yaml(path)) == cfg


def test_unknown_key_is_named_with_its_path():
    with pytest.raises(ConfigError, match=r"cfg\.inner: unknown key\(s\) 'rat'"):
        from_dict(Outer, {"name": "x", "inner": {"rat": 1}}, "cfg")


def test_wrong_types_are_errors():
    with pytest.raises(ConfigError, match="count: expected an integer"):
        from_dict(Outer, {"name": "x", "count": "3"})
    with pytest.raises(ConfigError, match="expected a number"):
        from_dict(Outer, {"name": "x", "inner": {"rate": True}})


def test_malformed_yaml_names_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_yaml(path)


@dataclass
class Versioned:
    name: str = "x"
    added: str = field(default="off", metadata=ADDED_OPTION)
    inner: Inner = field(default_factory=Inner)


def test_key_dict_leaves_added_options_out_only_at_their_default():
    assert key_dict(Versioned()) == {"name": "x", "inner": {"rate": 1.0, "names": ["a"]}}
    assert key_dict(Versioned(added="on"))["added"] == "on"
    assert to_dict(Versioned())["added"] == "off"  # the plain dump still shows every field
