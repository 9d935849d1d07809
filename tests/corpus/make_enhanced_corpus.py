"""Writes enhanced multi-frame DICOM test files with independent writers: a classic series by
pydicom (a phantom made here, no patient data), then highdicom's legacy conversion of it into
one Enhanced CT or Enhanced MR Image Storage file (geometry in the shared and per-frame
functional groups). Two cases: an axial CT (slope 1, intercept -1024) and an oblique MR (double
oblique, slope 2). Run from this folder: python3 make_enhanced_corpus.py
"""
import math
import os
import struct

import highdicom
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

COLS, ROWS, SLICES = 12, 10, 5


def rotation(a, b, c):
    """Rows of R = Rz(c) Ry(b) Rx(a)."""
    ca, sa, cb, sb, cc, sc = math.cos(a), math.sin(a), math.cos(b), math.sin(b), math.cos(c), math.sin(c)
    rx = [[1, 0, 0], [0, ca, -sa], [0, sa, ca]]
    ry = [[cb, 0, sb], [0, 1, 0], [-sb, 0, cb]]
    rz = [[cc, -sc, 0], [sc, cc, 0], [0, 0, 1]]
    mul = lambda p, q: [[sum(p[i][k] * q[k][j] for k in range(3)) for j in range(3)] for i in range(3)]
    return mul(rz, mul(ry, rx))


def classic(modality, r, spacing, origin, slope, intercept):
    cols = [[r[i][j] for i in range(3)] for j in range(3)]  # direction of each voxel axis
    study, series, frame_of_ref = generate_uid(), generate_uid(), generate_uid()
    out = []
    for k in range(SLICES):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2" if modality == "CT" else "1.2.840.10008.5.1.4.1.1.4"
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = meta.MediaStorageSOPClassUID
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame_of_ref
        ds.Modality = modality
        ds.PatientName, ds.PatientID, ds.PatientSex, ds.PatientBirthDate = "Phantom", "P1", "O", ""
        ds.StudyDate, ds.StudyTime, ds.SeriesNumber, ds.InstanceNumber = "20260101", "120000", 1, k + 1
        ds.AccessionNumber, ds.ReferringPhysicianName, ds.StudyID = "", "", "1"
        ds.Manufacturer = "heartloc corpus"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        pos = [origin[i] + k * spacing[2] * cols[2][i] for i in range(3)]
        ds.ImagePositionPatient = [round(x, 6) for x in pos]
        ds.ImageOrientationPatient = [round(x, 6) for x in cols[0] + cols[1]]
        ds.PixelSpacing = [spacing[1], spacing[0]]
        ds.SliceThickness = spacing[2]
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
        if modality == "CT":
            ds.RescaleType = "HU"
            ds.KVP = 120
        else:
            ds.ScanningSequence, ds.SequenceVariant, ds.ScanOptions, ds.MRAcquisitionType = "GR", "SS", "", "2D"
            ds.EchoTime, ds.RepetitionTime, ds.MagneticFieldStrength = 1.5, 3.0, 1.5
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows, ds.Columns = ROWS, COLS
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        values = [(i * 7 + j * 13 + k * 101) % 900 - 300 for j in range(ROWS) for i in range(COLS)]
        ds.PixelData = struct.pack("<%dh" % len(values), *values)
        ds.is_little_endian, ds.is_implicit_VR = True, False
        out.append(ds)
    return out


def write(name, modality, r, spacing, origin, slope, intercept):
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "enhanced", name)
    os.makedirs(os.path.join(here, "classic"), exist_ok=True)
    slices = classic(modality, r, spacing, origin, slope, intercept)
    for k, ds in enumerate(slices):
        ds.save_as(os.path.join(here, "classic", f"{k}.dcm"), enforce_file_format=True)
    convert = highdicom.legacy.LegacyConvertedEnhancedCTImage if modality == "CT" else highdicom.legacy.LegacyConvertedEnhancedMRImage
    enhanced = convert(
        legacy_datasets=slices,
        series_instance_uid=generate_uid(),
        series_number=2,
        sop_instance_uid=generate_uid(),
        instance_number=1,
    )
    enhanced.save_as(os.path.join(here, "enhanced.dcm"), enforce_file_format=True)
    # The same frames as two stacks (frames at the first two positions in stack "2"): a reader
    # must split them into two series.
    two = pydicom.dcmread(os.path.join(here, "enhanced.dcm"))
    for item in two.PerFrameFunctionalGroupsSequence:
        content = item.FrameContentSequence[0]
        if content.InStackPositionNumber <= 2:
            content.StackID = "2"
    two.save_as(os.path.join(here, "two_stacks.dcm"), enforce_file_format=True)


if __name__ == "__main__":
    write("ct_axial", "CT", rotation(0, 0, 0), (0.75, 0.8, 2.5), (-4.0, -20.0, 35.0), 1, -1024)
    write("mr_oblique", "MR", rotation(0.5, -0.3, 0.25), (1.5, 1.25, 6.0), (30.0, -15.0, 80.0), 2, 0)
