"""Press plant and hydraulics: true state, specimens under the ram, gap, parameters."""

import math

import pytest

from press_cell.physics.cell_resistance import SymmetricCell
from press_cell.physics.compaction import LI6PS5CL, PowderCompact
from press_cell.physics.foil import LITHIUM, AlkaliFoil
from press_cell.physics.hydraulics import HydraulicParams, HydraulicsConfigError, InnerForceLoop
from press_cell.physics.press_plant import PlantError, PlantMode, PressPlant

DIE_13MM_M2 = math.pi * 0.0065 ** 2


def settle(plant, seconds, dt=0.01):
    for _ in range(int(round(seconds / dt))):
        plant.advance(dt)


def test_rigid_anvil_has_no_pressure_and_frame_deflection_only():
    plant = PressPlant()
    plant.set_force_setpoint(10e3, 10e3)
    settle(plant, 5.0)
    assert math.isnan(plant.pressure_pa)
    assert plant.ram_position_m == pytest.approx(10e3 / 1e8, rel=0.01)


def test_powder_bed_travel_matches_its_thinning():
    pellet = PowderCompact(LI6PS5CL, 200e-6, DIE_13MM_M2)
    mount = pellet.thickness_m
    plant = PressPlant(specimen=pellet)
    plant.set_force_setpoint(49.1e3, 10e3)
    settle(plant, 12.0)
    assert plant.pressure_pa == pytest.approx(370e6, rel=0.01)
    assert plant.specimen_thickness_m == pytest.approx(1.0e-3, abs=0.05e-3)
    expected = mount - plant.specimen_thickness_m + plant.true_force_n / 1e8
    assert plant.ram_position_m == pytest.approx(expected, rel=1e-9)
    plant.vent()
    settle(plant, 1.0)
    assert plant.specimen_thickness_m > 1.01 * 0.98e-3     # spring-back shows on unload


def test_stack_press_of_a_symmetric_cell_reaches_doux_resistance():
    pellet = PowderCompact(LI6PS5CL, 200e-6, DIE_13MM_M2)
    pellet.apply_pressure(370e6)
    pellet.apply_pressure(0.0)
    radius = 6.35e-3
    cell = SymmetricCell(pellet, math.pi * radius ** 2, AlkaliFoil(LITHIUM, 75e-6, radius),
                         AlkaliFoil(LITHIUM, 75e-6, radius))
    plant = PressPlant(specimen=cell, max_substep_s=0.01)
    plant.set_force_setpoint(25e6 * cell.loaded_area_m2, 200.0)
    settle(plant, 80.0, dt=0.05)
    assert plant.pressure_pa == pytest.approx(25e6, rel=0.01)
    assert cell.resistances().total_ohm == pytest.approx(32.0, rel=0.15)
    assert not cell.is_shorted


def test_gap_is_closed_before_force_builds():
    pellet = PowderCompact(LI6PS5CL, 200e-6, DIE_13MM_M2)
    plant = PressPlant(specimen=pellet, initial_gap_m=1e-3)
    plant.set_valve_demand(1.0)
    settle(plant, 1.5)                 # < 1 mm at 0.5 mm/s with the lag
    assert plant.true_force_n == 0.0
    settle(plant, 2.0)
    assert plant.true_force_n > 0.0
    assert plant.ram_position_m > 1e-3


def test_bleeding_below_zero_lifts_the_platen():
    plant = PressPlant(specimen=PowderCompact(LI6PS5CL, 200e-6, DIE_13MM_M2))
    plant.set_valve_demand(0.5)
    settle(plant, 3.0)
    travel = plant.ram_position_m
    plant.set_valve_demand(-1.0)
    settle(plant, 10.0)
    assert plant.true_force_n == 0.0
    assert plant.ram_position_m < 0.5 * travel
    assert plant.mode is PlantMode.VALVE


def test_max_substep_bounds_are_checked():
    with pytest.raises(PlantError, match="max_substep_s"):
        PressPlant(max_substep_s=0.5)
    with pytest.raises(PlantError, match="ramp"):
        PressPlant().set_force_setpoint(1e3, 0.0)


def test_hydraulic_parameters_validated_and_relief_defaults_to_rating():
    params = HydraulicParams(rated_force_n=20e3)
    assert params.relief_force_n == 20e3
    with pytest.raises(HydraulicsConfigError, match="valve_tau_s"):
        HydraulicParams(valve_tau_s=0.0)
    with pytest.raises(HydraulicsConfigError, match="relief_force_n"):
        HydraulicParams(rated_force_n=20e3, relief_force_n=50e3)


def test_inner_loop_demand_is_clamped_and_reference_ramps():
    loop = InnerForceLoop(HydraulicParams())
    loop.reset(0.0)
    demand = loop.update(50e3, 1e3, 0.0, 0.01, 1e8)
    assert -1.0 <= demand <= 1.0
    assert loop.reference_n == pytest.approx(10.0)
    assert loop.update(50e3, 1e9, 0.0, 0.01, 1e8) == 1.0


def test_parts_change_after_a_release_but_never_under_load():
    pellet = PowderCompact(LI6PS5CL, 200e-6, DIE_13MM_M2)
    plant = PressPlant(specimen=pellet)
    plant.set_force_setpoint(20e3, 10e3)
    settle(plant, 4.0)
    with pytest.raises(PlantError, match="under load"):
        plant.load_specimen(AlkaliFoil(LITHIUM, 100e-6, 6.35e-3))
    plant.vent()
    for _ in range(10_000):     # a released press keeps a few newtons of elastic residue
        plant.advance(0.001)
        if plant.true_force_n < 10.0:
            break
    assert 0.0 <= plant.true_force_n < 10.0
    foil = AlkaliFoil(LITHIUM, 100e-6, 6.35e-3)
    plant.load_specimen(foil)
    assert plant.specimen is foil and plant.true_force_n == 0.0
