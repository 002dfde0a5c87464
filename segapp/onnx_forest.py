"""An ONNX ``TreeEnsembleClassifier`` model, generated in memory from a :class:`~segapp.forest.Forest`.

The few protobuf messages needed (ModelProto > GraphProto > one NodeProto
with its attributes) are written directly, so building a predictor needs
neither the ``onnx`` package nor a converter — only onnxruntime to run it.
Field numbers are those of ``onnx/onnx.proto`` (IR version 8, ``ai.onnx.ml``
opset 3).  The bytes never touch a file: they are rebuilt from the model
file's validated arrays whenever a model is loaded.

Examples
--------
>>> import numpy as np
>>> from segapp.forest import Forest
>>> f = Forest([1, 2], 1, [0, 3], [0, -1, -1], [0.5, 0, 0], [1, -1, -1], [2, -1, -1],
...            [[0, 0], [1, 0], [0, 1]])
>>> forest_model(f)[:2]
b'\\x08\\x08'
"""

from __future__ import annotations


import numpy as np

from .forest import Forest, float32_thresholds

# protobuf wire types
_VARINT, _BYTES, _FIXED32 = 0, 2, 5
# AttributeProto.AttributeType
_INT, _STRING, _FLOATS, _INTS, _STRINGS = 2, 3, 6, 7, 8
_FLOAT_TENSOR = 1


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # negative int64 as two's complement, as protobuf does
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _key(field: int, wire: int) -> bytes:
    return _varint((field << 3) | wire)


def _bytes(field: int, data: bytes) -> bytes:
    return _key(field, _BYTES) + _varint(len(data)) + data


def _str(field: int, s: str) -> bytes:
    return _bytes(field, s.encode())


def _int(field: int, n: int) -> bytes:
    return _key(field, _VARINT) + _varint(int(n))


def _varints(values) -> bytes:
    """Concatenated varints of an int64 array (vectorised :func:`_varint`)."""
    v = np.asarray(values, np.int64).astype(np.uint64).reshape(-1)
    shifts = (7 * np.arange(10)).astype(np.uint64)
    groups = ((v[:, None] >> shifts[None, :]) & np.uint64(0x7F)).astype(np.uint8)
    bits = np.zeros(v.size, np.int64)
    nz = v > 0
    bits[nz] = np.floor(np.log2(v[nz].astype(np.float64))).astype(np.int64) + 1
    # float log2 can be off by one near powers of two: fix with exact shifts
    bits[nz] += (v[nz] >> bits[nz].astype(np.uint64)) > 0
    bits[nz] -= (v[nz] >> np.maximum(bits[nz] - 1, 0).astype(np.uint64)) == 0
    n = np.maximum(1, -(-bits // 7))
    j = np.arange(10)[None, :]
    groups[j < (n[:, None] - 1)] |= 0x80
    return groups[j < n[:, None]].tobytes()


def _attr_ints(name: str, values) -> bytes:
    packed = _varints(values)
    return _str(1, name) + _bytes(8, packed) + _int(20, _INTS)


def _attr_floats(name: str, values) -> bytes:
    packed = np.asarray(values, "<f4").tobytes()
    return _str(1, name) + _bytes(7, packed) + _int(20, _FLOATS)


def _attr_strings(name: str, values) -> bytes:
    encoded = {v: _bytes(9, v.encode()) for v in set(values)}  # few distinct strings, many nodes
    return _str(1, name) + b"".join([encoded[v] for v in values]) + _int(20, _STRINGS)


def _attr_string(name: str, value: str) -> bytes:
    return _str(1, name) + _bytes(4, value.encode()) + _int(20, _STRING)


def _tensor_info(name: str, elem_type: int, dims) -> bytes:
    shape = b"".join(_bytes(1, _str(2, d) if isinstance(d, str) else _int(1, d)) for d in dims)
    tensor = _int(1, elem_type) + _bytes(2, shape)
    return _str(1, name) + _bytes(2, _bytes(1, tensor))


def forest_model(forest: Forest) -> bytes:
    """Serialized ONNX model: input ``X`` (N, F) float32 -> ``label`` (N,) int64, ``probabilities`` (N, K)."""
    counts = np.diff(forest.offsets)
    tree_ids = np.repeat(np.arange(len(forest)), counts)
    node_ids = np.arange(forest.offsets[-1]) - np.repeat(forest.offsets[:-1], counts)
    leaf = forest.left < 0
    k = forest.classes_.size
    leaves = np.flatnonzero(leaf)
    weights = forest.value[leaves] / np.float32(len(forest))
    attrs = [
        _attr_ints("nodes_treeids", tree_ids),
        _attr_ints("nodes_nodeids", node_ids),
        _attr_ints("nodes_featureids", np.where(leaf, 0, forest.feature)),
        _attr_floats("nodes_values", np.where(leaf, 0, float32_thresholds(forest.threshold))),
        _attr_strings("nodes_modes", np.where(leaf, "LEAF", "BRANCH_LEQ").tolist()),
        _attr_ints("nodes_truenodeids", np.where(leaf, 0, forest.left)),
        _attr_ints("nodes_falsenodeids", np.where(leaf, 0, forest.right)),
        _attr_ints("class_treeids", np.repeat(tree_ids[leaves], k)),
        _attr_ints("class_nodeids", np.repeat(node_ids[leaves], k)),
        _attr_ints("class_ids", np.tile(np.arange(k), leaves.size)),
        _attr_floats("class_weights", weights.reshape(-1)),
        _attr_ints("classlabels_int64s", forest.classes_),
        _attr_string("post_transform", "NONE"),
    ]
    node = (_str(1, "X") + _str(2, "label") + _str(2, "probabilities") + _str(3, "forest")
            + _str(4, "TreeEnsembleClassifier") + b"".join(_bytes(5, a) for a in attrs) + _str(7, "ai.onnx.ml"))
    graph = (_bytes(1, node) + _str(2, "segapp_forest")
             + _bytes(11, _tensor_info("X", _FLOAT_TENSOR, ["N", forest.n_features_in_]))
             + _bytes(12, _tensor_info("label", 7, ["N"]))
             + _bytes(12, _tensor_info("probabilities", _FLOAT_TENSOR, ["N", k])))
    opsets = _bytes(8, _str(1, "") + _int(2, 17)) + _bytes(8, _str(1, "ai.onnx.ml") + _int(2, 3))
    return _int(1, 8) + opsets + _str(2, "segapp") + _bytes(7, graph)


