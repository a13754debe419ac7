//! The kernel symbol table, for symbolised backtraces (as Linux's kallsyms).
//!
//! The image reserves a zero-filled `.ksyms` section; after linking, `tools/ksyms`
//! writes the table below into that section's file bytes with [`encode`], and the
//! kernel reads it in place with [`SymbolTable::parse`]. Both sides use this one
//! definition of the format.
//!
//! # Format
//!
//! All integers are little-endian; offsets are from the start of the table.
//!
//! | offset | field            | type       |                                      |
//! |--------|------------------|------------|--------------------------------------|
//! | 0      | `magic`          | `[u8; 8]`  | `b"KSYMTAB1"`                        |
//! | 8      | `count`          | `u64`      | number of entries                    |
//! | 16     | `strings_offset` | `u64`      | start of the name bytes              |
//! | 24     | entries          | `count` x 24 bytes, sorted by `addr` (non-decreasing)    |
//! | `strings_offset` | names  | UTF-8, concatenated, no terminator                   |
//!
//! Each entry:
//!
//! | offset | field         | type  |                                               |
//! |--------|---------------|-------|-----------------------------------------------|
//! | 0      | `addr`        | `u64` | link-time address (image-relative: linked at 0) |
//! | 8      | `size`        | `u32` | size in bytes, 0 when unknown; saturates      |
//! | 12     | `name_offset` | `u32` | from `strings_offset`                         |
//! | 16     | `name_len`    | `u32` | bytes                                         |
//! | 20     | `_pad`        | `u32` | zero                                          |
//!
//! An unpatched image has zeros where the magic would be, so `parse` returns `None`.

use core::fmt;

/// Identifies a filled table, and its format version.
pub const MAGIC: [u8; 8] = *b"KSYMTAB1";
/// Bytes in the header: magic, count, strings_offset.
pub const HEADER_LEN: usize = 24;
/// Bytes in one entry: addr, size, name_offset, name_len, pad.
pub const ENTRY_LEN: usize = 24;

const COUNT_OFFSET: usize = 8;
const STRINGS_OFFSET_OFFSET: usize = 16;
const ENTRY_ADDRESS_OFFSET: usize = 0;
const ENTRY_SIZE_OFFSET: usize = 8;
const ENTRY_NAME_OFFSET_OFFSET: usize = 12;
const ENTRY_NAME_LEN_OFFSET: usize = 16;

/// The symbol containing (or nearest before) an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Symbol<'a> {
    pub name: &'a str,
    /// Link-time address of the symbol's first byte.
    pub address: u64,
    /// Distance of the looked-up address from `address`.
    pub offset: u64,
}

impl fmt::Display for Symbol<'_> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}+{:#x}", self.name, self.offset)
    }
}

/// A validated, read-only view of an encoded table.
#[derive(Clone, Copy, Debug)]
pub struct SymbolTable<'a> {
    entries: &'a [u8],
    strings: &'a [u8],
}

/// One decoded entry, before its name is resolved.
struct Entry {
    address: u64,
    size: u32,
    name_offset: u32,
    name_len: u32,
}

impl<'a> SymbolTable<'a> {
    /// Checks the whole table once (bounds, order, UTF-8) so lookups cannot fail
    /// on corrupt data. `bytes` may be longer than the table (the rest of the
    /// reserved space). Returns `None` for an unpatched or malformed table.
    pub fn parse(bytes: &'a [u8]) -> Option<Self> {
        if bytes.get(..MAGIC.len())? != MAGIC {
            return None;
        }
        let count = usize::try_from(read_u64(bytes, COUNT_OFFSET)?).ok()?;
        let strings_offset = usize::try_from(read_u64(bytes, STRINGS_OFFSET_OFFSET)?).ok()?;
        let entries_end = count.checked_mul(ENTRY_LEN)?.checked_add(HEADER_LEN)?;
        if strings_offset < entries_end {
            return None;
        }
        let table = Self { entries: bytes.get(HEADER_LEN..entries_end)?, strings: bytes.get(strings_offset..)? };
        let mut previous_address = 0;
        for index in 0..count {
            let entry = table.entry(index)?;
            if entry.address < previous_address {
                return None;
            }
            previous_address = entry.address;
            table.name(&entry)?;
        }
        Some(table)
    }

