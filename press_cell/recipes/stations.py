"""Cell layout: trays, racks, the press die, the inspection spot and the press-zone volume.

The layout file (``config/stations.yaml``) speaks lab units with the unit in the key
(``x_mm``, ``yaw_deg``); ``parse_layout`` validates it and converts everything to SI once.
Every error names the file, the line, the key and what is allowed, because the YAML is
composed (not just loaded) so each value keeps its line mark.

Several presses: a die station may name the press node that owns it (``press:``, default
``press``) and its own press-zone box (``press_zone:``, default the top-level one). Checked at
load: every die lies inside its zone, the park pose outside all of them, zones of different
presses do not touch, two presses never share a zone, and the straight travel at the safe
height from every tray/rack slot and the park pose to a die never crosses another press's zone
(the arm holds only the lease of the die it goes to; see ``CellLayout.for_target``).

Slots are addressed as ``"station/index"`` (``"pellet_tray/3"``); a single-slot station may
be named alone (``"press_die"``). Tray slot ``n`` sits at ``row = n // columns``,
``column = n % columns``, offset from the origin by ``column * pitch_x`` along the tray's x
axis and ``row * pitch_y`` along its y axis (the tray frame is rotated by ``yaw_deg``).
"""

import dataclasses
import enum
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from press_cell.hardware.arm_driver import Pose

MM = 1e-3   # m per mm


class ComponentKind(enum.Enum):
    """What the arm carries."""

    ELECTROLYTE_PELLET = "ELECTROLYTE_PELLET"
    ANODE_ON_ROD = "ANODE_ON_ROD"
    CATHODE = "CATHODE"
    SPACER = "SPACER"


class StationKind(enum.Enum):
    """What a station is; trays and racks are sources, the die is the press's target."""

    TRAY = "tray"
    RACK = "rack"
    DIE = "die"
    SPOT = "spot"


class StationsConfigError(ValueError):
    """The layout file is invalid; the message names file, line, key and the allowed values."""

    def __init__(self, source: str, line: int, key: str, message: str) -> None:
        super().__init__(f"{source}:{line}: {key}: {message}")
        self.source = source
        self.line = line
        self.key = key


class UnknownStationError(LookupError):
    """A slot reference names no station or no slot of the layout."""


@dataclass(frozen=True)
class ZoneBox:
    """An axis-aligned box in the arm base frame; corners in m."""

    min_m: tuple
    max_m: tuple

    def contains(self, position_m) -> bool:
        """Return whether a point (m) is inside the box (faces included)."""
        p = np.asarray(position_m, dtype=float)
        return bool(np.all(p >= self.min_m) and np.all(p <= self.max_m))

    def intersects_segment(self, start_m, end_m) -> bool:
        """Return whether the straight segment from ``start_m`` to ``end_m`` (m) touches the box."""
        a = np.asarray(start_m, dtype=float)
        d = np.asarray(end_m, dtype=float) - a
        lo, hi = np.asarray(self.min_m), np.asarray(self.max_m)
        t0, t1 = 0.0, 1.0
        for axis in range(3):
            if abs(d[axis]) < 1e-15:
                if a[axis] < lo[axis] or a[axis] > hi[axis]:
                    return False
                continue
            ta = (lo[axis] - a[axis]) / d[axis]
            tb = (hi[axis] - a[axis]) / d[axis]
            t0, t1 = max(t0, min(ta, tb)), min(t1, max(ta, tb))
            if t0 > t1:
                return False
        return True


@dataclass(frozen=True)
class Station:
    """A place the arm picks from or places into, with the tool pose of each slot."""

    name: str
    kind: StationKind
    accepts: frozenset            # of ComponentKind
    slot_poses: tuple             # of Pose, index = slot number

    @property
    def is_source(self) -> bool:
        """Return whether parts are stored here (tray or rack)."""
        return self.kind in (StationKind.TRAY, StationKind.RACK)


