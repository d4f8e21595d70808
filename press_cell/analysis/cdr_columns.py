"""Decode many CDR messages of one type into columns (numpy arrays), fast.

Telemetry messages of one topic almost always share one byte layout (same frame id, empty fault
message), so a batch of them is one fixed-stride record array: numpy reads every field with a
single ``frombuffer`` instead of one Python object per message. Messages whose layout differs
(another string length, a sequence) are decoded one by one with rosbags and merged back in order,
so the result is always identical to ``typestore.deserialize_cdr`` field by field.

Columns are flattened with dotted names (``header.stamp.sec``, ``wrench.force.x``). Sequences
and arrays are not turned into columns (use ``Bag.deserialize`` for spectra).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
from rosbags.interfaces import Nodetype
from rosbags.typesys.store import Typestore

_PRIMITIVES = {
    "bool": "b1", "byte": "u1", "char": "u1", "uint8": "u1", "int8": "i1",
    "uint16": "u2", "int16": "i2", "uint32": "u4", "int32": "i4",
    "uint64": "u8", "int64": "i8", "float32": "f4", "float64": "f8",
}


class LayoutNotFixed(Exception):
    """The message type has a sequence or array, so it has no fixed-stride fast path."""


@dataclass(frozen=True)
class _Leaf:
    """One column: a primitive or a string field of the flattened message."""

    name: str
    kind: str  # numpy kind code from _PRIMITIVES, or "string"

    @property
    def width(self) -> int:
        """Return the size on the wire, bytes (primitives only)."""
        return int(self.kind[1])

    @property
    def dtype(self) -> np.dtype:
        """Return the little-endian numpy dtype (primitives only)."""
        return np.dtype("?" if self.kind == "b1" else "<" + self.kind)


def leaves(typestore: Typestore, msgtype: str, prefix: str = "") -> list[_Leaf]:
    """Return the flattened primitive and string fields of ``msgtype`` in wire order."""
    out: list[_Leaf] = []
    for name, (node, detail) in typestore.fielddefs[msgtype][1]:
        full = f"{prefix}{name}"
        if node == Nodetype.BASE:
            base = detail[0]
            out.append(_Leaf(full, "string" if base in ("string", "wstring")
                             else _PRIMITIVES[base]))
        elif node == Nodetype.NAME:
            out.extend(leaves(typestore, detail, f"{full}."))
        else:
            raise LayoutNotFixed(f"{msgtype}.{full} is an array or sequence")
    return out


def _layout(sample: bytes, fields: list[_Leaf]) -> tuple[list[int], list[int]]:
    """Walk one message: return each leaf's offset and the offsets of string length words."""
    pos = 4  # after the encapsulation header; alignment counts from here
    offsets, length_words = [], []
    for leaf in fields:
        if leaf.kind == "string":
            pos += (-(pos - 4)) % 4
            length_words.append(pos)
            (size,) = np.frombuffer(sample, "<u4", 1, pos)
            offsets.append(pos + 4)
            pos += 4 + int(size)
        else:
            width = leaf.width
            pos += (-(pos - 4)) % width
            offsets.append(pos)
            pos += width
    return offsets, length_words


def _fallback_values(typestore: Typestore, raw: bytes, msgtype: str, fields: list[_Leaf]) -> list:
    """Decode one message with rosbags and return its leaf values."""
    msg = typestore.deserialize_cdr(raw, msgtype)
    values = []
    for leaf in fields:
        obj = msg
        for part in leaf.name.split("."):
            obj = getattr(obj, part)
        values.append(obj)
    return values