    /// Number of symbols.
    pub fn len(&self) -> usize {
        self.entries.len() / ENTRY_LEN
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The symbol at or before `link_address`. `None` before the first symbol, or
    /// past the end of the nearest symbol when its size is known; a symbol of
    /// unknown size covers everything up to the next one.
    pub fn lookup(&self, link_address: u64) -> Option<Symbol<'a>> {
        // Entries are sorted, so this is a binary search for the first entry
        // above `link_address`; the one before it is the candidate.
        let (mut low, mut high) = (0, self.len());
        while low < high {
            let middle = low + (high - low) / 2;
            if self.entry(middle)?.address <= link_address {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        let entry = self.entry(low.checked_sub(1)?)?;
        let offset = link_address - entry.address;
        if entry.size != 0 && offset >= u64::from(entry.size) {
            return None;
        }
        Some(Symbol { name: self.name(&entry)?, address: entry.address, offset })
    }

    /// The address of the first symbol named exactly `name`.
    pub fn find(&self, name: &str) -> Option<u64> {
        (0..self.len())
            .filter_map(|index| self.entry(index))
            .find(|entry| self.name(entry) == Some(name))
            .map(|entry| entry.address)
    }

    fn entry(&self, index: usize) -> Option<Entry> {
        let bytes = self.entries.get(index.checked_mul(ENTRY_LEN)?..)?;
        Some(Entry {
            address: read_u64(bytes, ENTRY_ADDRESS_OFFSET)?,
            size: read_u32(bytes, ENTRY_SIZE_OFFSET)?,
            name_offset: read_u32(bytes, ENTRY_NAME_OFFSET_OFFSET)?,
            name_len: read_u32(bytes, ENTRY_NAME_LEN_OFFSET)?,
        })
    }

    fn name(&self, entry: &Entry) -> Option<&'a str> {
        let start = usize::try_from(entry.name_offset).ok()?;
        let end = start.checked_add(usize::try_from(entry.name_len).ok()?)?;
        core::str::from_utf8(self.strings.get(start..end)?).ok()
    }
}

/// A symbol to encode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SymbolDefinition<'n> {
    pub address: u64,
    /// Size in bytes, 0 when unknown; stored saturated to `u32::MAX`.
    pub size: u64,
    pub name: &'n str,
}

/// Why [`encode`] could not write a table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// The output is smaller than the table.
    BufferTooSmall { needed: usize, available: usize },
    /// `symbols[index]` has a lower address than the symbol before it.
    NotSorted { index: usize },
    /// The names together exceed the 32-bit offsets of the format.
    NamesTooLong,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BufferTooSmall { needed, available } => {
                write!(formatter, "the symbol table needs {needed} bytes but only {available} bytes are available")
            }
            Self::NotSorted { index } => {
                write!(formatter, "symbol {index} is not sorted by address")
            }
            Self::NamesTooLong => write!(formatter, "the symbol names exceed 4 GiB"),
        }
    }
}

