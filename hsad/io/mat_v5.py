"""The bytes of a MAT v5 file, read before and beside SciPy: its data-element tags checked
(SciPy's reader crashes the interpreter on an unknown type code, and skips a compressed
variable's checksum), and the type a variable is stored in, told from its first bytes.
"""

from __future__ import annotations

import os
import zlib

import numpy as np

from hsad.errors import FileFormatError

#: MAT v5 data-element type codes (miINT8 ... miUTF32). scipy's reader crashes the
#: interpreter (segmentation fault) on any other code, so files are checked first.
_MI_TYPES = {1, 2, 3, 4, 5, 6, 7, 9, 12, 13, 14, 15, 16, 17, 18}
_MI_MATRIX, _MI_COMPRESSED = 14, 15
#: Decompressed bytes of a compressed variable whose tags are walked (its header and first
#: data tag); compressed bytes read at a time while checking a variable's checksum.
_PROBE_BYTES, _READ_BYTES = 1 << 16, 1 << 22


def v5_order(head: bytes) -> str | None:
    """The byte order (``"<"`` or ``">"``) of a MAT v5 file from its first 128 bytes, as
    SciPy reads its version and mark (any mark but IM is big-endian); None for another
    version: v4 (a zero in the first four bytes), v7.3 (HDF5) or unknown."""
    if len(head) < 128 or 0 in head[:4]:
        return None
    major = head[125] if head[126] == ord("I") else head[124]
    if major != 1:
        return None
    return "<" if head[126:128] == b"IM" else ">"


