"""Tensors on the wire: KServe v2 JSON tensors, the v2 binary tensor extension and TF-Serving JSON.

Decoding checks what a numpy conversion would hide (element counts, byte sizes, non-numeric
data) and raises ``InvalidInput`` naming the tensor, the value seen and the fix.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson

from cpuai.errors import InvalidInput

#: KServe v2 datatype names to numpy dtype names and back.
V2_TO_NUMPY = {
    "BOOL": "bool",
    "UINT8": "uint8",
    "UINT16": "uint16",
    "UINT32": "uint32",
    "UINT64": "uint64",
    "INT8": "int8",
    "INT16": "int16",
    "INT32": "int32",
    "INT64": "int64",
    "FP16": "float16",
    "FP32": "float32",
    "FP64": "float64",
}
NUMPY_TO_V2 = {v: k for k, v in V2_TO_NUMPY.items()}
HEADER_LENGTH = "inference-header-content-length"


def v2_datatype(dtype: str) -> str:
    """The v2 datatype name of a numpy dtype name (``float32`` -> ``FP32``)."""
    return NUMPY_TO_V2.get(dtype, dtype.upper())


def parse_json(body: bytes, what: str = "request body") -> Any:
    """Parse JSON or raise InvalidInput quoting the parser's complaint."""
    if not body:
        raise InvalidInput(f"the {what} is empty", fix="send a JSON body")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as err:
        raise InvalidInput(f"the {what} is not valid JSON: {err}", fix="send well-formed JSON") from None


def _shape_of(spec: dict[str, Any], name: str) -> list[int]:
    shape = spec.get("shape")
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise InvalidInput(
            f"input '{name}' has shape {shape!r}", fix="give 'shape' as a list of non-negative integers"
        )
    return shape


def split_binary(body: bytes, header_length: str | None) -> tuple[Any, bytes]:
    """Split a v2 request body into its JSON header and the raw bytes that follow it."""
    if header_length is None:
        return parse_json(body), b""
    try:
        n = int(header_length)
    except ValueError:
        raise InvalidInput(
            f"Inference-Header-Content-Length is {header_length!r}",
            fix="set it to the byte length of the JSON header",
        ) from None
    if n < 0 or n > len(body):
        raise InvalidInput(
            f"Inference-Header-Content-Length is {n} but the body has {len(body)} bytes",
            fix="set it to the byte length of the JSON header",
        )
    return parse_json(body[:n], "inference header"), body[n:]