@dataclass(frozen=True)
class CellLayout:
    """The validated cell layout in SI units."""

    frame_id: str
    stations: dict                # name -> Station
    safe_z_m: float               # travel height, m
    approach_height_m: float      # start of the slow final approach above a slot, m
    park_pose: Pose               # rest pose outside the press zone
    press_zone: ZoneBox           # the top-level zone (the first press's die)
    source: str = "<string>"      # file the layout came from
    die_presses: dict = field(default_factory=dict)   # die station -> press node name
    die_zones: dict = field(default_factory=dict)     # die station -> its ZoneBox

    @property
    def presses(self) -> tuple:
        """Return the press node names that own a die, in layout order (no repeats)."""
        return tuple(dict.fromkeys(self.die_presses.values()))

    def zone_of(self, station: str) -> ZoneBox:
        """Return the press zone of a die station (the top-level zone for any other station)."""
        return self.die_zones.get(str(station).partition("/")[0], self.press_zone)

    def press_of(self, station: str) -> str:
        """Return the press node owning ``station``'s zone (a die's own press, else the first)."""
        name = str(station).partition("/")[0]
        if name in self.die_presses:
            return self.die_presses[name]
        for die, zone in self.die_zones.items():
            if zone == self.press_zone:
                return self.die_presses[die]
        return self.presses[0] if self.presses else "press"

    def in_any_press_zone(self, position_m) -> bool:
        """Return whether a point (m) lies in the press zone of any die."""
        zones = set(self.die_zones.values()) | {self.press_zone}
        return any(zone.contains(position_m) for zone in zones)

    def foreign_zones_crossed(self, start_m, end_m, station: str) -> list:
        """Return the presses, other than ``station``'s, whose zone the travel crosses.

        The travel is the straight line from ``start_m`` to ``end_m`` (m) at the safe height,
        as the placement sequence moves between stations.
        """
        own = self.press_of(station)
        a = (start_m[0], start_m[1], self.safe_z_m)
        b = (end_m[0], end_m[1], self.safe_z_m)
        return sorted({self.die_presses[die] for die, zone in self.die_zones.items()
                       if self.die_presses[die] != own and zone.intersects_segment(a, b)})

    def for_target(self, station: str) -> "CellLayout":
        """Return this layout with ``press_zone`` = the zone of the die ``station`` names.

        The placement sequence guards ``press_zone`` only; the load-time path check makes sure
        no travel to this die crosses another press's zone.
        """
        return dataclasses.replace(self, press_zone=self.zone_of(station))

    def resolve_slot(self, ref: str) -> tuple:
        """Return ``(station, slot_index, pose)`` of ``"station/index"`` or ``"station"``."""
        name, _, index_text = str(ref).partition("/")
        station = self.stations.get(name)
        if station is None:
            raise UnknownStationError(
                f"no station {name!r} in {self.source}; stations: {sorted(self.stations)}")
        if not index_text:
            if len(station.slot_poses) != 1:
                raise UnknownStationError(
                    f"{name!r} has {len(station.slot_poses)} slots; name one as '{name}/<n>'")
            return station, 0, station.slot_poses[0]
        try:
            index = int(index_text)
        except ValueError:
            index = -1
        if not 0 <= index < len(station.slot_poses):
            raise UnknownStationError(
                f"{ref!r}: slot must be 0..{len(station.slot_poses) - 1} for {name!r}")
        return station, index, station.slot_poses[index]


# key -> (low, high, unit text); ranges a Dobot-sized cell can use [est]
_RANGES = {
    "x_mm": (-400.0, 400.0, "mm"),
    "y_mm": (-400.0, 400.0, "mm"),
    "z_mm": (-150.0, 250.0, "mm"),
    "yaw_deg": (-180.0, 180.0, "deg"),
    "safe_z_mm": (0.0, 250.0, "mm"),
    "approach_height_mm": (5.0, 150.0, "mm"),
    "pitch_x_mm": (2.0, 100.0, "mm"),
    "pitch_y_mm": (2.0, 100.0, "mm"),
    "rows": (1, 24, "slots"),
    "columns": (1, 24, "slots"),
}
_TOP_KEYS = {"frame_id", "safe_z_mm", "approach_height_mm", "park", "stations", "press_zone"}
_STATION_KEYS = {"kind", "accepts", "origin", "rows", "columns", "pitch_x_mm", "pitch_y_mm",
                 "press", "press_zone"}
_POSE_KEYS = ("x_mm", "y_mm", "z_mm", "yaw_deg")
_POINT_KEYS = ("x_mm", "y_mm", "z_mm")


