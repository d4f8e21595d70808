"""Tray inventory: which tray and rack slots hold a part, and which cell each part is kept for.

Pure core of the coordinator's part book-keeping (no rclpy). The life of a slot:

* ``refill`` (and the initial fill) marks slots as holding a part;
* ``reserve`` keeps, for one cell, the parts its recipe will pick (lowest free slot first), at
  goal acceptance, so a queue never runs into an empty slot half-way through a cell; a cell
  that cannot be served raises ``InventoryShortError`` naming the tray, the parts left, the
  parts needed and how to refill;
* ``picked`` after the arm took the part (the slot is empty, the reservation shrinks);
* ``found_empty`` when the arm reported EMPTY_SOURCE (the slot is empty; the book was wrong);
* ``release`` gives a cell's reserved-but-unused slots back (cancel, failure, end of the cell).

Fill lists use the convention of the simulated arm's ``sim_filled_slots``: ``"*"`` every source
slot, ``"station"`` all slots of that tray or rack, ``"station/n"`` one slot, ``"none"`` nothing.
Slot references are ``"station/index"``. Thread-safe: one lock guards the book.
"""

import threading
from dataclasses import dataclass

from press_cell.recipes.stations import CellLayout

REFILL_HINT = ("refill the trays, then call the coordinator's ~/refill_trays service "
               "(ros2 service call <ns>/coordinator/refill_trays ...)")


class InventoryError(ValueError):
    """A fill list or slot reference does not name a tray or rack slot of the layout."""


class InventoryShortError(RuntimeError):
    """A cell needs more parts than the trays still hold (free, unreserved)."""

    def __init__(self, kind: str, stations: tuple, left: int, needed: int) -> None:
        super().__init__(f"not enough {kind} parts: {'+'.join(stations)} has {left} free "
                         f"(unreserved) part(s), the recipe needs {needed}; {REFILL_HINT}")
        self.kind = kind
        self.stations = stations
        self.left = left
        self.needed = needed


def fill_slot_refs(layout: CellLayout, entries) -> list:
    """Return the slot references (``"station/n"``) a fill list names, in layout order.

    Raise ``InventoryError`` for an entry that names no tray/rack or no slot of one.
    """
    sources = [name for name, station in layout.stations.items() if station.is_source]
    refs = []
    for entry in entries:
        entry = str(entry).strip()
        if entry in ("none", ""):
            continue
        if entry == "*":
            names = sources
        else:
            names = [entry.partition("/")[0]]
        for name in names:
            if name not in sources:
                raise InventoryError(f"fill entry {entry!r}: no tray or rack {name!r}; "
                                     f"sources: {sorted(sources)}")
            count = len(layout.stations[name].slot_poses)
            if "/" in entry:
                index_text = entry.partition("/")[2]
                if not index_text.isdigit() or not int(index_text) < count:
                    raise InventoryError(f"fill entry {entry!r}: slot must be 0..{count - 1} "
                                         f"for {name!r}")
                indices = [int(index_text)]
            else:
                indices = range(count)
            refs += [f"{name}/{i}" for i in indices if f"{name}/{i}" not in refs]
    return refs


@dataclass(frozen=True)
class TrayCount:
    """How one tray or rack stands: slots, parts in it, parts kept for queued cells."""

    slots: int
    filled: int
    reserved: int

    @property
    def free(self) -> int:
        """Return the parts that no cell has reserved yet."""
        return self.filled - self.reserved


