"""Cell layout file: the shipped layout loads; mistakes are reported with line, key and range."""

import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from press_cell.recipes.stations import (
    ComponentKind,
    StationKind,
    StationsConfigError,
    UnknownStationError,
    ZoneBox,
    load_layout,
    parse_layout,
)

CONFIG = Path(__file__).resolve().parent.parent / "config" / "stations.yaml"
TEXT = CONFIG.read_text()


DIE_B = TEXT[TEXT.index("  press_die_b:"):TEXT.index("  inspection:")]
ONE_PRESS = TEXT.replace(DIE_B, "")


def _line_of(fragment: str) -> int:
    return TEXT[:TEXT.index(fragment)].count("\n") + 1


def test_shipped_layout_loads_in_si():
    layout = load_layout(CONFIG)
    station, index, pose = layout.resolve_slot("pellet_tray/5")
    assert station.kind == StationKind.TRAY and index == 5
    # slot 5 = row 1, column 1 of a 4-column tray: origin + (20 mm, 20 mm)
    assert pose.position_m == pytest.approx((0.18, -0.12, 0.004))
    assert layout.safe_z_m == pytest.approx(0.100)
    die = layout.stations["press_die"]
    assert ComponentKind.ANODE_ON_ROD in die.accepts
    assert layout.press_zone.contains(die.slot_poses[0].position_m)
    assert not layout.press_zone.contains(layout.park_pose.position_m)


def test_rotated_tray_places_slots_along_its_own_axes():
    text = ONE_PRESS.replace("origin: {x_mm: 160, y_mm: -140, z_mm: 4, yaw_deg: 0}",
                        "origin: {x_mm: 160, y_mm: -140, z_mm: 4, yaw_deg: 90}")
    pose = parse_layout(text).resolve_slot("pellet_tray/1")[2]
    assert pose.position_m == pytest.approx((0.160, -0.120, 0.004))
    assert pose.yaw_rad == pytest.approx(math.pi / 2)


@pytest.mark.parametrize("old, new, line_of, key, words", [
    ("    pitch_x_mm: 20          # slot n", "    pitch_x_mm: -5          # slot n",
     "    pitch_x_mm: 20          # slot n", "stations.pellet_tray.pitch_x_mm",
     "outside the allowed range [2.0, 100.0] mm"),
    ("kind: die", "kind: oven", "kind: die", "stations.press_die.kind", "not one of tray"),
    ("  rows: 2\n", "  rowz: 2\n", "  rows: 2\n", "stations.pellet_tray.rowz", "unknown key"),
    ("  rows: 2\n", "  rows: 2.5\n", "  rows: 2\n", "stations.pellet_tray.rows",
     "must be an integer"),
    ("accepts: [ANODE_ON_ROD]", "accepts: [ANODE]", "accepts: [ANODE_ON_ROD]",
     "stations.anode_rack.accepts", "'ANODE' is not one of"),
    ("origin: {x_mm: 250, y_mm: 0", "origin: {x_mm: 150, y_mm: 0",
     "origin: {x_mm: 250, y_mm: 0", "stations.press_die.origin", "inside press_zone"),
    ("origin: {x_mm: 160, y_mm: 140, z_mm: 40,", "origin: {x_mm: 160, y_mm: 140, z_mm: 90,",
     "origin: {x_mm: 160, y_mm: 140, z_mm: 40,", "stations.anode_rack.origin.z_mm",
     "must not exceed safe_z_mm 100"),
    ("  max: {x_mm: 285,", "  max: {x_mm: 200,", "  max: {x_mm: 285,", "press_zone.max.x_mm",
     "must be greater than press_zone.min.x_mm"),
    ("park: {x_mm: 180, y_mm: 120,", "park: {x_mm: 250, y_mm: 0,", "park: {x_mm: 180,", "park",
     "outside press_zone"),
    ("    origin: {x_mm: 200, y_mm: -60, z_mm: 10, yaw_deg: 0}",
     "    origin: {x_mm: 200, y_mm: -60, z_mm: 10}",
     "    origin: {x_mm: 200, y_mm: -60, z_mm: 10, yaw_deg: 0}",
     "stations.inspection.origin.yaw_deg", "missing required key"),
    ("yaw_deg: 0}   # slot 0", "yaw_deg: 270}   # slot 0", "yaw_deg: 0}   # slot 0",
     "stations.pellet_tray.origin.yaw_deg", "[-180.0, 180.0] deg"),
])
def test_errors_name_line_key_and_allowed_values(old, new, line_of, key, words):
    assert old in TEXT
    with pytest.raises(StationsConfigError) as info:
        parse_layout(TEXT.replace(old, new, 1), source="stations.yaml")
    err = info.value
    assert err.line == _line_of(line_of)
    assert err.key == key
    assert str(err).startswith(f"stations.yaml:{err.line}: {key}: ")
    assert words in str(err)


def test_broken_yaml_and_empty_file():
    with pytest.raises(StationsConfigError, match="not valid YAML"):
        parse_layout("stations: [\n")
    with pytest.raises(StationsConfigError, match="empty"):
        parse_layout("")


