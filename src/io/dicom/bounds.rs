//! Element lengths of a DICOM file checked against the bytes really there, before dicom-rs
//! reads it: dicom-rs reserves and zero-fills whatever length a header claims, so one lying
//! length (0xFFFFFFF0 in a 500 KB file, a VR byte flipped, a transfer syntax that says big
//! endian over little-endian data) would cost gigabytes before any error.
//!
//! The walk follows the file's encoding the way dicom-rs reads it: the meta group in explicit
//! VR little endian, the data set in the meta's transfer syntax (explicit or implicit VR, little
//! or big endian; encapsulated codecs are explicit little endian); an unknown VR reads as UN; a
//! sequence stored as UN with an undefined length (CP-246: its contents are implicit VR, which
//! dicom-rs 0.10 misreads as explicit, reserving whatever it then takes for a length) is refused;
//! sequences and items are entered (their contents are parsed too), other values skipped; the
//! fragments of encapsulated pixel data are skipped item by item. A deflated data set is not
//! walked (its lengths are inside the compressed stream; dicom-rs inflates it as it reads).

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry, VirtualVr};
use dicom_core::{Tag, VR};
use dicom_dictionary_std::StandardDataDictionary;

use super::FileError;

const UNDEFINED: u32 = 0xFFFF_FFFF;
const PIXEL_DATA: (u16, u16) = (0x7FE0, 0x0010);

/// What a file turned out to be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    /// No `DICM` marker: not a DICOM file (skipped when scanning folders).
    NotDicom,
    /// Every length fits the file; the meta's TransferSyntaxUID (empty when missing).
    Fits { transfer_syntax: String },
}

#[derive(Clone, Copy)]
enum Encoding {
    Explicit { big_endian: bool },
    Implicit,
}

struct Walker {
    reader: BufReader<File>,
    pos: u64,
    len: u64,
}

impl Walker {
    fn remaining(&self) -> u64 {
        self.len - self.pos
    }

    fn read<const N: usize>(&mut self) -> std::io::Result<[u8; N]> {
        let mut b = [0u8; N];
        self.reader.read_exact(&mut b)?;
        self.pos += N as u64;
        Ok(b)
    }

    fn skip(&mut self, n: u64) -> std::io::Result<()> {
        self.reader.seek_relative(n as i64)?;
        self.pos += n;
        Ok(())
    }
}

fn u16_of(b: [u8; 2], big: bool) -> u16 {
    if big {
        u16::from_be_bytes(b)
    } else {
        u16::from_le_bytes(b)
    }
}

fn u32_of(b: [u8; 4], big: bool) -> u32 {
    if big {
        u32::from_be_bytes(b)
    } else {
        u32::from_le_bytes(b)
    }
}

/// VRs whose explicit length field is 16 bits (PS3.5 7.1.2); all others take 2 reserved bytes
/// and 32 bits.
fn short_length(vr: VR) -> bool {
    use VR::*;
    matches!(
        vr,
        AE | AS
            | AT
            | CS
            | DA
            | DS
            | DT
            | FL
            | FD
            | IS
            | LO
            | LT
            | PN
            | SH
            | SL
            | SS
            | ST
            | TM
            | UI
            | UL
            | US
    )
}

/// One element header: tag, VR (explicit, or from the dictionary for implicit VR) and length.
fn header(w: &mut Walker, enc: Encoding) -> std::io::Result<((u16, u16), Option<VR>, u32)> {
    let big = matches!(enc, Encoding::Explicit { big_endian: true });
    let group = u16_of(w.read()?, big);
    let element = u16_of(w.read()?, big);
    if group == 0xFFFE {
        return Ok(((group, element), None, u32_of(w.read()?, big)));
    }
    match enc {
        Encoding::Explicit { .. } => {
            let vr = VR::from_binary(w.read::<2>()?).unwrap_or(VR::UN);
            let len = if short_length(vr) {
                u32::from(u16_of(w.read()?, big))
            } else {
                w.skip(2)?;
                u32_of(w.read()?, big)
            };
            Ok(((group, element), Some(vr), len))
        }
        Encoding::Implicit => {
            let len = u32_of(w.read()?, false);
            let vr = StandardDataDictionary
                .by_tag(Tag(group, element))
                .and_then(|e| match e.vr() {
                    VirtualVr::Exact(vr) => Some(vr),
                    _ => None,
                });
            Ok(((group, element), vr, len))
        }
    }
}

