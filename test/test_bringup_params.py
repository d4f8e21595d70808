"""The in-process bringup reads ROS params files with the same key rules as rcl."""

import pytest

from press_cell.nodes.bringup import BringupError, load_node_parameters


def _values(params):
    return {p.name: p.value for p in params}


def test_wildcard_namespaced_and_plain_keys(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("/**:\n  ros__parameters: {a: 1, b: 2}\n"
                    "/**/press:\n  ros__parameters: {rate_hz: 500.0, gains: {kp: 1.5}}\n"
                    "/cell2/press:\n  ros__parameters: {rate_hz: 1000.0}\n"
                    "arm:\n  ros__parameters: {speed: 0.1}\n")
    assert _values(load_node_parameters(path, "press", "/cell1")) == {
        "a": 1, "b": 2, "rate_hz": 500.0, "gains.kp": 1.5}
    assert _values(load_node_parameters(path, "press", "/cell2"))["rate_hz"] == 1000.0
    assert _values(load_node_parameters(path, "arm", "")) == {"a": 1, "b": 2, "speed": 0.1}
    assert _values(load_node_parameters(path, "arm", "/cell1")) == {"a": 1, "b": 2}


def test_shipped_files_load_for_their_nodes():
    from press_cell.config_files import config_dir

    for path in sorted(config_dir().glob("*.yaml")):
        document = path.read_text()
        if "ros__parameters" not in document:
            continue
        node = path.stem
        assert load_node_parameters(path, node, "/cell1"), f"{path.name} gives {node} nothing"


@pytest.mark.parametrize("text, message", [
    ("press: [1, 2]\n", "ros__parameters"),
    ("- a\n- b\n", "mapping of node names"),
    ("press: {ros__parameters: {a: [1\n", "not valid YAML"),
])
def test_bad_files_get_a_clear_error(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(BringupError, match=message):
        load_node_parameters(path, "press", "")
