//! A reader for flattened device trees (the DTB format, versions 16 and 17),
//! as skiboot hands the kernel in r3 on powernv.
//!
//! Nothing here allocates and nothing trusts the blob: every offset and length
//! read from it is checked against the slice, so a malformed tree makes a
//! lookup fail (`None`) rather than read out of bounds or panic. `Fdt::new`
//! checks the header once; the structure block is then walked on demand, the
//! way the client interface answers `child`/`peer`/`getprop` one at a time.
//!
//! Layout (devicetree specification, "Flattened devicetree (DTB) format"): a
//! 40-byte big-endian header, a memory reservation block of (address, size)
//! u64 pairs ended by a (0, 0) pair, a structure block of 32-bit tokens, and a
//! strings block holding property names.

use core::fmt;

use crate::tree::{children, DeviceTree, Node};

pub const FDT_MAGIC: u32 = 0xd00d_feed;
/// Bytes of a version 17 header: ten 32-bit fields.
pub const HEADER_SIZE: usize = 40;
/// The oldest layout this reader understands: version 16 gave nodes their
/// unit name instead of a full path, which `find` relies on.
const OLDEST_VERSION: u32 = 16;
/// The newest layout this reader understands; a blob whose
/// `last_comp_version` is higher is not backwards compatible with it.
const NEWEST_VERSION: u32 = 17;

const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_NOP: u32 = 4;
const FDT_END: u32 = 9;

/// The header fields, host byte order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub magic: u32,
    pub totalsize: u32,
    pub off_dt_struct: u32,
    pub off_dt_strings: u32,
    pub off_mem_rsvmap: u32,
    pub version: u32,
    pub last_comp_version: u32,
    /// Physical id (on POWER, the PIR) of the CPU the blob was handed to.
    pub boot_cpuid_phys: u32,
    pub size_dt_strings: u32,
    /// Only in version 17 and later; 0 when the blob is version 16.
    pub size_dt_struct: u32,
}

/// Why a blob is not a device tree this reader can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FdtError {
    /// `from_raw` was given a null pointer.
    Null,
    /// Fewer bytes than the header, or than the header's `totalsize`, say.
    Truncated {
        needed: usize,
        available: usize,
    },
    BadMagic {
        found: u32,
    },
    UnsupportedVersion {
        version: u32,
        last_comp_version: u32,
    },
    /// `totalsize` is too small to hold even the header.
    BadTotalSize {
        totalsize: u32,
    },
    /// A block does not lie inside the blob (or starts inside the header).
    OutOfBounds {
        block: &'static str,
        offset: u32,
        size: u32,
        totalsize: u32,
    },
    Misaligned {
        block: &'static str,
        offset: u32,
        align: u32,
    },
    /// The memory reservation block runs to the end of the blob without its (0, 0) entry.
    UnterminatedReservations,
    /// The structure block does not begin with the root node's FDT_BEGIN_NODE.
    NoRootNode,
}

impl fmt::Display for FdtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            FdtError::Null => write!(f, "the device tree pointer is null"),
            FdtError::Truncated { needed, available } => {
                write!(f, "the device tree blob needs {needed} bytes but only {available} are there")
            }
            FdtError::BadMagic { found } => {
                write!(f, "the device tree blob starts with {found:#010x} instead of the magic {FDT_MAGIC:#010x}")
            }
            FdtError::UnsupportedVersion { version, last_comp_version } => write!(
                f,
                "the device tree blob is version {version} (compatible back to {last_comp_version}) \
                 but only versions {OLDEST_VERSION} to {NEWEST_VERSION} are readable"
            ),
            FdtError::BadTotalSize { totalsize } => {
                write!(f, "the device tree blob's totalsize {totalsize} is smaller than its {HEADER_SIZE}-byte header")
            }
            FdtError::OutOfBounds { block, offset, size, totalsize } => write!(
                f,
                "the device tree {block} block at {offset:#x} ({size:#x} bytes) lies outside the \
                 {totalsize:#x}-byte blob"
            ),
            FdtError::Misaligned { block, offset, align } => {
                write!(f, "the device tree {block} block at {offset:#x} is not {align}-byte aligned")
            }
            FdtError::UnterminatedReservations => {
                write!(f, "the device tree memory reservation block has no terminating (0, 0) entry")
            }
            FdtError::NoRootNode => write!(f, "the device tree structure block does not begin with a node"),
        }
    }
}

/// A validated flattened device tree. Node handles are the structure-block
/// offset of the node's FDT_BEGIN_NODE token plus one (tokens are 4-byte
/// aligned, so no handle is 0 and `handle - 1` is always a token offset).
#[derive(Debug, Clone, Copy)]
pub struct Fdt<'a> {
    /// Exactly `totalsize` bytes.
    blob: &'a [u8],
    header: Header,
    structure: &'a [u8],
    strings: &'a [u8],
    /// Structure-block offset of the root's FDT_BEGIN_NODE (after any NOPs).
    root: usize,
}

/// One property of a node, borrowed from the blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Property<'a> {
    pub name: &'a [u8],
    pub value: &'a [u8],
}