def decode_columns(typestore: Typestore, msgtype: str, raws: list[bytes],
                   undecodable: list | None = None) -> dict[str, np.ndarray]:
    """Decode ``raws`` (CDR messages of ``msgtype``) into ``{dotted field: array}``.

    Numeric fields become arrays of their ROS type (bool as numpy bool); strings become object
    arrays of ``str``. Raises ``LayoutNotFixed`` for types with arrays or sequences.

    A message that does not decode (a damaged bag: a string length beyond the message, a cut
    message) raises rosbags' error, unless ``undecodable`` is a list: then ``(index, reason)``
    is appended to it and the row keeps zeros / empty text for the caller to drop.
    """
    fields = leaves(typestore, msgtype)
    count = len(raws)
    columns: dict[str, np.ndarray] = {}
    for leaf in fields:
        if leaf.kind == "string":
            columns[leaf.name] = np.empty(count, dtype=object)
        else:
            columns[leaf.name] = np.empty(count, dtype=leaf.dtype)
    if count == 0:
        return columns
    lengths = np.fromiter(map(len, raws), dtype=np.int64, count=count)
    groups: dict[int, list[int]] = defaultdict(list)
    for length in np.unique(lengths):
        groups[int(length)] = np.flatnonzero(lengths == length).tolist()
    slow: list[int] = []
    for length, index in groups.items():
        first = raws[index[0]]
        if first[1] != 1:  # big-endian CDR: rare; decode with rosbags
            slow.extend(index)
            continue
        try:
            offsets, length_words = _layout(first, fields)
        except ValueError:          # the group's first message is damaged: one by one
            slow.extend(index)
            continue
        if any(o + (f.width if f.kind != "string" else 0) > length
               for o, f in zip(offsets, fields, strict=True)):
            slow.extend(index)      # the layout reads past the message: damaged, one by one
            continue
        block = np.frombuffer(b"".join(raws[i] for i in index), dtype=np.uint8)
        block = block.reshape(len(index), length)
        same = np.ones(len(index), dtype=bool)
        for word in length_words:
            same &= (block[:, word:word + 4] == block[0, word:word + 4]).all(axis=1)
        rows = np.asarray(index)
        if not same.all():
            slow.extend(rows[~same].tolist())
            block, rows = block[same], rows[same]
        for leaf, offset in zip(fields, offsets, strict=True):
            if leaf.kind == "string":
                size = int(np.frombuffer(first, "<u4", 1, offset - 4)[0])
                text = block[:, offset:offset + max(size - 1, 0)].copy()
                col = columns[leaf.name]
                if size <= 1:
                    col[rows] = ""
                elif (text == text[0]).all():  # the usual case: one frame id for all
                    col[rows] = bytes(text[0]).decode("utf-8", "replace")
                else:
                    values = text.view(f"S{size - 1}").ravel()
                    col[rows] = np.char.decode(values, "utf-8", "replace").astype(object)
            else:
                raw_col = np.ascontiguousarray(block[:, offset:offset + leaf.width])
                columns[leaf.name][rows] = raw_col.view(leaf.dtype).ravel()
    for i in slow:
        try:
            values = _fallback_values(typestore, raws[i], msgtype, fields)
        except Exception as exc:    # noqa: BLE001 - rosbags raises several types on damage
            if undecodable is None:
                raise
            undecodable.append((i, f"{type(exc).__name__}: {exc}"))
            for leaf in fields:
                columns[leaf.name][i] = "" if leaf.kind == "string" else 0
            continue
        for leaf, value in zip(fields, values, strict=True):
            columns[leaf.name][i] = value
    return columns


def field_types(typestore: Typestore, msgtype: str) -> dict[str, str]:
    """Return ``{dotted field: ROS base type}`` for the columns ``decode_columns`` yields."""
    out: dict[str, str] = {}

    def walk(typename: str, prefix: str) -> None:
        for name, (node, detail) in typestore.fielddefs[typename][1]:
            if node == Nodetype.BASE:
                out[f"{prefix}{name}"] = detail[0]
            elif node == Nodetype.NAME:
                walk(detail, f"{prefix}{name}.")

    walk(msgtype, "")
    return out


def encode_rows(typestore: Typestore, msgtype: str, template: object,
                columns: dict[str, np.ndarray]) -> list[bytes]:
    """Serialise many messages that differ from ``template`` only in numeric fields.

    ``columns`` maps dotted primitive field names to arrays of equal length; every other field
    (strings included) keeps the template's value. The inverse of ``decode_columns``: used to
    write long synthetic recordings quickly. Raises ``KeyError`` for a name that is not a
    primitive field and ``LayoutNotFixed`` for types with arrays or sequences.
    """
    fields = leaves(typestore, msgtype)
    sample = bytes(typestore.serialize_cdr(template, msgtype))
    offsets, _ = _layout(sample, fields)
    where = {leaf.name: (leaf, offset) for leaf, offset in zip(fields, offsets, strict=True)}
    count = len(next(iter(columns.values()))) if columns else 0
    block = np.tile(np.frombuffer(sample, dtype=np.uint8), (count, 1))
    for name, values in columns.items():
        leaf, offset = where[name]
        if leaf.kind == "string":
            raise KeyError(f"{name} is a string field; strings come from the template")
        data = np.ascontiguousarray(np.asarray(values).astype(leaf.dtype))
        block[:, offset:offset + leaf.width] = data.view(np.uint8).reshape(count, leaf.width)
    flat = block.tobytes()
    size = len(sample)
    return [flat[i:i + size] for i in range(0, count * size, size)]