class _Reader:
    """Typed access to a composed YAML tree, raising errors that carry line marks."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._loader = yaml.SafeLoader("")

    def error(self, node: yaml.Node, key: str, message: str) -> StationsConfigError:
        return StationsConfigError(self.source, node.start_mark.line + 1, key or "<document>",
                                   message)

    def construct(self, node: yaml.Node):
        """Return the node's Python value, or None when its explicit tag does not fit its text.

        PyYAML raises ValueError/KeyError/ConstructorError for ``!!float abc``, ``!!bool maybe``
        or ``!!timestamp 2020-02-30`` (found by test_fuzz_config); the callers then report the
        value as not what the key needs.
        """
        try:
            return self._loader.construct_object(node)
        except (yaml.YAMLError, ValueError, KeyError, TypeError, OverflowError):
            return None

    def mapping(self, node: yaml.Node, key: str, allowed: set) -> dict:
        if not isinstance(node, yaml.MappingNode):
            raise self.error(node, key, "must be a mapping")
        out = {}
        for key_node, value_node in node.value:
            name = str(self.construct(key_node) if isinstance(key_node, yaml.ScalarNode)
                       else key_node.value)
            if name not in allowed:
                raise self.error(key_node, f"{key}.{name}".lstrip("."),
                                 f"unknown key; allowed: {', '.join(sorted(allowed))}")
            if name in out:
                raise self.error(key_node, f"{key}.{name}".lstrip("."), "duplicate key")
            out[name] = value_node
        return out

    def require(self, items: dict, parent: yaml.Node, key: str, name: str) -> yaml.Node:
        if name not in items:
            raise self.error(parent, f"{key}.{name}".lstrip("."), "missing required key")
        return items[name]

    def number(self, node: yaml.Node, key: str, name: str) -> float:
        low, high, unit = _RANGES[name]
        value = self.construct(node) if isinstance(node, yaml.ScalarNode) else None
        want_int = isinstance(low, int)
        ok_type = isinstance(value, int) if want_int else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok_type or not math.isfinite(value):
            raise self.error(node, key, f"must be {'an integer' if want_int else 'a number'} "
                                        f"in [{low}, {high}] {unit}, got {node.value!r}")
        if not low <= value <= high:
            raise self.error(node, key, f"{value} is outside the allowed range "
                                        f"[{low}, {high}] {unit}")
        return value

    def string(self, node: yaml.Node, key: str) -> str:
        if not isinstance(node, yaml.ScalarNode) or not node.value:
            raise self.error(node, key, "must be a non-empty string")
        return str(node.value)

    def point(self, node: yaml.Node, key: str, names: tuple) -> tuple:
        items = self.mapping(node, key, set(names))
        return tuple(self.number(self.require(items, node, key, n), f"{key}.{n}", n)
                     for n in names)


def _parse_zone(reader: _Reader, node: yaml.Node, key: str) -> ZoneBox:
    items = reader.mapping(node, key, {"min", "max"})
    zmin = reader.point(reader.require(items, node, key, "min"), f"{key}.min", _POINT_KEYS)
    zmax_node = reader.require(items, node, key, "max")
    zmax = reader.point(zmax_node, f"{key}.max", _POINT_KEYS)
    for axis, (lo, hi) in zip(_POINT_KEYS, zip(zmin, zmax, strict=True), strict=True):
        if not hi > lo:
            raise reader.error(zmax_node, f"{key}.max.{axis}",
                               f"{hi} must be greater than {key}.min.{axis} = {lo}")
    return ZoneBox(tuple(v * MM for v in zmin), tuple(v * MM for v in zmax))


def _boxes_touch(a: ZoneBox, b: ZoneBox) -> bool:
    return bool(all(lo_a <= hi_b and lo_b <= hi_a for lo_a, hi_a, lo_b, hi_b
                    in zip(a.min_m, a.max_m, b.min_m, b.max_m, strict=True)))


def _pose_from_mm(x_mm: float, y_mm: float, z_mm: float, yaw_deg: float) -> Pose:
    return Pose.from_xyz_yaw(x_mm * MM, y_mm * MM, z_mm * MM, math.radians(yaw_deg))


def _parse_station(reader: _Reader, name: str, node: yaml.Node) -> tuple:
    key = f"stations.{name}"
    items = reader.mapping(node, key, _STATION_KEYS)
    kind_node = reader.require(items, node, key, "kind")
    try:
        kind = StationKind(reader.string(kind_node, f"{key}.kind"))
    except ValueError:
        raise reader.error(kind_node, f"{key}.kind", f"{kind_node.value!r} is not one of "
                           f"{', '.join(k.value for k in StationKind)}") from None
    accepts_node = reader.require(items, node, key, "accepts")
    if not isinstance(accepts_node, yaml.SequenceNode) or not accepts_node.value:
        raise reader.error(accepts_node, f"{key}.accepts", "must be a non-empty list of "
                           f"{', '.join(k.value for k in ComponentKind)}")
    accepts = set()
    for item in accepts_node.value:
        try:
            accepts.add(ComponentKind(reader.string(item, f"{key}.accepts")))
        except ValueError:
            raise reader.error(item, f"{key}.accepts", f"{item.value!r} is not one of "
                               f"{', '.join(k.value for k in ComponentKind)}") from None
    origin_node = reader.require(items, node, key, "origin")
    origin = reader.point(origin_node, f"{key}.origin", _POSE_KEYS)
    grid = {}
    for count_name, pitch_name in (("columns", "pitch_x_mm"), ("rows", "pitch_y_mm")):
        count = 1
        if count_name in items:
            if kind not in (StationKind.TRAY, StationKind.RACK):
                raise reader.error(items[count_name], f"{key}.{count_name}",
                                   f"only trays and racks have slots; {kind.value} has one")
            count = int(reader.number(items[count_name], f"{key}.{count_name}", count_name))
        pitch = 0.0
        if count > 1:
            pitch = reader.number(reader.require(items, node, key, pitch_name),
                                  f"{key}.{pitch_name}", pitch_name)
        elif pitch_name in items:
            raise reader.error(items[pitch_name], f"{key}.{pitch_name}",
                               f"not used with {count_name} = 1; remove it")
        grid[count_name] = (count, pitch)
    (columns, pitch_x), (rows, pitch_y) = grid["columns"], grid["rows"]
    x0, y0, z0, yaw_deg = origin
    c, s = math.cos(math.radians(yaw_deg)), math.sin(math.radians(yaw_deg))
    poses = []
    for n in range(rows * columns):
        dx, dy = (n % columns) * pitch_x, (n // columns) * pitch_y
        poses.append(_pose_from_mm(x0 + c * dx - s * dy, y0 + s * dx + c * dy, z0, yaw_deg))
    station = Station(name, kind, frozenset(accepts), tuple(poses))
    return station, origin_node


def parse_layout(text: str, source: str = "<string>") -> CellLayout:
    """Validate a layout document and return it in SI; raise ``StationsConfigError``."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 0
        if isinstance(exc, yaml.reader.ReaderError):    # a control character: its line
            line = text.count("\n", 0, max(exc.position, 0)) + 1
        raise StationsConfigError(source, line, "<document>", f"not valid YAML: {exc}") from exc
    if root is None:
        raise StationsConfigError(source, 1, "<document>", "the layout file is empty")
    reader = _Reader(source)
    top = reader.mapping(root, "", _TOP_KEYS)
    frame_id = reader.string(reader.require(top, root, "", "frame_id"), "frame_id")
    safe_node = reader.require(top, root, "", "safe_z_mm")
    safe_z_mm = reader.number(safe_node, "safe_z_mm", "safe_z_mm")
    approach_mm = reader.number(reader.require(top, root, "", "approach_height_mm"),
                                "approach_height_mm", "approach_height_mm")
    park_node = reader.require(top, root, "", "park")
    park = _pose_from_mm(*reader.point(park_node, "park", _POSE_KEYS))

    zone_node = reader.require(top, root, "", "press_zone")
    zone = _parse_zone(reader, zone_node, "press_zone")
    if zone.contains(park.position_m):
        raise reader.error(park_node, "park", "the park pose must lie outside press_zone")

    stations_node = reader.require(top, root, "", "stations")
    if not isinstance(stations_node, yaml.MappingNode) or not stations_node.value:
        raise reader.error(stations_node, "stations", "must be a non-empty mapping")
    names = {str(k.value) for k, _ in stations_node.value}
    station_items = reader.mapping(stations_node, "stations", names)
    stations = {}
    die_presses, die_zones, die_nodes = {}, {}, {}
    for name, node in station_items.items():
        station, origin_node = _parse_station(reader, name, node)
        items = reader.mapping(node, f"stations.{name}", _STATION_KEYS)
        for extra in ("press", "press_zone"):
            if extra in items and station.kind != StationKind.DIE:
                raise reader.error(items[extra], f"stations.{name}.{extra}",
                                   "only a die station belongs to a press")
        if station.kind == StationKind.DIE:
            die_presses[name] = (reader.string(items["press"], f"stations.{name}.press")
                                 if "press" in items else "press")
            die_zones[name] = (_parse_zone(reader, items["press_zone"],
                                           f"stations.{name}.press_zone")
                               if "press_zone" in items else zone)
            die_nodes[name] = items.get("press_zone", node)
            if die_zones[name].contains(park.position_m):
                raise reader.error(die_nodes[name], f"stations.{name}.press_zone",
                                   "the park pose must lie outside every press zone")
        top_slot_mm = max(p.z_m for p in station.slot_poses) / MM
        if top_slot_mm + approach_mm > safe_z_mm:
            safe_line = safe_node.start_mark.line + 1
            raise reader.error(origin_node, f"stations.{name}.origin.z_mm",
                               f"{top_slot_mm:g} + approach_height_mm {approach_mm:g} must not "
                               f"exceed safe_z_mm {safe_z_mm:g} (line {safe_line})")
        if station.kind == StationKind.DIE and \
                not die_zones[name].contains(station.slot_poses[0].position_m):
            own = "its press_zone" if "press_zone" in items else "press_zone"
            raise reader.error(origin_node, f"stations.{name}.origin",
                               f"the die must lie inside {own}, or the zone interlock "
                               "would not guard it")
        stations[name] = station
    if not any(s.kind == StationKind.DIE for s in stations.values()):
        raise reader.error(stations_node, "stations", "the layout needs a station of kind 'die'")
    _check_presses(reader, stations, die_presses, die_zones, die_nodes, park, safe_z_mm * MM)
    return CellLayout(frame_id, stations, safe_z_mm * MM, approach_mm * MM, park, zone, source,
                      die_presses, die_zones)


