"""Stable identity of a recipe: sha256 over its canonical SI content.

The hash covers every field that changes what the press or the coordinator does (name,
material, tooling, press, every stage, band, rates, limits, part data, steps, criteria). It
leaves out the free-text ``description`` and the source line marks, so re-wording or moving a
recipe in the file keeps its hash. Floats are written with 12 significant digits so the same
lab input always gives the same text. Press certificates and cell records carry this hash.
"""

import dataclasses
import hashlib
import json

HASH_SCHEME = "press_cell.recipe.v1"
_SKIPPED_FIELDS = ("description", "marks")


def _canonical(value):
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {"__type__": type(value).__name__}
        for item in dataclasses.fields(value):
            if item.name not in _SKIPPED_FIELDS:
                out[item.name] = _canonical(getattr(value, item.name))
        return out
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return format(value, ".12g")
    raise TypeError(f"cannot hash a {type(value).__name__}; recipes hold numbers, text, lists")


def canonical_text(recipe) -> str:
    """Return the canonical JSON text the hash is computed over."""
    body = {"scheme": HASH_SCHEME, "recipe": _canonical(recipe)}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def recipe_hash(recipe) -> str:
    """Return the sha256 hex digest of a PressRecipe or AssemblyRecipe's canonical content."""
    return hashlib.sha256(canonical_text(recipe).encode("ascii")).hexdigest()
