//! Reads the kernel ELF and writes the symbol table into its `.ksyms` section.

use std::fmt;

use kernel::symbols::{self, EncodeError, SymbolDefinition};
use object::elf;
use object::read::elf::{ElfFile64, SectionHeader as _};
use object::{LittleEndian, Object, ObjectSection, ObjectSymbol};

use crate::selection::{self, Binding, RawSymbol, SectionSpan, SelectedSymbol, SymbolType};

/// The section that `linker.ld` reserves for the table.
pub const SECTION_NAME: &str = ".ksyms";

/// Offsets in `e_ident` (ELF specification, "ELF Identification").
pub const EI_CLASS: usize = 4;
pub const EI_DATA: usize = 5;
/// `e_machine` is a little-endian `u16` here, after the 16-byte `e_ident` and `e_type`.
const E_MACHINE_OFFSET: usize = 18;

#[derive(Debug)]
pub enum Error {
    NotElf,
    Not64Bit,
    NotLittleEndian,
    NotPpc64 { machine: u16 },
    Malformed(String),
    MissingSection,
    SectionHasNoFileBytes,
    TooSmall { needed: usize, available: usize },
    Encode(EncodeError),
}

impl fmt::Display for Error {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotElf => write!(formatter, "the input is not an ELF file"),
            Self::Not64Bit => write!(formatter, "the input is a 32-bit ELF file, not ELF64 PPC64"),
            Self::NotLittleEndian => {
                write!(formatter, "the input is a big-endian ELF file, not little-endian PPC64")
            }
            Self::NotPpc64 { machine } => {
                write!(formatter, "the input is an ELF file for machine {machine}, not PPC64 ({})", elf::EM_PPC64.0)
            }
            Self::Malformed(error) => write!(formatter, "the input ELF file is malformed: {error}"),
            Self::MissingSection => {
                write!(formatter, "the input has no {SECTION_NAME} section (the kernel must reserve it, see linker.ld)")
            }
            Self::SectionHasNoFileBytes => write!(
                formatter,
                "the {SECTION_NAME} section has no bytes in the file (it must be zero-filled data, not NOBITS)"
            ),
            Self::TooSmall { needed, available } => write!(
                formatter,
                "the symbol table needs {needed} bytes but the {SECTION_NAME} section has only {available} bytes"
            ),
            Self::Encode(error) => write!(formatter, "cannot encode the symbol table: {error}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<object::Error> for Error {
    fn from(error: object::Error) -> Self {
        Self::Malformed(error.to_string())
    }
}

/// What [`patch`] did, for the summary line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
    pub symbols: usize,
    pub bytes_used: usize,
    pub bytes_available: usize,
}

/// Rejects anything but ELF64 little-endian PPC64 with a specific reason.
pub fn check_ppc64le(data: &[u8]) -> Result<(), Error> {
    if data.len() < E_MACHINE_OFFSET + 2 || data[..elf::ELFMAG.len()] != elf::ELFMAG {
        return Err(Error::NotElf);
    }
    if data[EI_CLASS] != elf::ELFCLASS64.0 {
        return Err(Error::Not64Bit);
    }
    if data[EI_DATA] != elf::ELFDATA2LSB.0 {
        return Err(Error::NotLittleEndian);
    }
    let machine = u16::from_le_bytes([data[E_MACHINE_OFFSET], data[E_MACHINE_OFFSET + 1]]);
    if machine != elf::EM_PPC64.0 {
        return Err(Error::NotPpc64 { machine });
    }
    Ok(())
}

/// Returns a copy of `input` whose `.ksyms` section holds the symbol table.
pub fn patch(input: &[u8]) -> Result<(Vec<u8>, Summary), Error> {
    check_ppc64le(input)?;
    let file = ElfFile64::<LittleEndian>::parse(input)?;
    let section = file.section_by_name(SECTION_NAME).ok_or(Error::MissingSection)?;
    let (offset, size) = section.file_range().ok_or(Error::SectionHasNoFileBytes)?;
    let range = usize::try_from(offset)
        .ok()
        .zip(usize::try_from(size).ok())
        .and_then(|(start, length)| Some(start..start.checked_add(length)?))
        .filter(|range| range.end <= input.len())
        .ok_or_else(|| Error::Malformed(format!("section {SECTION_NAME} lies outside the file")))?;

    let selected = selection::select(&read_symbols(&file)?);
    let definitions: Vec<SymbolDefinition<'_>> = selected
        .iter()
        .map(|SelectedSymbol { address, size, name }| SymbolDefinition { address: *address, size: *size, name })
        .collect();

    let mut output = input.to_vec();
    let table = &mut output[range];
    let available = table.len();
    // Zero first so that re-patching a patched image leaves no stale bytes.
    table.fill(0);
    let used = symbols::encode(&definitions, table).map_err(|error| match error {
        EncodeError::BufferTooSmall { needed, available } => Error::TooSmall { needed, available },
        other => Error::Encode(other),
    })?;
    let summary = Summary { symbols: definitions.len(), bytes_used: used, bytes_available: available };
    Ok((output, summary))
}

fn read_symbols(file: &ElfFile64<'_, LittleEndian>) -> Result<Vec<RawSymbol>, Error> {
    let endian = file.endian();
    let mut spans = Vec::new();
    for section in file.sections() {
        let header = section.elf_section_header();
        let index = section.index().0;
        if spans.len() <= index {
            spans.resize(index + 1, None);
        }
        spans[index] = Some(SectionSpan {
            start: section.address(),
            end: section.address().saturating_add(section.size()),
            executable: header.sh_flags(endian).contains(elf::SHF_EXECINSTR),
        });
    }

    let mut symbols = Vec::new();
    for symbol in file.symbols() {
        let raw = symbol.elf_symbol();
        let symbol_type = match raw.st_type() {
            elf::STT_FUNC | elf::STT_GNU_IFUNC => SymbolType::Function,
            elf::STT_NOTYPE => SymbolType::NoType,
            _ => SymbolType::Other,
        };
        let binding = match raw.st_bind() {
            elf::STB_LOCAL => Binding::Local,
            elf::STB_WEAK => Binding::Weak,
            _ => Binding::Global,
        };
        let section = symbol.section_index().and_then(|index| spans.get(index.0).copied().flatten());
        symbols.push(RawSymbol {
            name: String::from_utf8_lossy(symbol.name_bytes()?).into_owned(),
            address: symbol.address(),
            size: symbol.size(),
            symbol_type,
            binding,
            section,
        });
    }
    Ok(symbols)
}