class TrayInventory:
    """The part book of a cell's trays and racks (thread-safe)."""

    def __init__(self, layout: CellLayout, filled_entries=("*",)) -> None:
        """Start with the slots ``filled_entries`` names holding a part (see ``fill_slot_refs``)."""
        self._layout = layout
        self._lock = threading.Lock()
        self._slots = {name: len(station.slot_poses)
                       for name, station in layout.stations.items() if station.is_source}
        self._accepts = {name: {kind.value for kind in layout.stations[name].accepts}
                         for name in self._slots}
        self._filled = set(fill_slot_refs(layout, filled_entries))
        self._reserved = {}          # slot ref -> owner
        self.fill_entries = tuple(filled_entries)

    # ----------------------------------------------------------------- queries
    def sources_for(self, kind: str) -> tuple:
        """Return the trays/racks that hold parts of ``kind`` (layout order)."""
        return tuple(name for name, kinds in self._accepts.items() if kind in kinds)

    def counts(self) -> dict:
        """Return ``{station: TrayCount}`` for every tray and rack."""
        with self._lock:
            return {name: TrayCount(slots,
                                    sum(1 for ref in self._filled if _station(ref) == name),
                                    sum(1 for ref in self._reserved if _station(ref) == name))
                    for name, slots in self._slots.items()}

    def reserved_by(self, owner: str) -> list:
        """Return the slots kept for ``owner``."""
        with self._lock:
            return sorted((ref for ref, who in self._reserved.items() if who == owner),
                          key=_order)

    def holds_part(self, ref: str) -> bool:
        """Return whether the book says slot ``ref`` holds a part."""
        with self._lock:
            return ref in self._filled

    # ----------------------------------------------------------------- changes
    def reserve(self, owner: str, needs: dict) -> dict:
        """Keep parts for ``owner``: ``needs`` = {component kind: count}; return {kind: slots}.

        All or nothing: raise ``InventoryShortError`` (and keep nothing) when a kind is short,
        ``InventoryError`` when no tray of the layout holds a kind at all.
        """
        with self._lock:
            chosen = {}
            taken = set()
            for kind, needed in needs.items():
                if needed <= 0:
                    continue
                stations = self.sources_for(kind)
                if not stations:
                    raise InventoryError(f"no tray or rack of {self._layout.source} holds "
                                         f"{kind} parts")
                free = [ref for ref in sorted(self._filled, key=_order)
                        if _station(ref) in stations and ref not in self._reserved
                        and ref not in taken]
                free.sort(key=lambda ref: (stations.index(_station(ref)), _order(ref)))
                if len(free) < needed:
                    raise InventoryShortError(kind, stations, len(free), needed)
                chosen[kind] = tuple(free[:needed])
                taken.update(chosen[kind])
            for ref in taken:
                self._reserved[ref] = owner
            return chosen

    def picked(self, ref: str) -> None:
        """Record that the arm took the part out of ``ref`` (the slot is now empty)."""
        with self._lock:
            self._filled.discard(ref)
            self._reserved.pop(ref, None)

    def found_empty(self, ref: str) -> None:
        """Record that the arm found ``ref`` empty (EMPTY_SOURCE): no part there any more."""
        self.picked(ref)

    def release(self, owner: str) -> list:
        """Give ``owner``'s reserved, unpicked slots back; return them."""
        with self._lock:
            refs = [ref for ref, who in self._reserved.items() if who == owner]
            for ref in refs:
                del self._reserved[ref]
            return sorted(refs, key=_order)

    def refill(self, entries=None) -> list:
        """Mark the slots ``entries`` names (default: the initial fill list) as holding a part.

        Reservations stay. Return the slots that were empty and are now filled.
        """
        refs = fill_slot_refs(self._layout, self.fill_entries if entries is None else entries)
        with self._lock:
            added = [ref for ref in refs if ref not in self._filled]
            self._filled.update(refs)
            return added

    def summary(self) -> str:
        """Return one line per tray: ``pellet_tray 6/8 filled, 2 reserved, 4 free``."""
        return "; ".join(f"{name} {c.filled}/{c.slots} filled, {c.reserved} reserved, "
                         f"{c.free} free" for name, c in self.counts().items())


def _station(ref: str) -> str:
    return ref.partition("/")[0]


def _order(ref: str) -> tuple:
    name, _, index = ref.partition("/")
    return name, int(index or 0)