def _check_presses(reader, stations, die_presses, die_zones, die_nodes, park, safe_z_m):
    """Check that the presses' zones stay apart and no travel to a die crosses another's."""
    dies = list(die_presses)
    for i, a in enumerate(dies):
        for b in dies[i + 1:]:
            if die_presses[a] == die_presses[b]:
                continue
            if die_zones[a] == die_zones[b]:
                raise reader.error(die_nodes[b], f"stations.{b}",
                                   f"dies of two presses ({die_presses[a]!r}, "
                                   f"{die_presses[b]!r}) share one press zone; give {b!r} "
                                   "its own press_zone")
            if _boxes_touch(die_zones[a], die_zones[b]):
                raise reader.error(die_nodes[b], f"stations.{b}.press_zone",
                                   f"touches the press zone of {a!r} (press "
                                   f"{die_presses[a]!r}); zones of two presses must be apart")
    for die in dies:
        target = stations[die].slot_poses[0].position_m
        starts = [("park", park.position_m)] + [
            (f"{name}/{n}", pose.position_m) for name, station in stations.items()
            if station.is_source and station.accepts & stations[die].accepts
            for n, pose in enumerate(station.slot_poses)]
        for other in dies:
            if die_presses[other] == die_presses[die]:
                continue
            for label, start in starts:
                if die_zones[other].intersects_segment((start[0], start[1], safe_z_m),
                                                       (target[0], target[1], safe_z_m)):
                    raise reader.error(die_nodes[other], f"stations.{other}.press_zone",
                                       f"the arm's travel from {label} to {die!r} at the "
                                       f"safe height crosses this zone of press "
                                       f"{die_presses[other]!r}; move the stations apart")


def load_layout(path) -> CellLayout:
    """Read and validate a layout file (see ``parse_layout``)."""
    path = Path(path)
    return parse_layout(path.read_text(encoding="utf-8"), source=str(path))