enum Token<'a> {
    Begin { name: &'a [u8] },
    End,
    Prop { name_offset: u32, value: &'a [u8] },
    Nop,
    Finish,
}

fn be32(bytes: &[u8], offset: usize) -> Option<u32> {
    let b = bytes.get(offset..offset.checked_add(4)?)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fn be64(bytes: &[u8], offset: usize) -> Option<u64> {
    Some(((be32(bytes, offset)? as u64) << 32) | be32(bytes, offset.checked_add(4)?)? as u64)
}

fn align4(offset: usize) -> Option<usize> {
    Some(offset.checked_add(3)? & !3)
}

fn handle(offset: usize) -> Node {
    // Offsets lie inside a blob whose size is a u32, and are multiples of 4,
    // so offset + 1 cannot overflow.
    offset as Node + 1
}

/// Checks that `[offset, offset + size)` lies in the blob after the header.
fn block(name: &'static str, offset: u32, size: u32, totalsize: u32) -> Result<(usize, usize), FdtError> {
    let out_of_bounds = FdtError::OutOfBounds { block: name, offset, size, totalsize };
    let end = offset.checked_add(size).ok_or(out_of_bounds)?;
    if (offset as usize) < HEADER_SIZE || end > totalsize {
        return Err(out_of_bounds);
    }
    Ok((offset as usize, end as usize))
}

impl<'a> Fdt<'a> {
    /// Checks the header of the blob at the start of `bytes`, which may be
    /// longer than the blob's `totalsize` but not shorter.
    pub fn new(bytes: &'a [u8]) -> Result<Fdt<'a>, FdtError> {
        if bytes.len() < HEADER_SIZE {
            return Err(FdtError::Truncated { needed: HEADER_SIZE, available: bytes.len() });
        }
        let field = |index: usize| be32(bytes, index * 4).unwrap_or(0);
        let header = Header {
            magic: field(0),
            totalsize: field(1),
            off_dt_struct: field(2),
            off_dt_strings: field(3),
            off_mem_rsvmap: field(4),
            version: field(5),
            last_comp_version: field(6),
            boot_cpuid_phys: field(7),
            size_dt_strings: field(8),
            size_dt_struct: field(9),
        };
        if header.magic != FDT_MAGIC {
            return Err(FdtError::BadMagic { found: header.magic });
        }
        if header.version < OLDEST_VERSION || header.last_comp_version > NEWEST_VERSION {
            return Err(FdtError::UnsupportedVersion {
                version: header.version,
                last_comp_version: header.last_comp_version,
            });
        }
        let totalsize = header.totalsize;
        if (totalsize as usize) < HEADER_SIZE {
            return Err(FdtError::BadTotalSize { totalsize });
        }
        if totalsize as usize > bytes.len() {
            return Err(FdtError::Truncated { needed: totalsize as usize, available: bytes.len() });
        }
        let blob = &bytes[..totalsize as usize];
        let header = Header { size_dt_struct: if header.version >= 17 { header.size_dt_struct } else { 0 }, ..header };

        // The reservation entries are u64 pairs, aligned to 8; there is at
        // least the terminating entry.
        if !header.off_mem_rsvmap.is_multiple_of(8) {
            return Err(FdtError::Misaligned { block: "memory reservation", offset: header.off_mem_rsvmap, align: 8 });
        }
        block("memory reservation", header.off_mem_rsvmap, 16, totalsize)?;

        if !header.off_dt_struct.is_multiple_of(4) {
            return Err(FdtError::Misaligned { block: "structure", offset: header.off_dt_struct, align: 4 });
        }
        // Version 16 does not record the structure block's size: it runs at
        // most to the end of the blob (walks stop at FDT_END anyway).
        let struct_size =
            if header.version >= 17 { header.size_dt_struct } else { totalsize.saturating_sub(header.off_dt_struct) };
        let (struct_start, struct_end) = block("structure", header.off_dt_struct, struct_size, totalsize)?;
        let (strings_start, strings_end) = block("strings", header.off_dt_strings, header.size_dt_strings, totalsize)?;

        let mut fdt = Fdt {
            blob,
            header,
            structure: &blob[struct_start..struct_end],
            strings: &blob[strings_start..strings_end],
            root: 0,
        };
        if !fdt.memreserve_terminated() {
            return Err(FdtError::UnterminatedReservations);
        }
        fdt.root = fdt.skip_nops(0).ok_or(FdtError::NoRootNode)?;
        match fdt.token(fdt.root) {
            Some((Token::Begin { .. }, _)) => Ok(fdt),
            _ => Err(FdtError::NoRootNode),
        }
    }

    /// Reads the blob at `address`: its header's `totalsize` first, then
    /// that many bytes.
    ///
    /// # Safety
    /// `address` must be null or point to at least 8 readable bytes; if those
    /// start with the FDT magic, the header's `totalsize` bytes from `address`
    /// must be readable and must not be written for the rest of the program
    /// (the kernel calls this with the r3 pointer from skiboot, whose blob
    /// lies in memory the kernel keeps reserved).
    #[allow(unsafe_code)]
    pub unsafe fn from_raw(address: *const u8) -> Result<Fdt<'static>, FdtError> {
        if address.is_null() {
            return Err(FdtError::Null);
        }
        // The magic and totalsize: the only bytes the caller promises
        // before the magic is known to match.
        // SAFETY: the caller guarantees 8 readable bytes at `address`, and
        // nothing writes them while this shared slice lives.
        let start = unsafe { core::slice::from_raw_parts(address, 8) };
        let magic = be32(start, 0).unwrap_or(0);
        if magic != FDT_MAGIC {
            return Err(FdtError::BadMagic { found: magic });
        }
        let totalsize = be32(start, 4).unwrap_or(0) as usize;
        if totalsize < HEADER_SIZE {
            return Err(FdtError::BadTotalSize { totalsize: totalsize as u32 });
        }
        // SAFETY: the magic matched, so the caller guarantees `totalsize`
        // readable bytes that stay unwritten for 'static; totalsize is a u32,
        // far below isize::MAX on a 64-bit machine.
        let bytes = unsafe { core::slice::from_raw_parts(address, totalsize) };
        Fdt::new(bytes)
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    pub fn totalsize(&self) -> usize {
        self.blob.len()
    }

    /// The whole blob (`totalsize` bytes).
    pub fn as_bytes(&self) -> &'a [u8] {
        self.blob
    }

    /// The root node.
    pub fn root(&self) -> Node {
        handle(self.root)
    }

    /// The memory reservation block's (address, size) entries, up to the
    /// terminating (0, 0) entry.
    pub fn memreserve(&self) -> MemReserve<'a> {
        let start = self.header.off_mem_rsvmap as usize;
        MemReserve { bytes: self.blob.get(start..).unwrap_or(&[]), offset: 0 }
    }

    /// The node's name as the blob has it (`name@unit`; empty for the root).
    pub fn name(&self, node: Node) -> Option<&'a [u8]> {
        self.begin(node).map(|(name, _)| name)
    }

    /// The node's properties, in blob order. A property whose name does not
    /// resolve to a NUL-terminated string in the strings block is skipped.
    pub fn properties(&self, node: Node) -> Properties<'a> {
        let next = self.begin(node).map(|(_, after_name)| after_name);
        Properties { fdt: *self, next }
    }

    /// The value of property `name` of `node`, borrowed from the blob.
    pub fn property_value(&self, node: Node, name: &str) -> Option<&'a [u8]> {
        self.properties(node).find(|p| p.name == name.as_bytes()).map(|p| p.value)
    }

    /// The token at structure offset `offset` and the offset of the next one.
    fn token(&self, offset: usize) -> Option<(Token<'a>, usize)> {
        let s = self.structure;
        let body = offset.checked_add(4)?;
        match be32(s, offset)? {
            FDT_BEGIN_NODE => {
                let rest = s.get(body..)?;
                let len = rest.iter().position(|&b| b == 0)?;
                Some((Token::Begin { name: &rest[..len] }, align4(body + len + 1)?))
            }
            FDT_END_NODE => Some((Token::End, body)),
            FDT_PROP => {
                let len = be32(s, body)? as usize;
                let name_offset = be32(s, body + 4)?;
                let start = body + 8;
                let end = start.checked_add(len)?;
                let value = s.get(start..end)?;
                Some((Token::Prop { name_offset, value }, align4(end)?))
            }
            FDT_NOP => Some((Token::Nop, body)),
            FDT_END => Some((Token::Finish, body)),
            _ => None,
        }
    }

    fn skip_nops(&self, mut offset: usize) -> Option<usize> {
        // Every token is at least 4 bytes, so this ends within the block.
        while let (Token::Nop, next) = self.token(offset)? {
            offset = next;
        }
        Some(offset)
    }

    /// The name of the node behind `node` and the offset just past it, or
    /// `None` when the handle is not the offset of an FDT_BEGIN_NODE.
    fn begin(&self, node: Node) -> Option<(&'a [u8], usize)> {
        let offset = (node as usize).checked_sub(1)?;
        if !offset.is_multiple_of(4) {
            return None;
        }
        match self.token(offset)? {
            (Token::Begin { name }, next) => Some((name, next)),
            _ => None,
        }
    }

    /// The offset just past the FDT_END_NODE that closes the node at `offset`.
    fn subtree_end(&self, mut offset: usize) -> Option<usize> {
        let mut depth = 0usize;
        loop {
            let (token, next) = self.token(offset)?;
            match token {
                Token::Begin { .. } => depth += 1,
                Token::End => {
                    depth = depth.checked_sub(1)?;
                    if depth == 0 {
                        return Some(next);
                    }
                }
                Token::Finish => return None,
                Token::Prop { .. } | Token::Nop => {}
            }
            // Tokens only move forward, so the walk ends with the block.
            offset = next;
        }
    }

    fn string(&self, offset: u32) -> Option<&'a [u8]> {
        let rest = self.strings.get(offset as usize..)?;
        let len = rest.iter().position(|&b| b == 0)?;
        Some(&rest[..len])
    }

    fn memreserve_terminated(&self) -> bool {
        let mut entries = self.memreserve();
        while entries.next().is_some() {}
        entries.terminated()
    }

    /// Whether a node called `name` answers to the path component
    /// `component`: exactly, or, when the component gives no unit address,
    /// by the name before the node's `@`.
    fn name_matches(name: &[u8], component: &[u8]) -> bool {
        if name == component {
            return true;
        }
        !component.contains(&b'@') && name.strip_prefix(component).is_some_and(|rest| rest.first() == Some(&b'@'))
    }
}