def check_v5_tags(path: str) -> None:
    """Walk the data-element tags of a MAT v5 file; FileFormatError on an unknown type code
    or an element overrunning its parent. Other versions are left to scipy/h5py."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(128)
            size = os.fstat(fh.fileno()).st_size
            order = v5_order(head)
            if order is None:
                return  # v4, v7.3 (HDF5) or unknown: scipy or h5py decide

            def read(offset: int, n: int) -> bytes:
                fh.seek(offset)
                return fh.read(n)

            _walk(read, 128, size, order, path, complete=True, depth=0, variables=True)
    except OSError as exc:
        raise FileFormatError(f"cannot read MAT file: {exc.strerror or exc}", path) from None


def _walk(read, start: int, end: int, order: str, path: str, complete: bool,
          depth: int, variables: bool = False) -> None:
    """Check the elements in ``[start, end)``, recursing into matrices and compressed ones.

    ``complete``: the range holds whole elements (False for a decompressed prefix);
    ``variables``: they are the file's variables, whose dimensions are checked against
    their bytes (not the elements of a cell or struct: one read more each).
    """
    if depth > 32:
        raise FileFormatError("corrupt MAT file: elements nested too deeply", path)
    pos = start
    while pos + 8 <= end:
        first, second = np.frombuffer(read(pos, 8), dtype=order + "u4")
        small = int(first >> 16)
        mtype, nbytes = (int(first & 0xFFFF), small) if small else (int(first), int(second))
        if mtype not in _MI_TYPES or small > 4:
            raise FileFormatError(f"corrupt MAT file: unknown data element type {mtype} "
                                  f"at byte {pos}", path)
        if small:
            pos += 8
            continue
        body = pos + 8
        if complete and body + nbytes > end:
            raise FileFormatError(f"MAT file is truncated or corrupt: element at byte {pos} "
                                  f"needs {nbytes} bytes, {end - body} left", path)
        if mtype == _MI_MATRIX:
            if variables:
                _check_dims(read(body, min(nbytes, _DIMS_BYTES)), nbytes, order, path)
            _walk(read, body, min(body + nbytes, end), order, path, complete, depth + 1)
        elif mtype == _MI_COMPRESSED:
            _check_compressed(read, body, nbytes, order, path, depth, variables)
        pos = body + (nbytes if mtype == _MI_COMPRESSED else -(-nbytes // 8) * 8)


def _check_compressed(read, start: int, nbytes: int, order: str, path: str,
                      depth: int, variables: bool = False) -> None:
    """Decompress a variable whole (discarding the output) so that zlib checks its
    checksum, which scipy skips: a damaged stream could decode to wrong values silently.
    The tags in its first ``_PROBE_BYTES`` are walked too."""
    stream, head, total = zlib.decompressobj(), b"", 0
    try:
        for offset in range(start, start + nbytes, _READ_BYTES):
            data = read(offset, min(_READ_BYTES, start + nbytes - offset))
            while data and not stream.eof:  # at most _READ_BYTES out at a time: zeros
                out = stream.decompress(data, _READ_BYTES)  # inflate 1000-fold
                data = stream.unconsumed_tail
                total += len(out)
                if len(head) < _PROBE_BYTES:
                    head += out[:_PROBE_BYTES - len(head)]
            if stream.eof:
                break
    except zlib.error as exc:
        raise FileFormatError(f"MAT file is corrupt: compressed variable ({exc})", path) from None
    if not stream.eof:
        raise FileFormatError("MAT file is truncated: a compressed variable ends early", path)
    if len(head) >= 8:  # the variable's element holds the bytes its tag says
        mtype, body, _ = _tag(head, 0, order)
        declared = int(np.frombuffer(head[4:8], dtype=order + "u4")[0])
        if mtype == _MI_MATRIX and body == 8 and declared > total - 8:
            raise FileFormatError(f"MAT file is corrupt: a compressed variable says it holds "
                                  f"{declared} bytes, it holds {total - 8}", path)
    _walk(lambda offset, n: head[offset:offset + n], 0, len(head), order, path,
          complete=len(head) < _PROBE_BYTES, depth=depth + 1, variables=variables)


#: bytes of a matrix element read for its array flags, dimensions and name
_DIMS_BYTES = 512
#: MATLAB array classes that store each of their values, one byte at least: char (4) and
#: the numeric and logical ones (6-15). Not cell, struct and object arrays (a struct
#: array without fields stores nothing), sparse (its nonzeros only), function handles,
#: opaque objects.
_VALUE_CLASSES = {4, *range(6, 16)}


def _check_dims(head: bytes, nbytes: int, order: str, path: str) -> None:
    """FileFormatError when a matrix element (``head``: its first bytes, ``nbytes`` in all)
    declares more values than it has bytes (every value takes one at least): a corrupt
    header that would make a reader allocate a cube of its dimensions."""
    if len(head) < 16 or _tag(head, 0, order)[0] != 6:  # the array flags, miUINT32
        return
    _, body, at = _tag(head, 0, order)
    if int(np.frombuffer(head[body:body + 4], dtype=order + "u4")[0]) & 0xFF \
            not in _VALUE_CLASSES or at + 8 > len(head):
        return
    kind, body, after = _tag(head, at, order)
    count = int(np.frombuffer(head[at + 4:at + 8], dtype=order + "u4")[0]) // 4 \
        if kind == 5 and body == at + 8 else 0
    if kind != 5 or count == 0 or body + 4 * count > len(head):
        return
    shape = [int(v) for v in np.frombuffer(head[body:body + 4 * count], dtype=order + "i4")]
    values = int(np.prod(shape, dtype=object))
    if values > nbytes:
        name = ""
        if after + 8 <= len(head):
            _, start, end = _tag(head, after, order)
            name = head[start:end].rstrip(b"\0").decode("latin-1", "replace")
        raise FileFormatError(f"MAT file is corrupt: variable {name!r} says it is "
                              f"{'x'.join(map(str, shape))} ({values} values) in "
                              f"{nbytes} bytes", path)


#: the NumPy type of each MAT v5 numeric data type code (miINT8 … miUINT64)
_MI_NUMPY = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 9: "f8",
             12: "i8", 13: "u8"}


def _tag(head: bytes, pos: int, order: str) -> tuple[int, int, int]:
    """``(type, body start, next element)`` of the v5 tag at ``pos`` of ``head``."""
    first, second = np.frombuffer(head[pos:pos + 8], dtype=order + "u4")
    if first >> 16:  # small element: its size in the upper half, its data in the tag
        return int(first & 0xFFFF), pos + 4, pos + 8
    return int(first), pos + 8, pos + 8 + -(-int(second) // 8) * 8


def _matrix_heads(path: str):
    """``(name, array flags, type code of the real part)`` of each top-level v5 matrix,
    told from its first bytes (a compressed one's first 4096 decompressed bytes)."""
    with open(path, "rb") as fh:
        order = v5_order(fh.read(128))
        if order is None:
            return  # MAT v4 (its data are no v5 tags) or not v5
        size, pos = os.fstat(fh.fileno()).st_size, 128
        while pos + 8 <= size:
            fh.seek(pos)
            mtype, nbytes = np.frombuffer(fh.read(8), dtype=order + "u4")
            if mtype == _MI_COMPRESSED:
                head = zlib.decompressobj().decompress(fh.read(min(int(nbytes), 4096)), 4096)
            elif mtype == _MI_MATRIX:
                fh.seek(pos)
                head = fh.read(4096)
            else:
                head = b""
            if len(head) >= 8 and _tag(head, 0, order)[0] == _MI_MATRIX:
                at = _tag(head, 0, order)[1]
                flags = int(np.frombuffer(head[at + 8:at + 12], dtype=order + "u4")[0])
                at = _tag(head, at, order)[2]  # array flags
                at = _tag(head, at, order)[2]  # dimensions
                _, body, data = _tag(head, at, order)  # the name
                name = head[body:body + (data - body)].rstrip(b"\0").decode("latin-1")
                yield name, flags, _tag(head, data, order)[0]
            pos += 8 + int(nbytes) + (0 if mtype == _MI_COMPRESSED else -int(nbytes) % 8)


_HEAD_ERRORS = (OSError, ValueError, IndexError, zlib.error, TypeError)
#: the array flags' bit of a complex matrix
_COMPLEX_FLAG = 0x0800


def stored_type(path: str, key: str) -> np.dtype | None:
    """The type the real part of the v5 matrix ``key`` is stored in, which SciPy returns
    (MATLAB keeps a double array of small integers as int16: the ABU scenes); None when it
    cannot be told from the first bytes of the variable (it is then read to tell)."""
    try:
        for name, _, code in _matrix_heads(path):
            if name == key:
                return np.dtype(_MI_NUMPY[code]) if code in _MI_NUMPY else None
    except _HEAD_ERRORS:
        return None
    return None


def complex_names(path: str) -> set[str]:
    """The top-level v5 matrices flagged complex (SciPy's ``whosmat`` gives their class
    only, ``single`` or ``double``); those it cannot tell are left out."""
    found = set()
    try:
        for name, flags, _ in _matrix_heads(path):
            if flags & _COMPLEX_FLAG:
                found.add(name)
    except _HEAD_ERRORS:
        return found  # those after an unreadable header: refused on first read, as before
    return found


__all__ = ["check_v5_tags", "complex_names", "stored_type", "v5_order"]
