"""Rebuild a :class:`CanonicalBatch` from a table read back from storage.

The table was validated on the way in, so only cheap structural checks run here:
the reserved columns exist and have canonical types (readers may hand back
dictionary or large-string columns, which are cast back).
"""

from __future__ import annotations

import pyarrow as pa

from service.canonical import (
    LABEL,
    PREDICTION,
    RESERVED_COLUMNS,
    SAMPLE_ID,
    SCORE,
    SCORE_PREFIX,
    BatchSpec,
    CanonicalBatch,
    score_column,
)
from service.ingest.label_kind import INT, STR
from service.ingest.numbers import F64


def load_canonical(table: pa.Table, spec: BatchSpec) -> CanonicalBatch:
    """Wrap a stored table and its spec; raises ``ValueError`` when they do not fit together."""
    if spec.task == "regression":
        label_kind = F64
    else:
        if not spec.classes:
            raise ValueError(f"a stored {spec.task} batch must have its classes resolved")
        label_kind = STR if isinstance(spec.classes[0], str) else INT
    expected = {SAMPLE_ID: STR, LABEL: label_kind, PREDICTION: label_kind}
    if spec.task == "binary" and SCORE in table.column_names:
        expected[SCORE] = F64
    if spec.task == "multiclass":
        present = [score_column(cls) for cls in spec.classes or [] if score_column(cls) in table.column_names]
        expected |= dict.fromkeys(present, F64)
    for name, kind in expected.items():
        if name not in table.column_names:
            raise ValueError(f"stored batch has no {name} column")
        if table.schema.field(name).type != kind:
            index = table.column_names.index(name)
            table = table.set_column(index, pa.field(name, kind), table.column(name).cast(kind))
    names = table.column_names
    features = [name for name in names if name not in RESERVED_COLUMNS and not name.startswith(SCORE_PREFIX)]
    return CanonicalBatch(spec=spec, table=table.replace_schema_metadata(None), feature_columns=features)