impl DeviceTree for Fdt<'_> {
    /// Resolves an absolute path one component at a time, like OF's
    /// `finddevice`: `cpus/PowerPC,POWER9` finds the first `PowerPC,POWER9@*`
    /// child, `PowerPC,POWER9@4` only that node.
    fn find(&self, path: &str) -> Option<Node> {
        let rest = path.strip_prefix('/')?;
        let mut node = self.root();
        for component in rest.split('/').filter(|c| !c.is_empty()) {
            node = children(self, node)
                .find(|&child| self.name(child).is_some_and(|name| Self::name_matches(name, component.as_bytes())))?;
        }
        Some(node)
    }

    fn child(&self, node: Node) -> Option<Node> {
        let (_, mut offset) = self.begin(node)?;
        loop {
            let (token, next) = self.token(offset)?;
            match token {
                Token::Prop { .. } | Token::Nop => offset = next,
                Token::Begin { .. } => return Some(handle(offset)),
                Token::End | Token::Finish => return None,
            }
        }
    }

    fn peer(&self, node: Node) -> Option<Node> {
        self.begin(node)?;
        let after = self.skip_nops(self.subtree_end(node as usize - 1)?)?;
        match self.token(after)? {
            (Token::Begin { .. }, _) => Some(handle(after)),
            _ => None,
        }
    }

    fn property(&self, node: Node, name: &str, buf: &mut [u8]) -> Option<usize> {
        let value = self.property_value(node, name)?;
        let copy = value.len().min(buf.len());
        buf[..copy].copy_from_slice(&value[..copy]);
        Some(value.len())
    }

    /// The blob has no parent links: the path is found by descending from
    /// the root into the child whose subtree holds `node`. Returns the bytes
    /// written, the path truncated to `buf` if it does not fit.
    fn path(&self, node: Node, buf: &mut [u8]) -> Option<usize> {
        self.begin(node)?;
        let target = node as usize - 1;
        let mut out = PathWriter { buf, len: 0 };
        if target == self.root {
            out.push(b"/");
            return Some(out.len);
        }
        let mut current = self.root();
        loop {
            let mut inner = None;
            for child in children(self, current) {
                let offset = child as usize - 1;
                let name = self.name(child)?;
                if offset == target {
                    out.push(b"/");
                    out.push(name);
                    return Some(out.len);
                }
                if offset < target && target < self.subtree_end(offset)? {
                    out.push(b"/");
                    out.push(name);
                    inner = Some(child);
                    break;
                }
            }
            // A handle inside no node's subtree (e.g. one inside a property
            // value that happens to look like a node) has no path.
            current = inner?;
        }
    }
}

