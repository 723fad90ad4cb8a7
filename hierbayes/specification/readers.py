"""Reading a data file (CSV or Parquet) into a DataFrame, with clear errors.

The CSV delimiter is detected (comma, semicolon, tab or ``|``) from the first lines;
with a semicolon, decimal commas (``1,5``) are read as numbers. A file whose header
still reads as one column that contains another of those delimiters is refused with a
message saying so, rather than handed on as one column of text.

Examples
--------
>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "d.csv")
>>> with open(path, "w") as fh:
...     _ = fh.write("y;x;g\\n1,5;2;a\\n2,5;3;b\\n")
>>> read_data(path).dtypes["y"]
dtype('float64')
"""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path

import pandas as pd

from hierbayes.common.errors import DataError

__all__ = ["read_data", "as_pandas", "DELIMITERS", "PARQUET_SUFFIXES"]

DELIMITERS = (",", ";", "\t", "|")
PARQUET_SUFFIXES = (".parquet", ".pq")
_DECIMAL_COMMA = re.compile(r"^\s*[-+]?\d*,\d+\s*$")
_DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "'|'"}


def as_pandas(data, what: str = "data") -> pd.DataFrame:
    """Any dataframe as a pandas DataFrame: pandas itself (not copied), polars, pyarrow tables and
    whatever narwhals reads, anything with the Arrow PyCapsule stream (``__arrow_c_stream__``) or
    the dataframe interchange protocol (``__dataframe__``).

    Raises
    ------
    DataError
        For anything else, naming its type in full (``module.Class``).

    Examples
    --------
    >>> import pyarrow as pa
    >>> as_pandas(pa.table({"y": [1.0, 2.0], "g": ["a", "b"]}))["y"].tolist()
    [1.0, 2.0]
    >>> as_pandas([1, 2])
    Traceback (most recent call last):
    ...
    hierbayes.common.errors.DataError: data must be a dataframe (pandas, polars, a pyarrow table, ...), got builtins.list
    """
    if isinstance(data, pd.DataFrame):
        return data
    import narwhals as nw

    try:
        return nw.from_native(data, eager_only=True).to_pandas()
    except TypeError:
        pass  # not a frame narwhals knows
    if hasattr(data, "__arrow_c_stream__"):
        import pyarrow as pa

        return pa.table(data).to_pandas()
    if hasattr(data, "__dataframe__"):
        return pd.api.interchange.from_dataframe(data)
    kind = type(data)
    raise DataError(f"{what} must be a dataframe (pandas, polars, a pyarrow table, ...), got "
                    f"{kind.__module__}.{kind.__qualname__}")


def _sniff(sample: str) -> str | None:
    """The delimiter of a CSV sample, or None when no candidate is consistent."""
    try:
        return csv.Sniffer().sniff(sample, delimiters="".join(DELIMITERS)).delimiter
    except csv.Error:
        return None


def _decimal_comma_columns(frame: pd.DataFrame) -> list[str]:
    """Text columns whose every value looks like a number written with a decimal comma."""
    out = []
    for name, col in frame.items():
        if pd.api.types.is_object_dtype(col) or pd.api.types.is_string_dtype(col):
            values = col.dropna().astype(str)
            if len(values) and values.str.match(_DECIMAL_COMMA).all():
                out.append(name)
    return out


def _read_csv(path: Path, sep: str | None) -> pd.DataFrame:
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as fh:
        sample = fh.read(64 * 1024)
    if not sample.strip():
        raise DataError(f"the data file {str(path)!r} is empty")
    if sep is None:
        sep = "\t" if path.suffix.lower() == ".tsv" else (_sniff(sample) or ",")
    try:
        frame = pd.read_csv(path, sep=sep, encoding="utf-8-sig")
        if sep == ";" and _decimal_comma_columns(frame):
            frame = pd.read_csv(path, sep=sep, decimal=",", encoding="utf-8-sig")
    except pd.errors.EmptyDataError:
        raise DataError(f"the data file {str(path)!r} is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as err:
        raise DataError(f"cannot read {str(path)!r} as a table with the {_DELIMITER_NAMES.get(sep, repr(sep))} "
                        f"delimiter: {err}") from None
    _check_header_names(path, sep)
    if frame.shape[1] == 1:
        header = str(frame.columns[0])
        others = [d for d in DELIMITERS if d != sep and d in header]
        if others:
            raise DataError(f"could not tell the column delimiter of {str(path)!r}: with the "
                            f"{_DELIMITER_NAMES.get(sep, repr(sep))} delimiter its header {header!r} is one column, "
                            f"but it contains the {_DELIMITER_NAMES[others[0]]} delimiter; give it explicitly "
                            f"(--sep {others[0]!r} on the command line, sep={others[0]!r} in read_data)")
    return frame


def _check_header_names(path: Path, sep: str) -> None:
    """Refuse a header that names two columns alike (pandas would rename the second ``x.1``)."""
    header = pd.read_csv(path, sep=sep, header=None, nrows=1, dtype=str, encoding="utf-8-sig").iloc[0].tolist()
    names = [str(h) for h in header]
    if dup := next((n for n in names if names.count(n) > 1), None):
        raise DataError(f"the data file {str(path)!r} has {names.count(dup)} columns named {dup!r}; a formula could "
                        "not tell which one it means: rename the copies")


def read_data(path: str | os.PathLike, sep: str | None = None) -> pd.DataFrame:
    """Read a CSV (``.csv``, ``.tsv``, ``.txt``) or Parquet (``.parquet``, ``.pq``) file.

    Parameters
    ----------
    path : str or path-like
    sep : str, optional
        The CSV delimiter; detected when omitted.

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    DataError
        If the file is missing, empty, unreadable, or its delimiter cannot be told, or if
        its header names two columns alike.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"no such data file: {str(path)!r}")
    if path.is_dir():
        raise DataError(f"{str(path)!r} is a folder, not a data file")
    if path.suffix.lower() in PARQUET_SUFFIXES:
        if path.stat().st_size == 0:
            raise DataError(f"the data file {str(path)!r} is empty")
        try:
            return pd.read_parquet(path)
        except Exception as err:  # pyarrow raises its own error types
            raise DataError(f"cannot read {str(path)!r} as Parquet: {type(err).__name__}: {err}") from None
    return _read_csv(path, sep)
