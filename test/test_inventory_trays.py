"""Tray inventory: fill lists, reservations at acceptance, picks, empties, release, refill."""

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from press_cell.config_files import config_file
from press_cell.control.assembly import recipe_needs
from press_cell.control.inventory import (
    InventoryError,
    InventoryShortError,
    TrayInventory,
    fill_slot_refs,
)
from press_cell.recipes import load_recipes
from press_cell.recipes.stations import load_layout

LAYOUT = load_layout(config_file("stations.yaml"))
LI_NEEDS = recipe_needs(load_recipes().assembly["li_symmetric_cell"])   # 1 pellet, 2 anodes


def test_fill_lists_follow_the_arm_sim_convention():
    assert len(fill_slot_refs(LAYOUT, ["*"])) == sum(
        len(s.slot_poses) for s in LAYOUT.stations.values() if s.is_source)
    assert fill_slot_refs(LAYOUT, ["anode_rack"]) == [f"anode_rack/{i}" for i in range(4)]
    assert fill_slot_refs(LAYOUT, ["pellet_tray/3", "anode_rack/0", "pellet_tray/3"]) == \
        ["pellet_tray/3", "anode_rack/0"]
    assert fill_slot_refs(LAYOUT, ["none"]) == []
    with pytest.raises(InventoryError, match="no tray or rack 'press_die'"):
        fill_slot_refs(LAYOUT, ["press_die"])
    with pytest.raises(InventoryError, match="slot must be 0..3"):
        fill_slot_refs(LAYOUT, ["anode_rack/4"])


def test_the_third_li_cell_of_a_full_rack_is_refused_with_the_reason():
    inventory = TrayInventory(LAYOUT)
    first = inventory.reserve("c0", LI_NEEDS)
    second = inventory.reserve("c1", LI_NEEDS)
    assert first == {"ELECTROLYTE_PELLET": ("pellet_tray/0",),
                     "ANODE_ON_ROD": ("anode_rack/0", "anode_rack/1")}
    assert second["ANODE_ON_ROD"] == ("anode_rack/2", "anode_rack/3")
    with pytest.raises(InventoryShortError) as short:
        inventory.reserve("c2", LI_NEEDS)
    text = str(short.value)
    assert "anode_rack has 0 free" in text and "the recipe needs 2" in text
    assert "refill_trays" in text
    # all or nothing: the refused cell kept no pellet either
    assert inventory.reserved_by("c2") == []
    assert inventory.counts()["pellet_tray"].reserved == 2


def test_picks_empty_slots_and_a_failed_cell_gives_its_unused_parts_back():
    inventory = TrayInventory(LAYOUT)
    slots = inventory.reserve("c0", LI_NEEDS)
    inventory.picked(slots["ELECTROLYTE_PELLET"][0])
    inventory.found_empty("anode_rack/0")           # the arm reported EMPTY_SOURCE
    assert inventory.release("c0") == ["anode_rack/1"]
    counts = inventory.counts()
    assert counts["pellet_tray"].filled == 7 and counts["anode_rack"].filled == 3
    assert counts["anode_rack"].reserved == 0 and counts["anode_rack"].free == 3
    assert not inventory.holds_part("anode_rack/0")
    # the next cell gets the slots that still hold parts
    assert inventory.reserve("c1", LI_NEEDS)["ANODE_ON_ROD"] == ("anode_rack/1", "anode_rack/2")


def test_refill_restores_the_initial_fill_and_keeps_reservations():
    inventory = TrayInventory(LAYOUT, ["pellet_tray", "anode_rack/0", "anode_rack/1"])
    slots = inventory.reserve("c0", LI_NEEDS)
    for refs in slots.values():
        for ref in refs:
            inventory.picked(ref)
    inventory.reserve("c1", {"ELECTROLYTE_PELLET": 1})
    with pytest.raises(InventoryShortError, match="anode_rack has 0 free"):
        inventory.reserve("c2", LI_NEEDS)
    assert inventory.refill() == ["pellet_tray/0", "anode_rack/0", "anode_rack/1"]
    assert inventory.reserved_by("c1") == ["pellet_tray/1"]
    assert inventory.reserve("c2", LI_NEEDS)["ANODE_ON_ROD"] == ("anode_rack/0", "anode_rack/1")
    assert "anode_rack 2/4 filled, 2 reserved, 0 free" in inventory.summary()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["reserve", "pick", "empty", "release", "refill"]),
                          st.integers(0, 3)), max_size=40))
def test_the_book_never_reserves_a_slot_twice_or_an_empty_slot(operations):
    inventory = TrayInventory(LAYOUT, ["pellet_tray/0", "pellet_tray/1", "anode_rack"])
    for operation, n in operations:
        owner = f"c{n}"
        if operation == "reserve":
            try:
                inventory.reserve(owner, LI_NEEDS)
            except InventoryShortError:
                pass
        elif operation in ("pick", "empty"):
            mine = inventory.reserved_by(owner)
            if mine:
                (inventory.picked if operation == "pick" else inventory.found_empty)(mine[0])
        elif operation == "release":
            inventory.release(owner)
        else:
            inventory.refill()
        held = [ref for c in range(4) for ref in inventory.reserved_by(f"c{c}")]
        assert len(held) == len(set(held))
        assert all(inventory.holds_part(ref) for ref in held)
        assert all(0 <= c.reserved <= c.filled <= c.slots for c in inventory.counts().values())


@pytest.mark.timeout(10)
def test_concurrent_reservations_share_out_the_parts_exactly():
    inventory = TrayInventory(LAYOUT)
    won, lost = [], []

    def claim(owner):
        try:
            won.append(inventory.reserve(owner, LI_NEEDS))
        except InventoryShortError:
            lost.append(owner)

    threads = [threading.Thread(target=claim, args=(f"c{i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 2 and len(lost) == 4
    anodes = [ref for slots in won for ref in slots["ANODE_ON_ROD"]]
    assert sorted(anodes) == [f"anode_rack/{i}" for i in range(4)]