struct PathWriter<'b> {
    buf: &'b mut [u8],
    len: usize,
}

impl PathWriter<'_> {
    fn push(&mut self, bytes: &[u8]) {
        let room = self.buf.len() - self.len;
        let copy = bytes.len().min(room);
        self.buf[self.len..self.len + copy].copy_from_slice(&bytes[..copy]);
        self.len += copy;
    }
}

/// The memory reservation block's entries (`Fdt::memreserve`).
#[derive(Debug, Clone)]
pub struct MemReserve<'a> {
    /// From the block's start to the end of the blob.
    bytes: &'a [u8],
    /// Of the next entry; `usize::MAX` once the (0, 0) entry was read.
    offset: usize,
}

impl MemReserve<'_> {
    fn terminated(&self) -> bool {
        self.offset == usize::MAX
    }
}

impl Iterator for MemReserve<'_> {
    type Item = (u64, u64);

    fn next(&mut self) -> Option<(u64, u64)> {
        if self.terminated() {
            return None;
        }
        let address = be64(self.bytes, self.offset)?;
        let size = be64(self.bytes, self.offset.checked_add(8)?)?;
        if address == 0 && size == 0 {
            self.offset = usize::MAX;
            return None;
        }
        self.offset += 16;
        Some((address, size))
    }
}

/// A node's properties (`Fdt::properties`).
#[derive(Debug, Clone)]
pub struct Properties<'a> {
    fdt: Fdt<'a>,
    /// Structure offset of the next token, `None` once past the properties.
    next: Option<usize>,
}

impl<'a> Iterator for Properties<'a> {
    type Item = Property<'a>;