def decode_v2_inputs(header: Any, binary: bytes) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The request's input tensors (numpy) and their declared v2 datatypes."""
    if not isinstance(header, dict):
        raise InvalidInput(
            f"the request must be a JSON object, got {type(header).__name__}",
            fix='send {"inputs": [{"name": ..., "shape": ..., "datatype": ..., "data": ...}]}',
        )
    inputs = header.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InvalidInput(
            "the request has no 'inputs' list",
            fix='send {"inputs": [{"name": ..., "shape": ..., "datatype": ..., "data": ...}]}',
        )
    feeds: dict[str, np.ndarray] = {}
    datatypes: dict[str, str] = {}
    offset = 0
    for i, spec in enumerate(inputs):
        if not isinstance(spec, dict):
            raise InvalidInput(
                f"inputs[{i}] is not an object", fix="give each input name, shape, datatype and data"
            )
        name = spec.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidInput(f"inputs[{i}] has no 'name'", fix="give each input its model input name")
        for field in ("shape", "datatype"):
            if field not in spec:
                raise InvalidInput(f"input '{name}' has no '{field}'", fix=f"add '{field}' to input '{name}'")
        shape = _shape_of(spec, name)
        datatype = spec["datatype"]
        if datatype not in V2_TO_NUMPY:
            known = ", ".join(V2_TO_NUMPY)
            raise InvalidInput(
                f"input '{name}' has datatype {datatype!r}, which this server does not take",
                fix=f"use one of {known}",
            )
        dtype = np.dtype(V2_TO_NUMPY[datatype])
        count = math.prod(shape)
        size = (spec.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or size < 0:
                raise InvalidInput(f"input '{name}' has binary_data_size {size!r}", fix="give a byte count")
            if size != count * dtype.itemsize:
                raise InvalidInput(
                    f"input '{name}' has binary_data_size {size} but shape {shape} of {datatype} needs "
                    f"{count * dtype.itemsize} bytes",
                    fix="send exactly shape x element-size bytes",
                )
            if offset + size > len(binary):
                raise InvalidInput(
                    f"input '{name}' needs {size} binary bytes but only {len(binary) - offset} follow "
                    "the header",
                    fix="append every input's raw bytes after the JSON header",
                )
            array = np.frombuffer(binary, dtype=dtype, count=count, offset=offset).reshape(shape)
            offset += size
        else:
            if "data" not in spec:
                raise InvalidInput(
                    f"input '{name}' has no 'data'",
                    fix="add 'data' or use the binary extension (parameters.binary_data_size)",
                )
            array = _from_json_data(spec["data"], dtype, shape, name, datatype)
        feeds[name] = array
        datatypes[name] = datatype
    if offset != len(binary):
        raise InvalidInput(
            f"{len(binary) - offset} bytes follow the inputs' binary data",
            fix="send only the inputs' raw bytes after the JSON header",
        )
    return feeds, datatypes


def _from_json_data(data: Any, dtype: np.dtype, shape: Sequence[int], name: str, datatype: str) -> np.ndarray:
    try:
        array = np.asarray(data)
    except ValueError as err:  # ragged nesting
        raise InvalidInput(
            f"input '{name}' data is ragged: {err}", fix="send a flat or rectangular list"
        ) from None
    if array.dtype.kind not in "biuf" or (dtype.kind != "b" and array.dtype.kind == "b" and array.size):
        seen = "string" if array.dtype.kind in "USO" else array.dtype.name
        raise InvalidInput(
            f"input '{name}' data holds {seen} values, not {datatype}", fix=f"send {datatype} numbers"
        )
    if array.dtype.kind == "f" and dtype.kind in "iub" and array.size and not np.all(np.mod(array, 1) == 0):
        raise InvalidInput(
            f"input '{name}' data holds fractional values but datatype is {datatype}",
            fix="send integers or use a floating datatype",
        )
    count = math.prod(shape)
    if array.size != count:
        raise InvalidInput(
            f"input '{name}' has {array.size} values but shape {list(shape)} needs {count}",
            fix="make 'data' match 'shape'",
        )
    return array.astype(dtype, copy=False).reshape(shape)


def encode_v2_outputs(
    outputs: dict[str, np.ndarray], binary_names: set[str]
) -> tuple[list[dict[str, Any]], bytes]:
    """v2 output tensors: JSON ``data`` lists, or raw bytes for the names in ``binary_names``."""
    specs: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    for name, array in outputs.items():
        array = np.ascontiguousarray(array)
        spec: dict[str, Any] = {
            "name": name,
            "datatype": v2_datatype(array.dtype.name),
            "shape": list(array.shape),
        }
        if name in binary_names:
            raw = array.tobytes()
            spec["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            spec["data"] = array.reshape(-1).tolist()
        specs.append(spec)
    return specs, b"".join(chunks)


def tf_instances(instances: Any, names: Sequence[str], dtypes: dict[str, str]) -> dict[str, np.ndarray]:
    """TF-Serving row format: one value (single input) or one object (several inputs) per instance."""
    if not isinstance(instances, list) or not instances:
        raise InvalidInput("'instances' must be a non-empty list", fix='send {"instances": [row, row, ...]}')
    if len(names) == 1 and not isinstance(instances[0], dict):
        return {names[0]: _tf_array(instances, names[0], dtypes[names[0]])}
    columns: dict[str, list[Any]] = {n: [] for n in names}
    for i, row in enumerate(instances):
        if not isinstance(row, dict):
            raise InvalidInput(
                f"instances[{i}] is not an object but the model has inputs {list(names)}",
                fix="send one object per instance keyed by input name",
            )
        for n in names:
            if n not in row:
                raise InvalidInput(f"instances[{i}] lacks input '{n}'", fix=f"add '{n}' to every instance")
            columns[n].append(row[n])
    return {n: _tf_array(v, n, dtypes[n]) for n, v in columns.items()}


def tf_inputs(inputs: Any, names: Sequence[str], dtypes: dict[str, str]) -> dict[str, np.ndarray]:
    """TF-Serving columnar format: a tensor (single input) or an object of tensors."""
    if isinstance(inputs, dict):
        return {n: _tf_array(v, n, dtypes.get(n, "float32")) for n, v in inputs.items()}
    if len(names) != 1:
        raise InvalidInput(
            f"'inputs' is a bare tensor but the model has inputs {list(names)}",
            fix="send an object keyed by input name",
        )
    return {names[0]: _tf_array(inputs, names[0], dtypes[names[0]])}


def _tf_array(value: Any, name: str, dtype: str) -> np.ndarray:
    try:
        array = np.asarray(value)
    except ValueError as err:
        raise InvalidInput(f"input '{name}' is ragged: {err}", fix="send rectangular nested lists") from None
    if array.dtype.kind not in "biuf":
        raise InvalidInput(
            f"input '{name}' holds {array.dtype.name} values, not numbers", fix=f"send {dtype} numbers"
        )
    if array.dtype.kind == "f" and np.dtype(dtype).kind in "iu" and not np.all(np.mod(array, 1) == 0):
        raise InvalidInput(
            f"input '{name}' holds fractional values but the model takes {dtype}", fix="send integers"
        )
    return array.astype(dtype, copy=False)


def tf_outputs(outputs: dict[str, np.ndarray], *, rows: bool) -> Any:
    """TF-Serving answer: ``predictions`` (row format) or ``outputs`` (columnar)."""
    if rows:
        if len(outputs) == 1:
            return {"predictions": next(iter(outputs.values())).tolist()}
        n = len(next(iter(outputs.values())))
        return {"predictions": [{k: v[i].tolist() for k, v in outputs.items()} for i in range(n)]}
    if len(outputs) == 1:
        return {"outputs": next(iter(outputs.values())).tolist()}
    return {"outputs": {k: v.tolist() for k, v in outputs.items()}}
