"""Stack pressure → resistance, measured the way a lab does: simulated sweep, then circuit fit.

SCIENCE.md line 4 (Doux et al., Adv. Energy Mater. 2020, first loading of Li|Li6PS5Cl|Li,
12.7 mm electrodes): 5, 10, 15, 20, 25 MPa → 110, 50, 40, 35, 32 Ω (±15 %).
"""

import math

import pytest

from press_cell.analysis.circuit_fit import fit_cell_spectrum
from press_cell.hardware.potentiostat_sim import SimulatedPotentiostat
from press_cell.physics.cell_resistance import SymmetricCell
from press_cell.physics.compaction import LI6PS5CL, PowderCompact
from press_cell.physics.foil import LITHIUM, AlkaliFoil
from press_cell.timebase import SimulatedClock

DIE_AREA_M2 = math.pi * 13e-3 ** 2 / 4
ELECTRODE_AREA_M2 = math.pi * 12.7e-3 ** 2 / 4
DOUX_2020_OHM = {5: 110.0, 10: 50.0, 15: 40.0, 20: 35.0, 25: 32.0}


@pytest.fixture(scope="module")
def fits_by_pressure():
    pellet = PowderCompact(LI6PS5CL, 200e-6, DIE_AREA_M2)
    pellet.step(370e6, 1.0, 298.15)     # cold-pressed at 370 MPa, then unloaded
    pellet.step(0.0, 1.0, 298.15)
    cell = SymmetricCell(pellet, ELECTRODE_AREA_M2, AlkaliFoil(LITHIUM, 75e-6, 6.35e-3),
                         AlkaliFoil(LITHIUM, 75e-6, 6.35e-3))
    clock = SimulatedClock()
    potentiostat = SimulatedPotentiostat(cell, clock=clock, seed=7)
    potentiostat.connect()
    fits = {}
    for pressure_mpa in DOUX_2020_OHM:
        cell.step(pressure_mpa * 1e6, 60.0)      # each stack pressure held 60 s
        spectrum = potentiostat.measure_eis(1e6, 0.1, 10, 0.01)
        fits[pressure_mpa] = fit_cell_spectrum(spectrum, electrode_area_m2=ELECTRODE_AREA_M2,
                                               r_ext_ohm=cell.r_ext_ohm)
    return fits


@pytest.mark.parametrize("pressure_mpa", sorted(DOUX_2020_OHM))
def test_fitted_cell_resistance_matches_doux_2020(fits_by_pressure, pressure_mpa):
    fit = fits_by_pressure[pressure_mpa]
    assert fit.r_total_ohm == pytest.approx(DOUX_2020_OHM[pressure_mpa], rel=0.15)
    assert fit.kk_ok


def test_interface_asr_falls_with_stack_pressure(fits_by_pressure):
    asr_cm2 = [fits_by_pressure[p].asr_int_ohm_cm2 for p in sorted(DOUX_2020_OHM)]
    assert all(a > b for a, b in zip(asr_cm2[:-1], asr_cm2[1:], strict=True))
    low, high = fits_by_pressure[5], fits_by_pressure[25]
    assert high.asr_int_ohm_cm2 + 3 * high.asr_int_std_ohm_cm2 \
        < low.asr_int_ohm_cm2 - 3 * low.asr_int_std_ohm_cm2
    # at 25 MPa most of the cell is electrolyte (SCIENCE.md: ≈ 30 of 32 Ω)
    assert high.r_bulk_ohm / high.r_total_ohm > 0.85
