"""Writes the small NIfTI-1 fuzz corpus with an independent (Python struct) writer.

Each file is 3x2x2 (or 3x2x2x2) voxels. Run from this folder: python3 make_corpus.py
"""
import gzip
import struct


def header(endian, dims, datatype, bitpix, slope=1.0, inter=0.0, qform=True, sform=True):
    h = bytearray(348)
    struct.pack_into(endian + "i", h, 0, 348)
    struct.pack_into(endian + "8h", h, 40, len(dims), *dims, *([1] * (7 - len(dims))))
    struct.pack_into(endian + "hh", h, 70, datatype, bitpix)
    # pixdim: qfac 1, voxel 2 x 3 x 4 mm
    struct.pack_into(endian + "8f", h, 76, 1.0, 2.0, 3.0, 4.0, 1.0, 1.0, 1.0, 1.0)
    struct.pack_into(endian + "fff", h, 108, 352.0, slope, inter)
    h[123] = 2  # mm
    if qform:
        # 180 degrees about z (b=c=0, d=1): x and y flip, i.e. voxel axes along L, P, S.
        struct.pack_into(endian + "hh", h, 252, 1, 1 if sform else 0)
        struct.pack_into(endian + "6f", h, 256, 0.0, 0.0, 1.0, 10.0, 20.0, -30.0)
    if sform:
        struct.pack_into(endian + "h", h, 254, 1)
        struct.pack_into(endian + "12f", h, 280, -2, 0, 0, 10, 0, -3, 0, 20, 0, 0, 4, -30)
    h[344:348] = b"n+1\0"
    return bytes(h) + b"\0\0\0\0"


def write(name, data, gz=False):
    (gzip.open if gz else open)(name, "wb").write(data)


n = 12
write("le_int16.nii", header("<", [3, 2, 2], 4, 16) + struct.pack("<12h", *[v * 5 - 20 for v in range(n)]))
write("be_int16.nii", header(">", [3, 2, 2], 4, 16) + struct.pack(">12h", *[v * 5 - 20 for v in range(n)]))
write("scaled_uint8_qform_only.nii.gz",
      header("<", [3, 2, 2], 2, 8, slope=5.0, inter=-20.0, sform=False) + bytes(range(n)), gz=True)
write("float64_4d.nii.gz", header("<", [3, 2, 2, 2], 64, 64) + struct.pack("<24d", *[v * 5.0 - 20 for v in range(2 * n)]), gz=True)