def test_unknown_slot_references():
    layout = load_layout(CONFIG)
    with pytest.raises(UnknownStationError, match="no station 'oven'"):
        layout.resolve_slot("oven/0")
    with pytest.raises(UnknownStationError, match="slot must be 0..7"):
        layout.resolve_slot("pellet_tray/8")
    with pytest.raises(UnknownStationError, match="has 8 slots"):
        layout.resolve_slot("pellet_tray")


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(-1.0, 1.0), min_size=6, max_size=6))
def test_segment_test_agrees_with_dense_sampling(coords):
    box = ZoneBox((-0.2, -0.3, -0.1), (0.3, 0.2, 0.4))
    a, b = coords[:3], coords[3:]
    samples = [[a[i] + t / 400 * (b[i] - a[i]) for i in range(3)] for t in range(401)]
    if any(box.contains(p) for p in samples):
        assert box.intersects_segment(a, b)


def test_each_die_names_its_press_and_zone():
    layout = load_layout(CONFIG)
    assert layout.die_presses == {"press_die": "press", "press_die_b": "press_b"}
    assert layout.presses == ("press", "press_b")
    die_b = layout.resolve_slot("press_die_b")[2].position_m
    assert layout.zone_of("press_die_b").contains(die_b)
    assert not layout.press_zone.contains(die_b)
    assert layout.for_target("press_die_b").press_zone == layout.zone_of("press_die_b")
    assert layout.for_target("press_die").press_zone == layout.press_zone
    assert layout.press_of("inspection") == "press"
    assert layout.in_any_press_zone(die_b) and not layout.in_any_press_zone(
        layout.park_pose.position_m)
    # a one-press file (no press keys) keeps today's meaning
    assert parse_layout(ONE_PRESS.replace("    press: press \n", "")).presses == ("press",)


@pytest.mark.parametrize("old, new, words", [
    ("press: press_b", "press: press", None),     # same press, own zone: allowed
    ("    press_zone:\n      min: {x_mm: 105", "    zone_b:\n      min: {x_mm: 105",
     "unknown key"),
    ("origin: {x_mm: 140, y_mm: -275, z_mm: 20, yaw_deg: 0}\n    # [est]",
     "origin: {x_mm: 250, y_mm: 60, z_mm: 20, yaw_deg: 0}\n    # [est]", "inside its press_zone"),
    ("origin: {x_mm: 140, y_mm: -275, z_mm: 20", "origin: {x_mm: 100, y_mm: -275, z_mm: 20",
     "inside its press_zone"),
    ("max: {x_mm: 175, y_mm: -240, z_mm: 150}", "max: {x_mm: 175, y_mm: -100, z_mm: 150}",
     "the arm's travel from [a-z_/0-9]+ to 'press_die' at the safe height crosses"),
    ("origin: {x_mm: 160, y_mm: 140, z_mm: 40", "origin: {x_mm: 120, y_mm: 140, z_mm: 40",
     None),
    ("origin: {x_mm: 250, y_mm: 0, z_mm: 20, yaw_deg: 0}   # zone",
     "origin: {x_mm: 250, y_mm: 100, z_mm: 20, yaw_deg: 0}   # zone", "inside press_zone"),
    ("  inspection:", "    press: press_c\n  inspection:", "duplicate key"),
])
def test_two_press_layout_mistakes_are_named(old, new, words):
    text = TEXT.replace(old, new, 1)
    assert text != TEXT or new == old
    if words is None:
        assert parse_layout(text).stations["press_die_b"]
        return
    with pytest.raises(StationsConfigError, match=words):
        parse_layout(text)


def test_press_keys_only_on_a_die():
    text = TEXT.replace("    kind: spot\n", "    kind: spot\n    press: press_b\n", 1)
    with pytest.raises(StationsConfigError, match="stations.inspection.press: only a die"):
        parse_layout(text)


def test_two_presses_cannot_share_the_top_level_zone():
    text = TEXT.replace("    press_zone:\n      min: {x_mm: 105, y_mm: -310, z_mm: -20}\n"
                        "      max: {x_mm: 175, y_mm: -240, z_mm: 150}\n", "")
    text = text.replace("origin: {x_mm: 140, y_mm: -275, z_mm: 20", "origin: {x_mm: 260, "
                        "y_mm: 0, z_mm: 20")
    with pytest.raises(StationsConfigError, match="share one press zone; give 'press_die_b'"):
        parse_layout(text)


def test_zones_of_two_presses_must_not_touch():
    text = TEXT.replace("origin: {x_mm: 140, y_mm: -275, z_mm: 20", "origin: {x_mm: 250, y_mm: 60, "
                        "z_mm: 20")
    text = text.replace("min: {x_mm: 105, y_mm: -310, z_mm: -20}", "min: {x_mm: 215, y_mm: 30, "
                        "z_mm: -20}")
    text = text.replace("max: {x_mm: 175, y_mm: -240, z_mm: 150}", "max: {x_mm: 285, y_mm: 100, "
                        "z_mm: 150}")
    with pytest.raises(StationsConfigError, match="touches the press zone of 'press_die'"):
        parse_layout(text)


def test_travel_crossing_another_press_zone_is_named():
    layout = load_layout(CONFIG)
    pellet = layout.resolve_slot("pellet_tray/3")[2].position_m      # (220, -140) mm
    anode = layout.resolve_slot("anode_rack/3")[2].position_m        # (235, 140) mm
    # tray to tray passes the die of `press`: foreign when the arm serves press_b's die
    assert layout.foreign_zones_crossed(pellet, anode, "press_die_b") == ["press"]
    assert layout.foreign_zones_crossed(pellet, anode, "press_die") == []
    park = layout.park_pose.position_m
    assert layout.foreign_zones_crossed(park, pellet, "press_die") == []