/// Check every element length of `path` against its size (see the module doc).
pub fn check(path: &Path) -> Result<Probe, FileError> {
    let file = File::open(path).map_err(|e| FileError::io(path, "cannot open", e))?;
    let len = file
        .metadata()
        .map_err(|e| FileError::io(path, "cannot read file size", e))?
        .len();
    let mut w = Walker {
        reader: BufReader::with_capacity(16 * 1024, file),
        pos: 0,
        len,
    };
    let mut head = Vec::with_capacity(132);
    (&mut w.reader)
        .take(132)
        .read_to_end(&mut head)
        .map_err(|e| FileError::io(path, "cannot read", e))?;
    let got = head.len();
    let start = if got == 132 && &head[128..132] == b"DICM" {
        132
    } else if got >= 4 && &head[0..4] == b"DICM" {
        4
    } else {
        return Ok(Probe::NotDicom);
    };
    w.reader
        .seek(SeekFrom::Start(start))
        .map_err(|e| FileError::io(path, "cannot seek", e))?;
    w.pos = start;
    walk(&mut w)
        .map_err(|e| FileError::new(path, e))
        .map(|transfer_syntax| Probe::Fits { transfer_syntax })
}

/// The walk itself; errors say which element lies (or cannot be read) and where.
fn walk(w: &mut Walker) -> Result<String, String> {
    walk_elements(w).map_err(|e| {
        if e.contains("CP-246") {
            format!("unsupported DICOM: {e}")
        } else {
            format!("corrupt DICOM: {e}")
        }
    })
}

fn io_at(at: u64) -> impl Fn(std::io::Error) -> String {
    move |e| format!("cannot read at byte {at}: {e}")
}

/// The file meta group (explicit VR little endian, while the group is 0002): its transfer
/// syntax UID, empty when it has none.
fn walk_meta(w: &mut Walker) -> Result<String, String> {
    let meta = Encoding::Explicit { big_endian: false };
    let mut transfer_syntax = String::new();
    while w.remaining() >= 8 {
        let at = w.pos;
        let peek: [u8; 2] = w.read().map_err(io_at(at))?;
        w.reader.seek_relative(-2).map_err(io_at(at))?;
        w.pos -= 2;
        if u16::from_le_bytes(peek) != 0x0002 {
            break;
        }
        let (tag, vr, n) = header(w, meta).map_err(io_at(at))?;
        fits(w, tag, vr, n, at)?;
        if n == UNDEFINED {
            return Err(format!(
                "meta element ({:04X},{:04X}) at byte {at} has an undefined length",
                tag.0, tag.1
            ));
        }
        if tag == (0x0002, 0x0010) && n <= 64 {
            let mut b = vec![0u8; n as usize];
            w.reader.read_exact(&mut b).map_err(io_at(at))?;
            w.pos += u64::from(n);
            transfer_syntax = String::from_utf8_lossy(&b)
                .trim_end_matches(['\0', ' '])
                .to_string();
        } else {
            w.skip(u64::from(n)).map_err(io_at(at))?;
        }
    }
    Ok(transfer_syntax)
}