/// Bytes that [`encode`] will write for `symbols` (saturating: an impossible
/// size shows as `usize::MAX`).
pub fn encoded_len(symbols: &[SymbolDefinition<'_>]) -> usize {
    symbols.iter().fold(HEADER_LEN, |total, symbol| total.saturating_add(ENTRY_LEN).saturating_add(symbol.name.len()))
}

/// Writes the table for `symbols`, which must be sorted by address, to the start
/// of `out` and returns the bytes used. Bytes of `out` past those are untouched.
pub fn encode(symbols: &[SymbolDefinition<'_>], out: &mut [u8]) -> Result<usize, EncodeError> {
    if let Some(index) = (1..symbols.len()).find(|&i| symbols[i].address < symbols[i - 1].address) {
        return Err(EncodeError::NotSorted { index });
    }
    let needed = encoded_len(symbols);
    if needed > out.len() {
        return Err(EncodeError::BufferTooSmall { needed, available: out.len() });
    }
    let strings_offset = HEADER_LEN + symbols.len() * ENTRY_LEN;

    out[..MAGIC.len()].copy_from_slice(&MAGIC);
    write_u64(out, COUNT_OFFSET, symbols.len() as u64);
    write_u64(out, STRINGS_OFFSET_OFFSET, strings_offset as u64);

    let mut name_offset = 0usize;
    for (index, symbol) in symbols.iter().enumerate() {
        let entry = HEADER_LEN + index * ENTRY_LEN;
        let name_offset_u32 = u32::try_from(name_offset).map_err(|_| EncodeError::NamesTooLong)?;
        let name_len = u32::try_from(symbol.name.len()).map_err(|_| EncodeError::NamesTooLong)?;
        write_u64(out, entry + ENTRY_ADDRESS_OFFSET, symbol.address);
        write_u32(out, entry + ENTRY_SIZE_OFFSET, u32::try_from(symbol.size).unwrap_or(u32::MAX));
        write_u32(out, entry + ENTRY_NAME_OFFSET_OFFSET, name_offset_u32);
        write_u32(out, entry + ENTRY_NAME_LEN_OFFSET, name_len);
        write_u32(out, entry + ENTRY_NAME_LEN_OFFSET + 4, 0);

        let start = strings_offset + name_offset;
        out[start..start + symbol.name.len()].copy_from_slice(symbol.name.as_bytes());
        name_offset += symbol.name.len();
    }
    Ok(needed)
}

fn read_u64(bytes: &[u8], offset: usize) -> Option<u64> {
    let field = bytes.get(offset..offset.checked_add(8)?)?;
    Some(u64::from_le_bytes(field.try_into().ok()?))
}

fn read_u32(bytes: &[u8], offset: usize) -> Option<u32> {
    let field = bytes.get(offset..offset.checked_add(4)?)?;
    Some(u32::from_le_bytes(field.try_into().ok()?))
}

fn write_u64(bytes: &mut [u8], offset: usize, value: u64) {
    bytes[offset..offset + 8].copy_from_slice(&value.to_le_bytes());
}

fn write_u32(bytes: &mut [u8], offset: usize, value: u32) {
    bytes[offset..offset + 4].copy_from_slice(&value.to_le_bytes());
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;

    const SYMBOLS: [SymbolDefinition<'static>; 4] = [
        SymbolDefinition { address: 0x0, size: 0x114, name: "_start" },
        SymbolDefinition { address: 0x120, size: 0x40, name: "kernel::main" },
        // A gap of unknown extent: an assembly label.
        SymbolDefinition { address: 0x200, size: 0, name: "exception_entry" },
        SymbolDefinition { address: 0x300, size: 0x10, name: "ünïcode::name" },
    ];

    fn encoded(symbols: &[SymbolDefinition<'_>]) -> ([u8; 512], usize) {
        let mut buffer = [0u8; 512];
        let used = encode(symbols, &mut buffer).expect("fits");
        (buffer, used)
    }

    #[test]
    fn round_trip() {
        let (buffer, used) = encoded(&SYMBOLS);
        assert_eq!(used, encoded_len(&SYMBOLS));
        // Parses both exactly sized and with the reserved space's trailing zeros.
        for bytes in [&buffer[..used], &buffer[..]] {
            let table = SymbolTable::parse(bytes).expect("valid");
            assert_eq!(table.len(), SYMBOLS.len());
            for symbol in &SYMBOLS {
                assert_eq!(table.find(symbol.name), Some(symbol.address));
                let found = table.lookup(symbol.address).expect("at symbol");
                assert_eq!(found, Symbol { name: symbol.name, address: symbol.address, offset: 0 });
            }
            assert_eq!(table.find("kernel::mai"), None);
        }
    }

    #[test]
    fn lookup_inside_and_outside() {
        let (buffer, _) = encoded(&SYMBOLS[1..]);
        let table = SymbolTable::parse(&buffer).expect("valid");
        let inside = table.lookup(0x13c).expect("inside");
        assert_eq!(inside, Symbol { name: "kernel::main", address: 0x120, offset: 0x1c });
        assert_eq!(std::format!("{inside}"), "kernel::main+0x1c");
        assert_eq!(table.lookup(0x15f).map(|s| s.offset), Some(0x3f));
        // Past the known size, in the gap before the next symbol.
        assert_eq!(table.lookup(0x160), None);
        // Before the first symbol.
        assert_eq!(table.lookup(0x11f), None);
        assert_eq!(table.lookup(0), None);
        // Unknown size: falls back to the nearest preceding symbol.
        assert_eq!(table.lookup(0x2ff).map(|s| (s.name, s.offset)), Some(("exception_entry", 0xff)));
        // After the last symbol, which has a size.
        assert_eq!(table.lookup(0x30f).map(|s| s.name), Some("ünïcode::name"));
        assert_eq!(table.lookup(0x310), None);
        assert_eq!(table.lookup(u64::MAX), None);
    }

    #[test]
    fn last_symbol_without_size_covers_the_rest() {
        let (buffer, _) = encoded(&SYMBOLS[..3]);
        let table = SymbolTable::parse(&buffer).expect("valid");
        assert_eq!(table.lookup(u64::MAX).map(|s| s.name), Some("exception_entry"));
    }

    #[test]
    fn empty_table() {
        let (buffer, used) = encoded(&[]);
        assert_eq!(used, HEADER_LEN);
        let table = SymbolTable::parse(&buffer).expect("valid");
        assert!(table.is_empty());
        assert_eq!(table.lookup(0x120), None);
        assert_eq!(table.find("_start"), None);
    }

    #[test]
    fn duplicate_addresses_resolve_to_the_last() {
        let symbols = [
            SymbolDefinition { address: 0x10, size: 4, name: "a" },
            SymbolDefinition { address: 0x10, size: 4, name: "b" },
        ];
        let (buffer, _) = encoded(&symbols);
        let table = SymbolTable::parse(&buffer).expect("valid");
        assert_eq!(table.lookup(0x12).map(|s| s.name), Some("b"));
    }

    #[test]
    fn encode_errors() {
        let mut small = [0u8; 64];
        assert_eq!(
            encode(&SYMBOLS, &mut small),
            Err(EncodeError::BufferTooSmall { needed: encoded_len(&SYMBOLS), available: 64 })
        );
        assert_eq!(small, [0u8; 64], "nothing written on failure");
        let unsorted = [SYMBOLS[1], SYMBOLS[0]];
        assert_eq!(encode(&unsorted, &mut [0u8; 512]), Err(EncodeError::NotSorted { index: 1 }));
    }

    #[test]
    fn size_saturates() {
        let symbols = [SymbolDefinition { address: 0, size: 1 << 40, name: "huge" }];
        let (buffer, _) = encoded(&symbols);
        let table = SymbolTable::parse(&buffer).expect("valid");
        assert_eq!(table.lookup(u64::from(u32::MAX) - 1).map(|s| s.name), Some("huge"));
    }

    #[test]
    fn unpatched_and_bad_magic() {
        assert!(SymbolTable::parse(&[0u8; 1024]).is_none());
        assert!(SymbolTable::parse(&[]).is_none());
        let (mut buffer, _) = encoded(&SYMBOLS);
        buffer[7] = b'2';
        assert!(SymbolTable::parse(&buffer).is_none());
    }

    #[test]
    fn truncated() {
        let (buffer, used) = encoded(&SYMBOLS);
        for length in 0..used {
            assert!(SymbolTable::parse(&buffer[..length]).is_none(), "length {length}");
        }
    }

    #[test]
    fn corrupt_header() {
        let (original, _) = encoded(&SYMBOLS);
        // Count far too large, including one whose byte size overflows.
        for count in [5, u64::MAX / 24 + 1, u64::MAX] {
            let mut buffer = original;
            write_u64(&mut buffer, COUNT_OFFSET, count);
            assert!(SymbolTable::parse(&buffer).is_none(), "count {count}");
        }
        // Strings overlapping the entries, or beyond the buffer.
        for strings_offset in [0, HEADER_LEN as u64, 600, u64::MAX] {
            let mut buffer = original;
            write_u64(&mut buffer, STRINGS_OFFSET_OFFSET, strings_offset);
            assert!(SymbolTable::parse(&buffer).is_none(), "strings_offset {strings_offset}");
        }
    }

    #[test]
    fn corrupt_entries() {
        let (original, used) = encoded(&SYMBOLS);
        let second = HEADER_LEN + ENTRY_LEN;
        let cases: [(usize, u32); 4] = [
            (second + ENTRY_NAME_OFFSET_OFFSET, 10_000),
            (second + ENTRY_NAME_OFFSET_OFFSET, u32::MAX),
            (second + ENTRY_NAME_LEN_OFFSET, 10_000),
            (second + ENTRY_NAME_LEN_OFFSET, u32::MAX),
        ];
        for (offset, value) in cases {
            let mut buffer = original;
            write_u32(&mut buffer, offset, value);
            assert!(SymbolTable::parse(&buffer[..used]).is_none(), "offset {offset} = {value}");
        }
        // Out of order.
        let mut buffer = original;
        write_u64(&mut buffer, second + ENTRY_ADDRESS_OFFSET, 0x1000);
        assert!(SymbolTable::parse(&buffer).is_none());
    }

    #[test]
    fn non_utf8_name() {
        let (mut buffer, used) = encoded(&SYMBOLS);
        let name_start = used - SYMBOLS[3].name.len();
        buffer[name_start + 1] = 0xff;
        assert!(SymbolTable::parse(&buffer).is_none());
        // A multi-byte character cut by name_len.
        let (mut buffer, _) = encoded(&SYMBOLS);
        let last = HEADER_LEN + 3 * ENTRY_LEN;
        write_u32(&mut buffer, last + ENTRY_NAME_LEN_OFFSET, 1);
        assert!(SymbolTable::parse(&buffer).is_none());
    }
}