    fn next(&mut self) -> Option<Property<'a>> {
        loop {
            let (token, next) = self.fdt.token(self.next?)?;
            self.next = Some(next);
            match token {
                Token::Prop { name_offset, value } => {
                    if let Some(name) = self.fdt.string(name_offset) {
                        return Some(Property { name, value });
                    }
                }
                Token::Nop => {}
                Token::Begin { .. } | Token::End | Token::Finish => {
                    self.next = None;
                    return None;
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod build {
    //! Writes small device-tree blobs for tests, in the layout dtc uses:
    //! header, reservation block, structure block, strings block.
    extern crate std;
    use std::vec::Vec;

    #[derive(Default)]
    pub struct Builder {
        reserve: Vec<(u64, u64)>,
        structure: Vec<u8>,
        strings: Vec<u8>,
        pub boot_cpu: u32,
    }

    impl Builder {
        pub fn new() -> Self {
            Builder::default()
        }

        fn token(&mut self, token: u32) {
            self.structure.extend_from_slice(&token.to_be_bytes());
        }

        fn pad(&mut self) {
            while !self.structure.len().is_multiple_of(4) {
                self.structure.push(0);
            }
        }

        pub fn reserve(&mut self, address: u64, size: u64) -> &mut Self {
            self.reserve.push((address, size));
            self
        }

        pub fn begin(&mut self, name: &str) -> &mut Self {
            self.token(super::FDT_BEGIN_NODE);
            self.structure.extend_from_slice(name.as_bytes());
            self.structure.push(0);
            self.pad();
            self
        }

        pub fn end(&mut self) -> &mut Self {
            self.token(super::FDT_END_NODE);
            self
        }

        pub fn nop(&mut self) -> &mut Self {
            self.token(super::FDT_NOP);
            self
        }

        pub fn prop(&mut self, name: &str, value: &[u8]) -> &mut Self {
            let offset = self.string_offset(name);
            self.token(super::FDT_PROP);
            self.structure.extend_from_slice(&(value.len() as u32).to_be_bytes());
            self.structure.extend_from_slice(&offset.to_be_bytes());
            self.structure.extend_from_slice(value);
            self.pad();
            self
        }

        pub fn prop_cells(&mut self, name: &str, cells: &[u32]) -> &mut Self {
            let bytes: Vec<u8> = cells.iter().flat_map(|c| c.to_be_bytes()).collect();
            self.prop(name, &bytes)
        }

        pub fn prop_str(&mut self, name: &str, value: &str) -> &mut Self {
            let mut bytes = value.as_bytes().to_vec();
            bytes.push(0);
            self.prop(name, &bytes)
        }

        fn string_offset(&mut self, name: &str) -> u32 {
            // Names are shared, as dtc shares them.
            let mut needle = name.as_bytes().to_vec();
            needle.push(0);
            let mut start = 0;
            for piece in self.strings.split_inclusive(|&b| b == 0) {
                if piece == needle.as_slice() {
                    return start as u32;
                }
                start += piece.len();
            }
            let offset = self.strings.len() as u32;
            self.strings.extend_from_slice(&needle);
            offset
        }

        /// The blob; the structure block is ended with FDT_END.
        pub fn finish(&self) -> Vec<u8> {
            let mut structure = self.structure.clone();
            structure.extend_from_slice(&super::FDT_END.to_be_bytes());
            let reserve_at = super::HEADER_SIZE;
            let struct_at = reserve_at + (self.reserve.len() + 1) * 16;
            let strings_at = struct_at + structure.len();
            let total = strings_at + self.strings.len();
            let mut blob = Vec::new();
            for field in [
                super::FDT_MAGIC,
                total as u32,
                struct_at as u32,
                strings_at as u32,
                reserve_at as u32,
                17,
                16,
                self.boot_cpu,
                self.strings.len() as u32,
                structure.len() as u32,
            ] {
                blob.extend_from_slice(&field.to_be_bytes());
            }
            for &(address, size) in self.reserve.iter().chain([(0, 0)].iter()) {
                blob.extend_from_slice(&address.to_be_bytes());
                blob.extend_from_slice(&size.to_be_bytes());
            }
            blob.extend_from_slice(&structure);
            blob.extend_from_slice(&self.strings);
            blob
        }
    }

    /// Overwrites header field `index` (0 = magic ... 9 = size_dt_struct).
    pub fn set_field(blob: &mut [u8], index: usize, value: u32) {
        blob[index * 4..index * 4 + 4].copy_from_slice(&value.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::build::{set_field, Builder};
    use super::*;
    use crate::tree::{cells, first_string};
    use std::string::String;
    use std::vec::Vec;

    const SMP1: &[u8] = include_bytes!("../tests/data/skiboot-powernv9-smp1.dtb");
    const SMP4: &[u8] = include_bytes!("../tests/data/skiboot-powernv9-smp4.dtb");

    /// Every node, depth first (child before peer), as the blob orders them.
    fn all_nodes(fdt: &Fdt<'_>) -> Vec<Node> {
        fn walk(fdt: &Fdt<'_>, node: Node, out: &mut Vec<Node>) {
            out.push(node);
            for child in children(fdt, node) {
                walk(fdt, child, out);
            }
        }
        let mut out = Vec::new();
        walk(fdt, fdt.root(), &mut out);
        out
    }

    fn path_of(fdt: &Fdt<'_>, node: Node) -> String {
        let mut buf = [0u8; 256];
        let len = fdt.path(node, &mut buf).unwrap();
        String::from_utf8(buf[..len].to_vec()).unwrap()
    }

    fn prop<'a>(fdt: &Fdt<'a>, path: &str, name: &str) -> &'a [u8] {
        let node = fdt.find(path).unwrap_or_else(|| panic!("no node {path}"));
        fdt.property_value(node, name).unwrap_or_else(|| panic!("{path} has no {name}"))
    }

    fn u32s(bytes: &[u8]) -> Vec<u32> {
        cells(bytes).collect()
    }

    #[test]
    fn skiboot_header_and_reservations() {
        let fdt = Fdt::new(SMP1).unwrap();
        let h = fdt.header();
        assert_eq!((h.magic, h.version, h.last_comp_version), (FDT_MAGIC, 17, 16));
        assert_eq!(fdt.totalsize(), SMP1.len());
        assert_eq!(h.boot_cpuid_phys, 0);
        let smp1: Vec<_> = fdt.memreserve().collect();
        assert_eq!(
            smp1,
            [
                (0x3000_0000, 0x60_0000),
                (0x3060_0000, 0xa0_0000),
                (0x3100_0000, 0xc1_0000),
                (0x31c1_0000, 0x8000),
                (0x31c1_8000, 0xcf_8000),
                (0x203f_fd80_0000, 0x40_0000),
                (0x203f_ff80_0000, 0x80_0000),
            ]
        );

        let fdt = Fdt::new(SMP4).unwrap();
        assert_eq!(fdt.totalsize(), SMP4.len());
        // skiboot stamps the PIR of whichever thread ran its boot path; with
        // four CPUs that was not thread 0.
        assert_eq!(fdt.header().boot_cpuid_phys, 8);
        let smp4: Vec<_> = fdt.memreserve().collect();
        assert_eq!(smp4[3..5], [(0x31c1_0000, 0x6_8000), (0x31c7_8000, 0x14f_8000)]);
        assert_eq!(smp4.len(), 7);
    }

    #[test]
    fn skiboot_nodes_and_properties() {
        let fdt = Fdt::new(SMP4).unwrap();
        assert_eq!(first_string(prop(&fdt, "/chosen", "bootargs")), b"mmu=hash loglevel=debug");
        assert_eq!(first_string(prop(&fdt, "/chosen", "linux,stdout-path")), b"/ibm,opal/consoles/serial@0");
        assert_eq!(prop(&fdt, "/ibm,opal", "compatible"), b"ibm,opal-v3\0");
        assert_eq!(u32s(prop(&fdt, "/ibm,opal", "opal-base-address")), [0, 0x3000_0000]);
        assert_eq!(u32s(prop(&fdt, "/ibm,opal", "opal-entry-address")), [0, 0x3000_3770]);
        assert_eq!(prop(&fdt, "/ibm,opal/consoles/serial@0", "compatible"), b"ibm,opal-console-raw\0");
        assert_eq!(u32s(prop(&fdt, "/memory@0", "reg")), [0, 0, 0, 0x4000_0000]);

        let cpus = fdt.find("/cpus").unwrap();
        let names: Vec<_> = children(&fdt, cpus).map(|c| fdt.name(c).unwrap()).collect();
        assert_eq!(
            names,
            [
                &b"PowerPC,POWER9@0"[..],
                b"PowerPC,POWER9@4",
                b"PowerPC,POWER9@8",
                b"PowerPC,POWER9@c",
                b"ibm,powerpc-cpu-features"
            ]
        );
        for (index, path) in
            ["/cpus/PowerPC,POWER9@0", "/cpus/PowerPC,POWER9@4", "/cpus/PowerPC,POWER9@8"].iter().enumerate()
        {
            assert_eq!(u32s(prop(&fdt, path, "ibm,ppc-interrupt-server#s")), [index as u32 * 4]);
            assert_eq!(u32s(prop(&fdt, path, "timebase-frequency")), [512_000_000]);
            assert_eq!(u32s(prop(&fdt, path, "ibm,dec-bits")), [56]);
        }
        // What powernv does not have.
        assert_eq!(fdt.find("/rtas"), None);
        let cpu = fdt.find("/cpus/PowerPC,POWER9@0").unwrap();
        assert_eq!(fdt.property_value(cpu, "ibm,pft-size"), None);
        assert_eq!(fdt.property_value(cpu, "ibm,processor-radix-AP-encodings"), None);
        assert_eq!(fdt.property_value(cpu, "slb-size"), None);
        assert_eq!(u32s(prop(&fdt, "/cpus/PowerPC,POWER9@0", "ibm,slb-size")), [32]);
    }

    #[test]
    fn unit_addresses_match_as_in_open_firmware() {
        let fdt = Fdt::new(SMP4).unwrap();
        // Without a unit address: the first node of that name.
        assert_eq!(fdt.find("/cpus/PowerPC,POWER9"), fdt.find("/cpus/PowerPC,POWER9@0"));
        assert_eq!(fdt.find("/memory"), fdt.find("/memory@0"));
        assert!(fdt.find("/interrupt-controller").is_some());
        // With one: that node only.
        assert_ne!(fdt.find("/cpus/PowerPC,POWER9@8"), fdt.find("/cpus/PowerPC,POWER9@0"));
        assert_eq!(path_of(&fdt, fdt.find("/cpus/PowerPC,POWER9@8").unwrap()), "/cpus/PowerPC,POWER9@8");
        assert_eq!(fdt.find("/cpus/PowerPC,POWER9@10"), None);
        // A prefix of a name is not the name.
        assert_eq!(fdt.find("/cpus/PowerPC"), None);
        assert_eq!(fdt.find("/cpu"), None);

        let mut b = Builder::new();
        b.begin("").begin("a@1").end().begin("ab").end().begin("a").end().begin("a@2").end().begin("b@3").end().end();
        let blob = b.finish();
        let fdt = Fdt::new(&blob).unwrap();
        let named = |path: &str| fdt.find(path).map(|n| String::from_utf8(fdt.name(n).unwrap().to_vec()).unwrap());
        assert_eq!(named("/a").as_deref(), Some("a@1"), "the first of the a nodes");
        assert_eq!(named("/a@2").as_deref(), Some("a@2"));
        assert_eq!(named("/ab").as_deref(), Some("ab"));
        assert_eq!(named("/b").as_deref(), Some("b@3"));
        assert_eq!(named("/a@"), None);
        assert_eq!(named("/a@3"), None);
        assert_eq!(named("/b@"), None);
        assert_eq!(named("/").as_deref(), Some(""));
        assert_eq!(named("//ab/").as_deref(), Some("ab"), "empty components are ignored");
        assert_eq!(named("ab"), None, "paths are absolute");
        assert_eq!(named(""), None);
    }

    #[test]
    fn every_node_has_a_path_that_finds_it() {
        // Node counts: one per FDT_BEGIN_NODE (three more CPU nodes with -smp 4).
        for (blob, count) in [(SMP1, 143), (SMP4, 146)] {
            let fdt = Fdt::new(blob).unwrap();
            let nodes = all_nodes(&fdt);
            assert_eq!(nodes.len(), count);
            for node in nodes {
                let path = path_of(&fdt, node);
                assert_eq!(fdt.find(&path), Some(node), "{path}");
            }
        }
    }

    #[test]
    fn property_copies_what_fits_and_returns_the_full_length() {
        let fdt = Fdt::new(SMP1).unwrap();
        let chosen = fdt.find("/chosen").unwrap();
        let mut buf = [0xaau8; 4];
        assert_eq!(fdt.property(chosen, "bootargs", &mut buf), Some(24));
        assert_eq!(&buf, b"mmu=");
        let mut buf = [0u8; 64];
        assert_eq!(fdt.property(chosen, "bootargs", &mut buf), Some(24));
        assert_eq!(&buf[..24], b"mmu=hash loglevel=debug\0");
        assert_eq!(buf[24], 0);
        assert_eq!(fdt.property(chosen, "no-such-property", &mut buf), None);
        // An empty property exists with length 0.
        let cpu = fdt.find("/cpus/PowerPC,POWER9@0").unwrap();
        assert_eq!(fdt.property(cpu, "64-bit", &mut buf), Some(0));
        // Properties of one node only, not of its children.
        let opal = fdt.find("/ibm,opal").unwrap();
        assert_eq!(fdt.property(opal, "#write-buffer-size", &mut buf), None);
        assert!(fdt.properties(opal).any(|p| p.name == b"opal-entry-address"));
    }

    #[test]
    fn path_is_truncated_to_the_buffer() {
        let fdt = Fdt::new(SMP1).unwrap();
        let node = fdt.find("/ibm,opal/consoles/serial@0").unwrap();
        let mut buf = [0u8; 12];
        assert_eq!(fdt.path(node, &mut buf), Some(12));
        assert_eq!(&buf, b"/ibm,opal/co");
        assert_eq!(fdt.path(fdt.root(), &mut buf), Some(1));
        assert_eq!(fdt.path(node, &mut []), Some(0));
    }

    #[test]
    fn handles_that_are_not_nodes_are_refused() {
        let fdt = Fdt::new(SMP1).unwrap();
        let root = fdt.root();
        assert_eq!(root, 1);
        let mut buf = [0u8; 16];
        // 0, unaligned, past the end, and the offset of a property token.
        for bad in [0, 2, 3, u32::MAX, SMP1.len() as u32 + 1, root + 4] {
            assert_eq!(fdt.child(bad), None, "{bad}");
            assert_eq!(fdt.peer(bad), None, "{bad}");
            assert_eq!(fdt.property(bad, "phandle", &mut buf), None, "{bad}");
            assert_eq!(fdt.path(bad, &mut buf), None, "{bad}");
            assert_eq!(fdt.name(bad), None, "{bad}");
        }
        assert_eq!(fdt.peer(root), None, "the root has no peers");
    }

    #[test]
    fn nops_are_skipped_anywhere() {
        let mut b = Builder::new();
        b.nop().begin("").nop().prop_cells("#address-cells", &[2]).nop();
        b.begin("x@1").nop().prop_str("p", "v").end().nop().begin("y").end().nop().end().nop();
        let blob = b.finish();
        let fdt = Fdt::new(&blob).unwrap();
        let x = fdt.find("/x").unwrap();
        assert_eq!(fdt.child(fdt.root()), Some(x));
        assert_eq!(fdt.peer(x), fdt.find("/y"));
        assert_eq!(fdt.property_value(x, "p"), Some(&b"v\0"[..]));
        assert_eq!(fdt.properties(fdt.root()).count(), 1);
        assert_eq!(path_of(&fdt, fdt.find("/y").unwrap()), "/y");
    }

    fn small_blob() -> Vec<u8> {
        let mut b = Builder::new();
        b.reserve(0x3000_0000, 0x1000);
        b.begin("").prop_cells("#address-cells", &[2]).prop_str("compatible", "test");
        b.begin("cpus").begin("cpu@0").prop_cells("reg", &[0]).end().begin("cpu@1").prop_cells("reg", &[1]).end().end();
        b.begin("chosen").prop_str("bootargs", "x").end();
        b.end();
        b.finish()
    }

    #[test]
    fn header_errors() {
        let good = small_blob();
        assert!(Fdt::new(&good).is_ok());
        let with = |index: usize, value: u32| {
            let mut blob = good.clone();
            set_field(&mut blob, index, value);
            Fdt::new(&blob).map(|_| ()).unwrap_err()
        };
        let total = good.len() as u32;
        assert_eq!(with(0, 0xfeed_d00d), FdtError::BadMagic { found: 0xfeed_d00d });
        assert_eq!(with(5, 15), FdtError::UnsupportedVersion { version: 15, last_comp_version: 16 });
        assert_eq!(with(6, 18), FdtError::UnsupportedVersion { version: 17, last_comp_version: 18 });
        assert_eq!(with(1, 39), FdtError::BadTotalSize { totalsize: 39 });
        assert_eq!(with(1, total + 1), FdtError::Truncated { needed: total as usize + 1, available: total as usize });
        assert_eq!(with(2, 0x3a), FdtError::Misaligned { block: "structure", offset: 0x3a, align: 4 });
        assert!(matches!(with(2, total & !3), FdtError::OutOfBounds { block: "structure", .. }));
        assert!(matches!(with(9, u32::MAX), FdtError::OutOfBounds { block: "structure", .. }));
        assert!(matches!(with(3, 8), FdtError::OutOfBounds { block: "strings", .. }));
        assert!(matches!(with(8, total), FdtError::OutOfBounds { block: "strings", .. }));
        assert_eq!(with(4, 0x2c), FdtError::Misaligned { block: "memory reservation", offset: 0x2c, align: 8 });
        assert!(matches!(with(4, (total - 8) & !7), FdtError::OutOfBounds { block: "memory reservation", .. }));
        assert_eq!(Fdt::new(&good[..39]).unwrap_err(), FdtError::Truncated { needed: 40, available: 39 });

        // The reservation block's terminator overwritten, with nothing after
        // it that reads as (0, 0) before the end of the blob.
        let mut blob = good.clone();
        let reserve = HEADER_SIZE;
        for byte in &mut blob[reserve + 16..] {
            *byte = 0xff;
        }
        assert_eq!(Fdt::new(&blob).unwrap_err(), FdtError::UnterminatedReservations);

        // A structure block that starts with a property, not a node.
        let mut blob = good.clone();
        let structure = u32::from_be_bytes(good[8..12].try_into().unwrap()) as usize;
        blob[structure..structure + 4].copy_from_slice(&FDT_PROP.to_be_bytes());
        assert_eq!(Fdt::new(&blob).unwrap_err(), FdtError::NoRootNode);

        // Every message is one sentence on one line.
        for error in [
            FdtError::Null,
            FdtError::NoRootNode,
            FdtError::UnterminatedReservations,
            with(0, 1),
            with(5, 1),
            with(1, 1),
            with(1, total + 1),
            with(2, 1),
            with(3, total),
        ] {
            let text = std::format!("{error}");
            assert!(!text.is_empty() && !text.contains('\n') && !text.ends_with('.'), "{text}");
            assert!(text.starts_with("the device tree"), "{text}");
        }
    }

    #[test]
    fn longer_slices_are_cut_to_totalsize_and_version_16_is_read() {
        let mut blob = small_blob();
        let total = blob.len();
        blob.extend_from_slice(&[0xff; 64]);
        let fdt = Fdt::new(&blob).unwrap();
        assert_eq!(fdt.totalsize(), total);
        assert_eq!(fdt.as_bytes(), &blob[..total]);

        // Version 16 has no size_dt_struct; whatever the field holds is ignored.
        set_field(&mut blob, 5, 16);
        set_field(&mut blob, 9, 0xdead_beef);
        let fdt = Fdt::new(&blob).unwrap();
        assert_eq!(fdt.header().size_dt_struct, 0);
        assert!(fdt.find("/cpus/cpu@1").is_some());
        assert_eq!(fdt.memreserve().collect::<Vec<_>>(), [(0x3000_0000, 0x1000)]);
    }

    /// Walks everything the reader offers; used on corrupted blobs, where
    /// the answers do not matter but the absence of panics does.
    fn exercise(fdt: &Fdt<'_>) -> usize {
        let mut seen = fdt.memreserve().count();
        let mut stack = std::vec![fdt.root()];
        let mut buf = [0u8; 32];
        let mut nodes = 0;
        while let Some(node) = stack.pop() {
            nodes += 1;
            if nodes > 2000 {
                break;
            }
            seen += fdt.properties(node).count();
            let _ = fdt.property(node, "reg", &mut buf);
            // path costs a walk of the tree: a sample is enough.
            if nodes % 16 == 1 {
                let _ = fdt.path(node, &mut buf);
            }
            stack.extend(fdt.child(node));
            stack.extend(fdt.peer(node));
        }
        for path in ["/", "/cpus", "/cpus/PowerPC,POWER9", "/ibm,opal/consoles/serial@0", "/chosen"] {
            seen += fdt.find(path).is_some() as usize;
        }
        seen
    }

    #[test]
    fn truncated_blobs_are_refused() {
        for blob in [&small_blob()[..], SMP1] {
            for len in 0..blob.len() {
                assert!(Fdt::new(&blob[..len]).is_err(), "{len}");
            }
        }
    }

    #[test]
    fn shortened_structure_blocks_are_walked_safely() {
        // The header says the structure block is shorter than it is: walks
        // meet tokens cut in half and subtrees that never end.
        for (blob, step) in [(small_blob(), 1), (SMP1.to_vec(), 97)] {
            let size = u32::from_be_bytes(blob[36..40].try_into().unwrap());
            for cut in (0..size).step_by(step) {
                let mut short = blob.clone();
                set_field(&mut short, 9, cut);
                match Fdt::new(&short) {
                    Ok(fdt) => {
                        exercise(&fdt);
                    }
                    Err(error) => assert!(cut < 8 && error == FdtError::NoRootNode, "{cut}: {error}"),
                }
            }
        }
    }

    #[test]
    fn corrupted_blobs_do_not_panic() {
        // A fixed pseudo-random sequence (xorshift), so failures reproduce.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut random = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let small = small_blob();
        let mut accepted = 0;
        for round in 0..3000 {
            let mut blob = if round % 3 == 0 { SMP1.to_vec() } else { small.clone() };
            for _ in 0..1 + random() % 4 {
                let at = random() as usize % blob.len();
                // Mostly small numbers and token values, which walk further.
                blob[at] = match random() % 4 {
                    0 => 0,
                    1 => random() as u8 % 10,
                    2 => 0xff,
                    _ => random() as u8,
                };
            }
            if let Ok(fdt) = Fdt::new(&blob) {
                accepted += 1;
                exercise(&fdt);
            }
        }
        assert!(accepted > 1000, "most corruptions hit the tree, not the header: {accepted}");
    }

    #[test]
    fn subtrees_that_never_end_have_no_peer() {
        let mut b = Builder::new();
        b.begin("").begin("open").begin("inner");
        let blob = b.finish();
        let fdt = Fdt::new(&blob).unwrap();
        let open = fdt.find("/open").unwrap();
        assert_eq!(fdt.peer(open), None);
        assert!(fdt.find("/open/inner").is_some());
        // The root's direct children are found by position; deeper nodes
        // need their parents' ends, which this blob does not have.
        let mut buf = [0u8; 16];
        assert_eq!(fdt.path(open, &mut buf), Some(5));
        assert_eq!(fdt.path(fdt.find("/open/inner").unwrap(), &mut buf), None);
    }

    #[test]
    #[allow(unsafe_code)]
    fn from_raw_reads_totalsize_first() {
        let blob = small_blob();
        // SAFETY: `blob` is alive, unchanged, and totalsize bytes long for the
        // test; the 'static the result claims is not relied on past it.
        let fdt = unsafe { Fdt::from_raw(blob.as_ptr()) }.unwrap();
        assert_eq!(fdt.totalsize(), blob.len());
        assert_eq!(fdt.as_bytes().as_ptr(), blob.as_ptr());

        // Only 8 bytes: a wrong magic stops before totalsize is trusted.
        let bytes = [0u8, 0, 0, 0, 0xff, 0xff, 0xff, 0xff];
        // SAFETY: 8 readable bytes that stay unchanged.
        assert_eq!(unsafe { Fdt::from_raw(bytes.as_ptr()) }.unwrap_err(), FdtError::BadMagic { found: 0 });
        let bytes = [0xd0u8, 0x0d, 0xfe, 0xed, 0, 0, 0, 8];
        // SAFETY: as above; totalsize 8 is refused before a longer read.
        assert_eq!(unsafe { Fdt::from_raw(bytes.as_ptr()) }.unwrap_err(), FdtError::BadTotalSize { totalsize: 8 });
        // SAFETY: null is allowed by the contract.
        assert_eq!(unsafe { Fdt::from_raw(core::ptr::null()) }.unwrap_err(), FdtError::Null);
    }
}