fn walk_elements(w: &mut Walker) -> Result<String, String> {
    let transfer_syntax = walk_meta(w)?;
    let enc = match transfer_syntax.as_str() {
        "1.2.840.10008.1.2" => Encoding::Implicit,
        "1.2.840.10008.1.2.2" => Encoding::Explicit { big_endian: true },
        "1.2.840.10008.1.2.1.99" => return Ok(transfer_syntax),
        _ => Encoding::Explicit { big_endian: false },
    };
    // Open sequences of undefined length, each with the encoding of its contents (always the
    // data set's: an undefined-length UN, whose contents are implicit VR by CP-246, is refused
    // below, as dicom-rs would misread it).
    let mut open: Vec<Encoding> = Vec::new();
    let mut in_fragments = false;
    while w.remaining() > 0 {
        let enc = open.last().copied().unwrap_or(enc);
        let at = w.pos;
        if w.remaining() < 8 {
            return Err(format!(
                "the file ends inside an element header at byte {at} ({} bytes left)",
                w.remaining()
            ));
        }
        let (tag, vr, n) = header(w, enc).map_err(io_at(at))?;
        fits(w, tag, vr, n, at)?;
        let item = tag.0 == 0xFFFE;
        if in_fragments {
            in_fragments = fragment(w, tag, n, at)?;
        } else if tag == (0xFFFE, 0xE0DD) {
            open.pop(); // the end of an undefined-length sequence
        } else if n == UNDEFINED {
            match (tag, vr) {
                (PIXEL_DATA, _) => in_fragments = true,
                // An item of undefined length: its elements follow, up to its delimiter.
                (_, None) if item => {}
                (_, Some(VR::UN)) if matches!(enc, Encoding::Explicit { .. }) => {
                    return Err(undefined_un(tag, at))
                }
                _ => open.push(enc),
            }
        } else if !(item || vr == Some(VR::SQ)) {
            // Defined-length sequences and items are entered; other values skipped.
            w.skip(u64::from(n)).map_err(io_at(at))?;
        }
    }
    Ok(transfer_syntax)
}

/// One element inside encapsulated pixel data: a fragment (skipped), or the end of them
/// (`false`).
fn fragment(w: &mut Walker, tag: (u16, u16), n: u32, at: u64) -> Result<bool, String> {
    match tag {
        (0xFFFE, 0xE000) if n != UNDEFINED => {
            w.skip(u64::from(n)).map_err(io_at(at))?;
            Ok(true)
        }
        (0xFFFE, 0xE0DD) => Ok(false),
        _ => Err(format!(
            "({:04X},{:04X}) at byte {at} inside encapsulated pixel data, where only \
             fragments may be",
            tag.0, tag.1
        )),
    }
}

fn undefined_un(tag: (u16, u16), at: u64) -> String {
    format!(
        "element {}({:04X},{:04X}) at byte {at} is a sequence stored as UN with an undefined \
         length (DICOM CP-246, written by some converters), which the DICOM library cannot read \
         yet; rewrite the file with the sequence as SQ (e.g. dcmtk's dcmconv)",
        dictionary_name(tag),
        tag.0,
        tag.1
    )
}

/// The element's keyword and a space, or "" for a private or unknown tag.
fn dictionary_name(tag: (u16, u16)) -> String {
    StandardDataDictionary
        .by_tag(Tag(tag.0, tag.1))
        .map(|e| format!("{} ", e.alias()))
        .unwrap_or_default()
}

/// The size of one value of a binary VR (its length must be a multiple of it).
fn value_size(vr: VR) -> Option<u32> {
    use VR::*;
    match vr {
        SS | US | OW => Some(2),
        AT | FL | OF | OL | SL | UL => Some(4),
        FD | OD | OV | SV | UV => Some(8),
        _ => None,
    }
}

/// A defined length must fit in what is left of the file, and hold whole values of a binary
/// VR (dicom-rs reads `length / size` values and would lose its place in the file).
fn fits(w: &Walker, tag: (u16, u16), vr: Option<VR>, n: u32, at: u64) -> Result<(), String> {
    let name = || dictionary_name(tag);
    if n == UNDEFINED {
        return Ok(());
    }
    if let Some(size) = vr.and_then(value_size) {
        if n % size != 0 {
            return Err(format!(
                "element {}({:04X},{:04X}) VR {} at byte {at} has length {n}, not a multiple of \
                 its value size {size}",
                name(),
                tag.0,
                tag.1,
                vr.map(|v| v.to_string()).unwrap_or_default()
            ));
        }
    }
    if u64::from(n) <= w.remaining() {
        return Ok(());
    }
    let name = name();
    Err(format!(
        "element {name}({:04X},{:04X}){} at byte {at} claims {n} bytes, but only {} are left in \
         the {}-byte file",
        tag.0,
        tag.1,
        vr.map(|v| format!(" VR {}", v.to_string()))
            .unwrap_or_default(),
        w.remaining(),
        w.len
    ))
}
