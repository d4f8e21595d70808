"""Recipe schema, material and tooling library, validation and dry run (no rclpy).

Typical use::

    from press_cell.recipes import load_recipes, recipe_segments, recipe_hash
    book = load_recipes("config/recipes.yaml")        # raises RecipeError, line-precise
    recipe = book.press["li6ps5cl_370mpa_200mg"]
    segments = recipe_segments(recipe)                  # for control/profile.py
    prediction = dry_run_press(recipe, load_library())  # force, pellet/foil figures
"""

from press_cell.recipes.dry_run import (
    AssemblyPrediction,
    PressPrediction,
    dry_run_assembly,
    dry_run_press,
)
from press_cell.recipes.errors import LibraryError, Problem, RecipeError, SourceMark
from press_cell.recipes.hashing import recipe_hash
from press_cell.recipes.library import Library, load_library
from press_cell.recipes.loader import load_recipes
from press_cell.recipes.schema import (
    AcceptanceCriteria,
    AssemblyRecipe,
    AssemblyStep,
    ImpedanceSettings,
    PressRecipe,
    PressStage,
    RecipeBook,
)
from press_cell.recipes.segments import Segment, recipe_segments
from press_cell.recipes.validation import (
    pressure_limit_pa,
    validate_assembly,
    validate_press_recipe,
)

__all__ = [
    "AcceptanceCriteria", "AssemblyPrediction", "PressPrediction", "dry_run_assembly",
    "dry_run_press", "AssemblyRecipe", "AssemblyStep", "ImpedanceSettings", "Library",
    "LibraryError", "PressRecipe", "PressStage", "Problem", "RecipeBook", "RecipeError",
    "Segment", "SourceMark", "load_library", "load_recipes", "pressure_limit_pa",
    "recipe_hash", "recipe_segments", "validate_assembly", "validate_press_recipe",
]
