"""Writes the small DICOM fuzz corpus with an independent writer (pydicom), from a phantom made
here (no patient data): a 3-slice 8x8 int16 series in each of explicit VR little endian, implicit
VR little endian and explicit VR big endian, each slice with a sequence (defined and undefined
lengths), a rescale (slope 2, or 1 in `explicit_le_shift`), and a private element. Run from this folder: python3 make_dicom_corpus.py
"""
import os
import struct

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

SYNTAXES = {
    "explicit_le": ExplicitVRLittleEndian,
    "implicit_le": ImplicitVRLittleEndian,
    "explicit_be": ExplicitVRBigEndian,
    # Slope 1: the readers' integer path (the others have slope 2).
    "explicit_le_shift": ExplicitVRLittleEndian,
}


def slice_values(k):
    """Row-major 8x8 int16: column i, row j."""
    return [i * 10 + j * 3 + k * 50 - 100 for j in range(8) for i in range(8)]


def write(folder, syntax_name, k):
    syntax = SYNTAXES[syntax_name]
    series = list(SYNTAXES).index(syntax_name) + 1
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    meta.MediaStorageSOPInstanceUID = f"2.25.9{series}{k + 1}"
    meta.TransferSyntaxUID = syntax
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "CT"
    ds.SeriesInstanceUID = f"2.25.9{series}"
    ds.StudyInstanceUID = "2.25.90"
    ds.SeriesDescription = f"fuzz corpus {syntax_name}"
    ds.InstanceNumber = 3 - k
    ds.ImagePositionPatient = [-10.0, -20.0, 30.0 + 2.5 * k]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [0.75, 0.5]
    ds.SliceThickness = 2.5
    ds.RescaleSlope = 1 if syntax_name.endswith("shift") else 2
    ds.RescaleIntercept = -1024
    ref = Dataset()
    ref.ReferencedSOPClassUID = ds.SOPClassUID
    ref.ReferencedSOPInstanceUID = "2.25.1"
    ds.ReferencedImageSequence = Sequence([ref])
    ds.add_new(0x00091010, "LO", "private")
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = 8
    ds.Columns = 8
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    values = slice_values(k)
    big = syntax == ExplicitVRBigEndian
    ds.PixelData = struct.pack((">" if big else "<") + "64h", *values)
    path = os.path.join(folder, f"{syntax_name}_{k}.dcm")
    ds.save_as(path, enforce_file_format=True)


if __name__ == "__main__":
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dicom")
    for name in SYNTAXES:
        folder = os.path.join(here, name)
        os.makedirs(folder, exist_ok=True)
        for k in range(3):
            write(folder, name, k)
