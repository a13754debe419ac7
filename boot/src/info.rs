//! `BootInfo`: everything the kernel needs from the device tree, read once at
//! boot while the firmware is still alive. Fixed-capacity storage: this runs
//! before there is any memory allocator.

use core::fmt;

use heapless::{String, Vec};

use crate::fdt::Fdt;
use crate::tree::{self, children, DeviceTree, Node};

pub const MAX_MEMORY_RANGES: usize = 32;
/// Firmware-reserved ranges `BootInfo` records (skiboot publishes seven on
/// QEMU's powernv9, each three times over).
pub const MAX_RESERVED_RANGES: usize = 32;
/// CPUs the kernel runs on, the one limit of the tree (`kernel::cpuset`
/// uses it; it lives here because the kernel crate depends on this one):
/// `BootInfo` records this many CPU threads of the device tree and counts
/// the rest, which the kernel leaves stopped.
pub const MAX_CPUS: usize = 256;
pub const MAX_BOOTARGS: usize = 1024;

/// A physical address range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub start: u64,
    pub size: u64,
}

impl Range {
    pub fn end(&self) -> u64 {
        self.start + self.size
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firmware {
    /// QEMU's Virtual Open Firmware (`-M pseries,x-vof=on`).
    Vof,
    /// SLOF, QEMU's default pseries firmware.
    Slof,
    /// OPAL firmware on bare metal (powernv), which passes a flattened tree.
    Skiboot,
    Unknown,
}

impl Firmware {
    pub fn name(self) -> &'static str {
        match self {
            Firmware::Vof => "vof",
            Firmware::Slof => "slof",
            Firmware::Skiboot => "skiboot",
            Firmware::Unknown => "unknown",
        }
    }
}

/// One hardware thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cpu {
    /// Interrupt-server number (PAPR `ibm,ppc-interrupt-server#s`), which is
    /// also the value `start-cpu` takes and, on QEMU, the thread's PIR.
    pub server: u32,
    /// `reg` of the core node this thread belongs to.
    pub core: u32,
    /// Thread index within the core.
    pub thread: u32,
}

/// RTAS tokens the kernel uses (PAPR "RTAS" chapter; each is a property of `/rtas`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RtasTokens {
    pub power_off: u32,
    pub system_reboot: Option<u32>,
    pub start_cpu: Option<u32>,
    pub query_cpu_stopped_state: Option<u32>,
    pub stop_self: Option<u32>,
    pub display_character: Option<u32>,
    pub get_time_of_day: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rtas {
    /// `rtas-size`: how much memory RTAS needs when instantiated.
    pub size: u32,
    /// Where RTAS was instantiated and its entry (filled in by the caller after
    /// `instantiate-rtas`).
    pub base: u64,
    pub entry: u64,
    pub tokens: RtasTokens,
}

/// Where skiboot's OPAL runtime lives (`/ibm,opal`). OPAL stays resident:
/// the kernel calls it at `entry` with r2 = `base` for as long as it runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Opal {
    /// `opal-base-address`.
    pub base: u64,
    /// `opal-entry-address`.
    pub entry: u64,
}

/// Facts from the device tree. Required properties are checked by
/// `BootInfo::read`; optional ones are `Option`s or may be empty.
#[derive(Debug, Clone, Default)]
pub struct BootInfo {
    pub firmware: Option<Firmware>,
    /// `reg` of every memory node.
    pub memory: Vec<Range, MAX_MEMORY_RANGES>,
    /// `available` of every memory node (memory the firmware has not claimed),
    /// empty when the firmware does not publish it.
    pub available: Vec<Range, MAX_MEMORY_RANGES>,
    /// Size of the memory node at address 0: the real-mode area (RMA), all the
    /// kernel can touch while translation is off.
    pub real_mode_limit: u64,
    /// The device tree's CPU threads, the first MAX_CPUS of them.
    pub cpus: Vec<Cpu, MAX_CPUS>,
    /// Threads the device tree lists beyond those in `cpus`.
    pub cpus_beyond_limit: usize,
    pub timebase_frequency: u64,
    /// log2 of the hashed page table size (`ibm,pft-size`, second cell).
    pub hpt_size_log2: Option<u32>,
    pub slb_size: Option<u32>,
    /// `ibm,processor-radix-AP-encodings`: supported radix page sizes.
    pub radix_page_sizes: Vec<u32, 8>,
    /// `ibm,segment-page-sizes`: hash segment/page size encodings.
    pub hash_page_sizes: Vec<u32, 64>,
    /// `/chosen ibm,arch-vec-5-platform-support`: MMU modes the platform offers.
    pub arch_vec5_support: Vec<u8, 16>,
    /// `/chosen ibm,architecture-vec-5`: what CAS negotiated ([len - 1, byte 1, ...]).
    pub arch_vec5: Vec<u8, 32>,
    /// `/interrupt-controller ibm,interrupt-server-ranges` (XICS).
    pub interrupt_server_ranges: Vec<(u32, u32), 8>,
    pub dcache_block_size: u32,
    pub icache_block_size: u32,
    pub bootargs: String<MAX_BOOTARGS>,
    /// `reg` of the `/chosen` stdout device: the hvc terminal number
    /// (pseries only; skiboot's console is an OPAL one).
    pub console_termno: Option<u32>,
    /// Zero (and `/rtas` optional) on skiboot, which has no RTAS.
    pub rtas: Rtas,
    /// Present exactly when the firmware is skiboot.
    pub opal: Option<Opal>,
    /// Memory the firmware keeps for itself, sorted, each range once: the
    /// root's `reserved-ranges`, `/reserved-memory` children's `reg`, and
    /// (from `read_fdt`) the blob's reservation block and the blob itself.
    pub reserved: Vec<Range, MAX_RESERVED_RANGES>,
    /// The blob header's `boot_cpuid_phys`: the PIR of the thread the
    /// firmware entered the kernel on (`read_fdt` only).
    pub boot_cpu: Option<u32>,
}

/// A required property the device tree lacks, or one it has in a form the
/// kernel cannot use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootError {
    MissingNode { path: &'static str },
    MissingProperty { node: String<64>, property: &'static str },
    Malformed { node: String<64>, property: &'static str, why: &'static str },
    TooMany { what: &'static str, limit: usize },
}

impl fmt::Display for BootError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BootError::MissingNode { path } => write!(f, "device tree has no node {path}"),
            BootError::MissingProperty { node, property } => {
                write!(f, "device tree node {node} lacks required property \"{property}\"")
            }
            BootError::Malformed { node, property, why } => {
                write!(f, "device tree node {node}: property \"{property}\" {why}")
            }
            BootError::TooMany { what, limit } => {
                write!(f, "device tree has more {what} than this kernel supports ({limit})")
            }
        }
    }
}

/// Property reads with the error reporting `BootInfo` needs.
struct Reader<'a, T: DeviceTree + ?Sized> {
    tree: &'a T,
}

impl<T: DeviceTree + ?Sized> Reader<'_, T> {
    fn node_path(&self, node: Node) -> String<64> {
        let mut buf = [0u8; 64];
        let len = self.tree.path(node, &mut buf).unwrap_or(0);
        let mut path = String::new();
        let text = core::str::from_utf8(&buf[..len]).unwrap_or("?");
        let _ = path.push_str(text);
        path
    }

    /// Reads a property that must exist into `buf`, returning its bytes.
    fn required<'b>(&self, node: Node, property: &'static str, buf: &'b mut [u8]) -> Result<&'b [u8], BootError> {
        match self.tree.property(node, property, buf) {
            None => Err(BootError::MissingProperty { node: self.node_path(node), property }),
            Some(len) if len > buf.len() => Err(self.malformed(node, property, "is longer than expected")),
            Some(len) => Ok(&buf[..len]),
        }
    }

    fn optional<'b>(&self, node: Node, property: &str, buf: &'b mut [u8]) -> Option<&'b [u8]> {
        let len = self.tree.property(node, property, buf)?;
        Some(&buf[..len.min(buf.len())])
    }

    fn required_u32(&self, node: Node, property: &'static str) -> Result<u32, BootError> {
        let mut buf = [0u8; 8];
        let bytes = self.required(node, property, &mut buf)?;
        read_u32(bytes).ok_or_else(|| self.malformed(node, property, "is not a 32-bit cell"))
    }

    /// A 64-bit number in two cells.
    fn required_u64(&self, node: Node, property: &'static str) -> Result<u64, BootError> {
        let mut buf = [0u8; 8];
        let bytes = self.required(node, property, &mut buf)?;
        if bytes.len() != 8 {
            return Err(self.malformed(node, property, "is not two cells"));
        }
        Ok(tree::read_cells(bytes, 2).unwrap_or(0))
    }

    fn optional_u32(&self, node: Node, property: &str) -> Option<u32> {
        let mut buf = [0u8; 8];
        self.optional(node, property, &mut buf).and_then(read_u32)
    }

    /// `#address-cells` / `#size-cells` of a bus node, with the IEEE 1275 defaults.
    fn cell_counts(&self, node: Node) -> (usize, usize) {
        let address = self.optional_u32(node, "#address-cells").unwrap_or(2);
        let size = self.optional_u32(node, "#size-cells").unwrap_or(1);
        (address as usize, size as usize)
    }

    fn is_device_type(&self, node: Node, wanted: &[u8]) -> bool {
        let mut buf = [0u8; 32];
        self.optional(node, "device_type", &mut buf).map(tree::first_string) == Some(wanted)
    }

    fn malformed(&self, node: Node, property: &'static str, why: &'static str) -> BootError {
        BootError::Malformed { node: self.node_path(node), property, why }
    }

    /// Parses a list of (address, size) pairs such as `reg` or `available`,
    /// handing each non-empty range to `each`.
    fn ranges(
        &self,
        node: Node,
        property: &'static str,
        bytes: &[u8],
        cells: (usize, usize),
        mut each: impl FnMut(Range) -> Result<(), BootError>,
    ) -> Result<(), BootError> {
        let entry = (cells.0 + cells.1) * 4;
        if cells.0 == 0 || cells.0 > 2 || cells.1 == 0 || cells.1 > 2 || !bytes.len().is_multiple_of(entry) {
            return Err(self.malformed(node, property, "does not divide into (address, size) pairs"));
        }
        for pair in bytes.chunks_exact(entry) {
            let start = tree::read_cells(pair, cells.0).unwrap_or(0);
            let size = tree::read_cells(&pair[cells.0 * 4..], cells.1).unwrap_or(0);
            if size == 0 {
                continue;
            }
            each(Range { start, size })?;
        }
        Ok(())
    }
}

fn push_memory(out: &mut Vec<Range, MAX_MEMORY_RANGES>) -> impl FnMut(Range) -> Result<(), BootError> + '_ {
    |range| out.push(range).map_err(|_| BootError::TooMany { what: "memory ranges", limit: MAX_MEMORY_RANGES })
}

/// Records a reserved range unless the same range is already there: skiboot
/// publishes each one in `reserved-ranges`, `/reserved-memory` and the
/// blob's reservation block.
fn add_reserved(out: &mut Vec<Range, MAX_RESERVED_RANGES>, range: Range) -> Result<(), BootError> {
    if range.size == 0 || out.contains(&range) {
        return Ok(());
    }
    out.push(range).map_err(|_| BootError::TooMany { what: "reserved memory ranges", limit: MAX_RESERVED_RANGES })
}

fn read_u32(bytes: &[u8]) -> Option<u32> {
    (bytes.len() == 4).then(|| u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

impl BootInfo {
    /// Reads the device tree. `rtas.base`/`rtas.entry` stay 0: instantiating
    /// RTAS is the caller's job, since it needs memory claimed from firmware.
    pub fn read<T: DeviceTree + ?Sized>(tree: &T) -> Result<BootInfo, BootError> {
        let r = Reader { tree };
        let mut info = BootInfo::default();
        let root = tree.find("/").ok_or(BootError::MissingNode { path: "/" })?;

        let firmware = detect_firmware(tree);
        info.firmware = Some(firmware);
        read_memory(&r, root, &mut info)?;
        read_cpus(&r, &mut info)?;
        read_chosen(&r, firmware, &mut info)?;
        if firmware == Firmware::Skiboot {
            // powernv has no RTAS; OPAL takes its place.
            if tree.find("/rtas").is_some() {
                read_rtas(&r, &mut info)?;
            }
            read_opal(&r, &mut info)?;
        } else {
            read_rtas(&r, &mut info)?;
        }
        read_reserved(&r, root, &mut info)?;

        if let Some(xics) = tree.find("/interrupt-controller") {
            let mut buf = [0u8; 64];
            if let Some(bytes) = r.optional(xics, "ibm,interrupt-server-ranges", &mut buf) {
                let mut list = tree::cells(bytes);
                while let (Some(first), Some(count)) = (list.next(), list.next()) {
                    let _ = info.interrupt_server_ranges.push((first, count));
                }
            }
        }
        Ok(info)
    }

    /// Reads a flattened tree (skiboot's, handed over in r3): `read`, plus
    /// what only the blob has, its reservation block and boot CPU, and the
    /// blob itself as reserved memory. The blob's address is taken as
    /// physical, which holds when this runs before translation is on.
    pub fn read_fdt(fdt: &Fdt<'_>) -> Result<BootInfo, BootError> {
        let mut info = BootInfo::read(fdt)?;
        info.boot_cpu = Some(fdt.header().boot_cpuid_phys);
        for (start, size) in fdt.memreserve() {
            add_reserved(&mut info.reserved, Range { start, size })?;
        }
        let blob = fdt.as_bytes();
        add_reserved(&mut info.reserved, Range { start: blob.as_ptr() as u64, size: blob.len() as u64 })?;
        info.reserved.sort_unstable_by_key(|range| (range.start, range.size));
        Ok(info)
    }

    /// CPU threads of the device tree, those beyond MAX_CPUS included.
    pub fn cpus_in_tree(&self) -> usize {
        self.cpus.len() + self.cpus_beyond_limit
    }

    pub fn memory_size(&self) -> u64 {
        self.memory.iter().map(|r| r.size).sum()
    }

    pub fn bootargs(&self) -> &str {
        &self.bootargs
    }
}

fn detect_firmware<T: DeviceTree + ?Sized>(tree: &T) -> Firmware {
    // skiboot describes its OPAL in /ibm,opal; "ibm,opal-v3" is the calling
    // convention the kernel speaks (the one skiboot has always offered).
    if let Some(opal) = tree.find("/ibm,opal") {
        let mut buf = [0u8; 64];
        if let Some(len) = tree.property(opal, "compatible", &mut buf) {
            if tree::strings(&buf[..len.min(buf.len())]).any(|s| s == b"ibm,opal-v3") {
                return Firmware::Skiboot;
            }
        }
    }
    // SLOF creates /openprom with model "SLOF..."; VOF does not create it, but
    // QEMU marks the VOF tree's root with nothing distinctive either, so a
    // missing /openprom on a qemu,pseries machine means VOF.
    if let Some(openprom) = tree.find("/openprom") {
        let mut buf = [0u8; 32];
        if let Some(len) = tree.property(openprom, "model", &mut buf) {
            if buf[..len.min(buf.len())].starts_with(b"SLOF") {
                return Firmware::Slof;
            }
        }
        return Firmware::Unknown;
    }
    if let Some(root) = tree.find("/") {
        let mut buf = [0u8; 32];
        if let Some(len) = tree.property(root, "compatible", &mut buf) {
            if tree::first_string(&buf[..len.min(buf.len())]) == b"qemu,pseries" {
                return Firmware::Vof;
            }
        }
    }
    Firmware::Unknown
}

fn read_memory<T: DeviceTree + ?Sized>(r: &Reader<'_, T>, root: Node, info: &mut BootInfo) -> Result<(), BootError> {
    let cells = r.cell_counts(root);
    let mut buf = [0u8; 512];
    for node in children(r.tree, root) {
        if !r.is_device_type(node, b"memory") {
            continue;
        }
        let reg = r.required(node, "reg", &mut buf)?;
        let before = info.memory.len();
        r.ranges(node, "reg", reg, cells, push_memory(&mut info.memory))?;
        if info.memory[before..].iter().any(|range| range.start == 0) {
            info.real_mode_limit =
                info.memory[before..].iter().find(|range| range.start == 0).map_or(0, |range| range.size);
        }
        if let Some(available) = r.optional(node, "available", &mut buf) {
            let copy: Vec<u8, 512> = Vec::from_slice(available).unwrap_or_default();
            r.ranges(node, "available", &copy, cells, push_memory(&mut info.available))?;
        }
    }
    if info.memory.is_empty() {
        return Err(BootError::MissingNode { path: "/memory@0 (a node with device_type \"memory\")" });
    }
    if info.real_mode_limit == 0 {
        return Err(BootError::MissingNode { path: "/memory@0 (memory at physical address 0)" });
    }
    info.memory.sort_unstable_by_key(|range| range.start);
    info.available.sort_unstable_by_key(|range| range.start);
    Ok(())
}

fn read_cpus<T: DeviceTree + ?Sized>(r: &Reader<'_, T>, info: &mut BootInfo) -> Result<(), BootError> {
    let cpus = r.tree.find("/cpus").ok_or(BootError::MissingNode { path: "/cpus" })?;
    let mut first = true;
    for node in children(r.tree, cpus) {
        if !r.is_device_type(node, b"cpu") {
            continue;
        }
        let core = r.required_u32(node, "reg")?;
        let mut buf = [0u8; 256];
        // One interrupt server per thread; a core without the property is one thread.
        let servers: Vec<u32, 64> = match r.optional(node, "ibm,ppc-interrupt-server#s", &mut buf) {
            Some(bytes) if !bytes.is_empty() => tree::cells(bytes).take(64).collect(),
            _ => Vec::from_slice(&[core]).unwrap_or_default(),
        };
        for (thread, &server) in servers.iter().enumerate() {
            // More threads than the kernel runs on do not stop it booting:
            // they are counted, and stay stopped.
            if info.cpus.push(Cpu { server, core, thread: thread as u32 }).is_err() {
                info.cpus_beyond_limit += 1;
            }
        }
        if first {
            // The boot CPU's node speaks for all (QEMU's nodes are identical).
            first = false;
            info.timebase_frequency = r.required_u32(node, "timebase-frequency")? as u64;
            if let Some(bytes) = r.optional(node, "ibm,pft-size", &mut buf) {
                if bytes.len() != 8 {
                    return Err(r.malformed(node, "ibm,pft-size", "is not two cells"));
                }
                info.hpt_size_log2 = tree::cells(bytes).nth(1);
            }
            info.slb_size = r.optional_u32(node, "ibm,slb-size").or_else(|| r.optional_u32(node, "slb-size"));
            if let Some(bytes) = r.optional(node, "ibm,processor-radix-AP-encodings", &mut buf) {
                info.radix_page_sizes = tree::cells(bytes).take(8).collect();
            }
            if let Some(bytes) = r.optional(node, "ibm,segment-page-sizes", &mut buf) {
                info.hash_page_sizes = tree::cells(bytes).take(64).collect();
            }
            info.dcache_block_size = r.optional_u32(node, "d-cache-block-size").unwrap_or(128);
            info.icache_block_size = r.optional_u32(node, "i-cache-block-size").unwrap_or(128);
        }
    }
    if info.cpus.is_empty() {
        return Err(BootError::MissingNode { path: "/cpus/* (a node with device_type \"cpu\")" });
    }
    Ok(())
}

fn read_chosen<T: DeviceTree + ?Sized>(
    r: &Reader<'_, T>,
    firmware: Firmware,
    info: &mut BootInfo,
) -> Result<(), BootError> {
    let chosen = r.tree.find("/chosen").ok_or(BootError::MissingNode { path: "/chosen" })?;
    let mut buf = [0u8; MAX_BOOTARGS];
    if let Some(len) = r.tree.property(chosen, "bootargs", &mut buf) {
        if len > buf.len() {
            return Err(r.malformed(chosen, "bootargs", "is longer than 1023 bytes"));
        }
        let text = core::str::from_utf8(tree::first_string(&buf[..len]))
            .map_err(|_| r.malformed(chosen, "bootargs", "is not UTF-8"))?;
        let _ = info.bootargs.push_str(text.trim());
    }
    let mut path = [0u8; 128];
    // An hvc terminal number means nothing to skiboot (whose stdout, in
    // `linux,stdout-path`, is an OPAL console).
    let stdout = if firmware == Firmware::Skiboot { None } else { r.optional(chosen, "stdout-path", &mut path) };
    if let Some(bytes) = stdout {
        let path = core::str::from_utf8(tree::first_string(bytes)).unwrap_or("");
        if let Some(stdout) = r.tree.find(path) {
            info.console_termno = r.optional_u32(stdout, "reg");
        }
    }
    if let Some(bytes) = r.optional(chosen, "ibm,arch-vec-5-platform-support", &mut buf) {
        info.arch_vec5_support = Vec::from_slice(&bytes[..bytes.len().min(16)]).unwrap_or_default();
    }
    if let Some(bytes) = r.optional(chosen, "ibm,architecture-vec-5", &mut buf) {
        info.arch_vec5 = Vec::from_slice(&bytes[..bytes.len().min(32)]).unwrap_or_default();
    }
    Ok(())
}

fn read_opal<T: DeviceTree + ?Sized>(r: &Reader<'_, T>, info: &mut BootInfo) -> Result<(), BootError> {
    let opal = r.tree.find("/ibm,opal").ok_or(BootError::MissingNode { path: "/ibm,opal" })?;
    info.opal = Some(Opal {
        base: r.required_u64(opal, "opal-base-address")?,
        entry: r.required_u64(opal, "opal-entry-address")?,
    });
    Ok(())
}

/// Firmware-reserved memory the tree itself describes: skiboot's root
/// `reserved-ranges` (2 + 2 cells per range, whatever the root's cell
/// counts) and the `reg` of each `/reserved-memory` child (that node's cell
/// counts). Children without `reg` ask for an allocation and reserve nothing.
fn read_reserved<T: DeviceTree + ?Sized>(r: &Reader<'_, T>, root: Node, info: &mut BootInfo) -> Result<(), BootError> {
    let too_many = BootError::TooMany { what: "reserved memory ranges", limit: MAX_RESERVED_RANGES };
    let mut buf = [0u8; MAX_RESERVED_RANGES * 16];
    if let Some(len) = r.tree.property(root, "reserved-ranges", &mut buf) {
        if len > buf.len() {
            return Err(too_many);
        }
        r.ranges(root, "reserved-ranges", &buf[..len], (2, 2), |range| add_reserved(&mut info.reserved, range))?;
    }
    if let Some(reserved) = r.tree.find("/reserved-memory") {
        let cells = r.cell_counts(reserved);
        for node in children(r.tree, reserved) {
            let Some(len) = r.tree.property(node, "reg", &mut buf) else { continue };
            if len > buf.len() {
                return Err(too_many);
            }
            r.ranges(node, "reg", &buf[..len], cells, |range| add_reserved(&mut info.reserved, range))?;
        }
    }
    info.reserved.sort_unstable_by_key(|range| (range.start, range.size));
    Ok(())
}

fn read_rtas<T: DeviceTree + ?Sized>(r: &Reader<'_, T>, info: &mut BootInfo) -> Result<(), BootError> {
    let rtas = r.tree.find("/rtas").ok_or(BootError::MissingNode { path: "/rtas" })?;
    info.rtas.size = r.required_u32(rtas, "rtas-size")?;
    info.rtas.tokens = RtasTokens {
        power_off: r.required_u32(rtas, "power-off")?,
        system_reboot: r.optional_u32(rtas, "system-reboot"),
        start_cpu: r.optional_u32(rtas, "start-cpu"),
        query_cpu_stopped_state: r.optional_u32(rtas, "query-cpu-stopped-state"),
        stop_self: r.optional_u32(rtas, "stop-self"),
        display_character: r.optional_u32(rtas, "display-character"),
        get_time_of_day: r.optional_u32(rtas, "get-time-of-day"),
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::fake::FakeTree;

    /// The shape of QEMU's pseries tree (`-m 1G -smp 2`, values from its FDT).
    fn qemu_like_tree() -> FakeTree {
        let mut t = FakeTree::new();
        t.prop_cells("/", "#address-cells", &[2]).prop_cells("/", "#size-cells", &[2]);
        t.prop_str("/", "compatible", "qemu,pseries");
        t.node("/chosen");
        t.prop_str("/chosen", "bootargs", "selftest=all loglevel=debug");
        t.prop_str("/chosen", "stdout-path", "/vdevice/vty@71000000");
        t.prop_cells("/chosen", "ibm,arch-vec-5-platform-support", &[0x178018c0, 0x19001a40]);
        t.node("/vdevice");
        t.node("/vdevice/vty@71000000");
        t.prop_cells("/vdevice/vty@71000000", "reg", &[0x71000000]);
        t.node("/rtas");
        t.prop_cells("/rtas", "rtas-size", &[0x83c]).prop_cells("/rtas", "power-off", &[0x2003]);
        t.prop_cells("/rtas", "start-cpu", &[0x2006]);
        t.prop_cells("/rtas", "query-cpu-stopped-state", &[0x2005]);
        t.node("/cpus");
        for (i, name) in ["/cpus/PowerPC,POWER9@0", "/cpus/PowerPC,POWER9@1"].iter().enumerate() {
            t.node(name);
            t.prop_str(name, "device_type", "cpu");
            t.prop_cells(name, "reg", &[i as u32]);
            t.prop_cells(name, "ibm,ppc-interrupt-server#s", &[i as u32]);
            t.prop_cells(name, "timebase-frequency", &[0x1e848000]);
            t.prop_cells(name, "ibm,pft-size", &[0, 0x17]);
            t.prop_cells(name, "ibm,slb-size", &[0x20]);
            t.prop_cells(name, "ibm,processor-radix-AP-encodings", &[0x0c, 0xa0000010, 0x20000015, 0x4000001e]);
        }
        t.node("/memory@0");
        t.prop_str("/memory@0", "device_type", "memory");
        t.prop_cells("/memory@0", "reg", &[0, 0, 0, 0x4000_0000]);
        t.prop_cells("/memory@0", "available", &[0, 0xda0, 0, 0x7260, 0, 0x460000, 0, 0x3fba0000]);
        t.node("/interrupt-controller");
        t.prop_cells("/interrupt-controller", "ibm,interrupt-server-ranges", &[0, 2]);
        t
    }

    #[test]
    fn reads_qemu_pseries_tree() {
        let info = BootInfo::read(&qemu_like_tree()).unwrap();
        assert_eq!(info.firmware, Some(Firmware::Vof));
        assert_eq!(info.memory.as_slice(), &[Range { start: 0, size: 1 << 30 }]);
        assert_eq!(info.memory_size(), 1 << 30);
        assert_eq!(info.real_mode_limit, 1 << 30);
        assert_eq!(info.available.len(), 2);
        assert_eq!(info.available[1], Range { start: 0x460000, size: 0x3fba0000 });
        assert_eq!(info.cpus.len(), 2);
        assert_eq!(info.cpus[1], Cpu { server: 1, core: 1, thread: 0 });
        assert_eq!(info.timebase_frequency, 512_000_000);
        assert_eq!(info.hpt_size_log2, Some(0x17));
        assert_eq!(info.slb_size, Some(32));
        assert_eq!(info.radix_page_sizes.as_slice(), &[0x0c, 0xa0000010, 0x20000015, 0x4000001e]);
        assert_eq!(info.bootargs(), "selftest=all loglevel=debug");
        assert_eq!(info.console_termno, Some(0x71000000));
        assert_eq!(info.rtas.size, 0x83c);
        assert_eq!(info.rtas.tokens.power_off, 0x2003);
        assert_eq!(info.rtas.tokens.start_cpu, Some(0x2006));
        assert_eq!(info.rtas.tokens.stop_self, None);
        assert_eq!(info.interrupt_server_ranges.as_slice(), &[(0, 2)]);
        assert_eq!(info.arch_vec5_support.as_slice(), &[0x17, 0x80, 0x18, 0xc0, 0x19, 0x00, 0x1a, 0x40]);
    }

    #[test]
    fn threads_come_from_interrupt_server_list() {
        let mut t = qemu_like_tree();
        let core = "/cpus/PowerPC,POWER9@0";
        t.nodes.iter_mut().find(|n| n.path == core).unwrap().props.retain(|(n, _)| n != "ibm,ppc-interrupt-server#s");
        t.prop_cells(core, "ibm,ppc-interrupt-server#s", &[8, 9, 10, 11]);
        let info = BootInfo::read(&t).unwrap();
        assert_eq!(info.cpus.len(), 5);
        assert_eq!(info.cpus[3], Cpu { server: 11, core: 0, thread: 3 });
    }

    #[test]
    fn threads_beyond_max_cpus_are_counted_not_fatal() {
        let mut t = qemu_like_tree();
        // After QEMU's two threads, enough cores of 64 threads to overflow.
        let cores = MAX_CPUS / 64 + 1;
        for core in 0..cores {
            let name = std::format!("/cpus/PowerPC,POWER9@{}", 0x100 + core);
            t.node(&name);
            t.prop_str(&name, "device_type", "cpu");
            t.prop_cells(&name, "reg", &[0x100 + core as u32]);
            let servers: std::vec::Vec<u32> = (0..64).map(|i| 0x1000 + (core * 64 + i) as u32).collect();
            t.prop_cells(&name, "ibm,ppc-interrupt-server#s", &servers);
        }
        let info = BootInfo::read(&t).unwrap();
        let threads = 2 + cores * 64;
        assert_eq!(info.cpus.len(), MAX_CPUS);
        assert_eq!(info.cpus_beyond_limit, threads - MAX_CPUS);
        assert_eq!(info.cpus_in_tree(), threads);
        assert_eq!(info.cpus[1], Cpu { server: 1, core: 1, thread: 0 }, "the first ones are kept");
    }

    #[test]
    fn missing_required_property_names_node_and_property() {
        let mut t = qemu_like_tree();
        t.nodes.iter_mut().find(|n| n.path == "/rtas").unwrap().props.retain(|(n, _)| n != "power-off");
        let err = BootInfo::read(&t).unwrap_err();
        assert_eq!(err, BootError::MissingProperty { node: String::try_from("/rtas").unwrap(), property: "power-off" });
        let text = std::format!("{err}");
        assert!(text.contains("/rtas") && text.contains("power-off"), "{text}");

        let mut t = qemu_like_tree();
        for n in t.nodes.iter_mut().filter(|n| n.path.starts_with("/cpus/")) {
            n.props.retain(|(n, _)| n != "timebase-frequency");
        }
        let text = std::format!("{}", BootInfo::read(&t).unwrap_err());
        assert!(text.contains("/cpus/PowerPC,POWER9@0") && text.contains("timebase-frequency"), "{text}");
    }

    #[test]
    fn missing_nodes_are_reported() {
        let mut t = FakeTree::new();
        t.prop_str("/", "compatible", "qemu,pseries");
        assert_eq!(
            BootInfo::read(&t).unwrap_err(),
            BootError::MissingNode { path: "/memory@0 (a node with device_type \"memory\")" }
        );
    }

    #[test]
    fn malformed_reg_is_rejected() {
        let mut t = qemu_like_tree();
        let mem = t.nodes.iter_mut().find(|n| n.path == "/memory@0").unwrap();
        mem.props.retain(|(n, _)| n != "reg");
        t.prop_cells("/memory@0", "reg", &[0, 0, 0]);
        assert!(matches!(BootInfo::read(&t).unwrap_err(), BootError::Malformed { property: "reg", .. }));
    }

    #[test]
    fn several_memory_nodes_are_sorted_and_summed() {
        let mut t = qemu_like_tree();
        t.node("/memory@80000000");
        t.prop_str("/memory@80000000", "device_type", "memory");
        t.prop_cells("/memory@80000000", "reg", &[0, 0x8000_0000, 0, 0x4000_0000]);
        let info = BootInfo::read(&t).unwrap();
        assert_eq!(info.memory.len(), 2);
        assert_eq!(info.memory_size(), 2 << 30);
        assert_eq!(info.real_mode_limit, 1 << 30);
    }

    const SMP1: &[u8] = include_bytes!("../tests/data/skiboot-powernv9-smp1.dtb");
    const SMP4: &[u8] = include_bytes!("../tests/data/skiboot-powernv9-smp4.dtb");

    /// What skiboot keeps on QEMU's powernv9 with -m 1G, by the blob's
    /// reservation block (the same ranges as `reserved-ranges` and
    /// `/reserved-memory`): its code, heap, data, stacks and allocations
    /// from 0x30000000, then the HOMER image and OCC common area, which lie
    /// far above the 1 GiB of RAM.
    fn skiboot_reserved(stacks: u64, allocs: Range) -> std::vec::Vec<Range> {
        std::vec![
            Range { start: 0x3000_0000, size: 0x60_0000 },
            Range { start: 0x3060_0000, size: 0xa0_0000 },
            Range { start: 0x3100_0000, size: 0xc1_0000 },
            Range { start: 0x31c1_0000, size: stacks },
            allocs,
            Range { start: 0x203f_fd80_0000, size: 0x40_0000 },
            Range { start: 0x203f_ff80_0000, size: 0x80_0000 },
        ]
    }

    fn read_blob(blob: &[u8]) -> BootInfo {
        BootInfo::read_fdt(&Fdt::new(blob).unwrap()).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The reserved ranges without the blob's own (whose address is wherever
    /// the test binary has it), after checking that one is there.
    fn firmware_reserved(info: &BootInfo, blob: &[u8]) -> std::vec::Vec<Range> {
        let own = Range { start: blob.as_ptr() as u64, size: blob.len() as u64 };
        assert!(info.reserved.contains(&own), "the blob reserves itself");
        assert!(info.reserved.windows(2).all(|w| w[0].start < w[1].start), "sorted, no duplicates");
        info.reserved.iter().copied().filter(|&r| r != own).collect()
    }

    #[test]
    fn reads_skiboot_powernv9_smp1() {
        let info = read_blob(SMP1);
        assert_eq!(info.firmware, Some(Firmware::Skiboot));
        assert_eq!(info.firmware.unwrap().name(), "skiboot");
        assert_eq!(info.memory.as_slice(), &[Range { start: 0, size: 1 << 30 }]);
        assert_eq!(info.memory_size(), 1 << 30);
        assert_eq!(info.real_mode_limit, 1 << 30);
        assert!(info.available.is_empty(), "skiboot publishes no available");
        assert_eq!(info.cpus.as_slice(), &[Cpu { server: 0, core: 0, thread: 0 }]);
        assert_eq!(info.cpus_beyond_limit, 0);
        assert_eq!(info.boot_cpu, Some(0));
        assert_eq!(info.timebase_frequency, 512_000_000);
        // No ibm,pft-size: on bare metal the kernel sizes its own HPT.
        assert_eq!(info.hpt_size_log2, None);
        assert_eq!(info.slb_size, Some(32));
        // No ibm,processor-radix-AP-encodings either.
        assert!(info.radix_page_sizes.is_empty());
        assert_eq!(
            info.hash_page_sizes.as_slice(),
            &[
                0xc, 0, 3, 0xc, 0, 0x10, 7, 0x18, 0x38, 0x10, 0x110, 2, 0x10, 1, 0x18, 8, 0x18, 0x100, 1, 0x18, 0,
                0x22, 0x120, 1, 0x22, 3
            ]
        );
        assert_eq!((info.dcache_block_size, info.icache_block_size), (128, 128));
        assert_eq!(info.bootargs(), "mmu=hash loglevel=debug");
        assert_eq!(info.console_termno, None);
        assert_eq!(info.opal, Some(Opal { base: 0x3000_0000, entry: 0x3000_3770 }));
        assert_eq!(info.rtas, Rtas::default());
        assert!(info.interrupt_server_ranges.is_empty());
        assert!(info.arch_vec5_support.is_empty());
        // skiboot's own /chosen ibm,architecture-vec-5, which asks for no radix.
        assert_eq!(info.arch_vec5.as_slice(), &[5, 0, 0, 0, 0, 0x80, 0]);
        assert!(!crate::cas::negotiated_radix(&info.arch_vec5));
        assert_eq!(
            firmware_reserved(&info, SMP1),
            skiboot_reserved(0x8000, Range { start: 0x31c1_8000, size: 0xcf_8000 })
        );
        assert_eq!(info.reserved.len(), 8);
    }

    #[test]
    fn reads_skiboot_powernv9_smp4() {
        let info = read_blob(SMP4);
        assert_eq!(info.firmware, Some(Firmware::Skiboot));
        // One thread per core (QEMU's default), cores 0-3 of chip 0: the PIR
        // is chip << 8 | core << 2 | thread, and `reg` is the same number.
        let expected: std::vec::Vec<Cpu> = [0, 4, 8, 12].map(|pir| Cpu { server: pir, core: pir, thread: 0 }).to_vec();
        assert_eq!(info.cpus.as_slice(), expected.as_slice());
        // skiboot entered the kernel on PIR 8, not 0.
        assert_eq!(info.boot_cpu, Some(8));
        assert_eq!(info.memory_size(), 1 << 30);
        assert_eq!(info.timebase_frequency, 512_000_000);
        assert_eq!(info.bootargs(), "mmu=hash loglevel=debug");
        assert_eq!(info.opal, Some(Opal { base: 0x3000_0000, entry: 0x3000_3770 }));
        // More CPUs, more stacks and allocations.
        assert_eq!(
            firmware_reserved(&info, SMP4),
            skiboot_reserved(0x6_8000, Range { start: 0x31c7_8000, size: 0x14f_8000 })
        );
    }

    #[test]
    fn the_tree_alone_gives_the_same_reserved_ranges() {
        // `read` (no blob header) finds them in reserved-ranges and
        // /reserved-memory, which say the same thing as the reservation block.
        let fdt = Fdt::new(SMP1).unwrap();
        let info = BootInfo::read(&fdt).unwrap();
        assert_eq!(info.boot_cpu, None);
        assert_eq!(info.reserved.to_vec(), skiboot_reserved(0x8000, Range { start: 0x31c1_8000, size: 0xcf_8000 }));
    }

    /// The parts of skiboot's tree `BootInfo` reads.
    fn skiboot_like_tree() -> FakeTree {
        let mut t = FakeTree::new();
        t.prop_cells("/", "#address-cells", &[2]).prop_cells("/", "#size-cells", &[2]);
        t.prop_str("/", "compatible", "qemu,powernv9");
        t.prop_cells("/", "reserved-ranges", &[0, 0x3000_0000, 0, 0x60_0000]);
        t.node("/chosen");
        t.prop_str("/chosen", "stdout-path", "/ibm,opal/consoles/serial@0");
        t.node("/ibm,opal");
        t.prop("/ibm,opal", "compatible", b"ibm,opal-v2\0ibm,opal-v3\0");
        t.prop_cells("/ibm,opal", "opal-base-address", &[0, 0x3000_0000]);
        t.prop_cells("/ibm,opal", "opal-entry-address", &[0, 0x3000_3770]);
        t.node("/ibm,opal/consoles");
        t.node("/ibm,opal/consoles/serial@0");
        t.prop_cells("/ibm,opal/consoles/serial@0", "reg", &[0]);
        t.node("/cpus");
        t.node("/cpus/PowerPC,POWER9@0");
        t.prop_str("/cpus/PowerPC,POWER9@0", "device_type", "cpu");
        t.prop_cells("/cpus/PowerPC,POWER9@0", "reg", &[0]);
        t.prop_cells("/cpus/PowerPC,POWER9@0", "timebase-frequency", &[512_000_000]);
        t.node("/memory@0");
        t.prop_str("/memory@0", "device_type", "memory");
        t.prop_cells("/memory@0", "reg", &[0, 0, 0, 0x4000_0000]);
        t.node("/reserved-memory");
        t.prop_cells("/reserved-memory", "#address-cells", &[2]).prop_cells("/reserved-memory", "#size-cells", &[2]);
        t
    }

    #[test]
    fn skiboot_needs_opal_addresses_not_rtas() {
        let info = BootInfo::read(&skiboot_like_tree()).unwrap();
        assert_eq!(info.firmware, Some(Firmware::Skiboot));
        assert_eq!(info.opal, Some(Opal { base: 0x3000_0000, entry: 0x3000_3770 }));
        assert_eq!(info.console_termno, None, "stdout-path is not an hvc terminal on skiboot");

        let mut t = skiboot_like_tree();
        t.nodes.iter_mut().find(|n| n.path == "/ibm,opal").unwrap().props.retain(|(n, _)| n != "opal-entry-address");
        let err = BootInfo::read(&t).unwrap_err();
        assert_eq!(
            err,
            BootError::MissingProperty { node: String::try_from("/ibm,opal").unwrap(), property: "opal-entry-address" }
        );
        let text = std::format!("{err}");
        assert!(text.contains("/ibm,opal") && text.contains("opal-entry-address"), "{text}");

        let mut t = skiboot_like_tree();
        t.nodes.iter_mut().find(|n| n.path == "/ibm,opal").unwrap().props.retain(|(n, _)| n != "opal-base-address");
        t.prop_cells("/ibm,opal", "opal-base-address", &[0x3000_0000]);
        assert_eq!(
            BootInfo::read(&t).unwrap_err(),
            BootError::Malformed {
                node: String::try_from("/ibm,opal").unwrap(),
                property: "opal-base-address",
                why: "is not two cells"
            }
        );
    }

    #[test]
    fn opal_without_v3_is_not_skiboot_and_needs_rtas() {
        let mut t = skiboot_like_tree();
        t.nodes.iter_mut().find(|n| n.path == "/ibm,opal").unwrap().props.retain(|(n, _)| n != "compatible");
        t.prop_str("/ibm,opal", "compatible", "ibm,opal-v2");
        assert_eq!(BootInfo::read(&t).unwrap_err(), BootError::MissingNode { path: "/rtas" });
    }

    #[test]
    fn pseries_still_needs_rtas() {
        let mut t = qemu_like_tree();
        let rtas = t.nodes.iter().position(|n| n.path == "/rtas").unwrap();
        t.nodes[rtas].path = "/not-rtas".into();
        assert_eq!(BootInfo::read(&t).unwrap_err(), BootError::MissingNode { path: "/rtas" });
        let info = BootInfo::read(&qemu_like_tree()).unwrap();
        assert_eq!((info.opal, info.boot_cpu, info.reserved.len()), (None, None, 0));
    }

    #[test]
    fn reserved_memory_uses_its_cell_counts_and_duplicates_collapse() {
        let mut t = skiboot_like_tree();
        t.node("/reserved-memory/code@30000000");
        t.prop_cells("/reserved-memory/code@30000000", "reg", &[0, 0x3000_0000, 0, 0x60_0000]);
        t.node("/reserved-memory/homer@203ffd800000");
        t.prop_cells("/reserved-memory/homer@203ffd800000", "reg", &[0x203f, 0xfd80_0000, 0, 0x40_0000]);
        t.node("/reserved-memory/dynamic");
        t.prop_cells("/reserved-memory/dynamic", "size", &[0, 0x1000]);
        let info = BootInfo::read(&t).unwrap();
        assert_eq!(
            info.reserved.as_slice(),
            &[Range { start: 0x3000_0000, size: 0x60_0000 }, Range { start: 0x203f_fd80_0000, size: 0x40_0000 }]
        );

        // One address cell and one size cell.
        let mut t = FakeTree::new();
        t.node("/reserved-memory");
        t.prop_cells("/reserved-memory", "#address-cells", &[1]).prop_cells("/reserved-memory", "#size-cells", &[1]);
        t.node("/reserved-memory/a@1000");
        t.prop_cells("/reserved-memory/a@1000", "reg", &[0x1000, 0x2000, 0x8000, 0x100]);
        let r = Reader { tree: &t };
        let mut info = BootInfo::default();
        read_reserved(&r, t.find("/").unwrap(), &mut info).unwrap();
        assert_eq!(
            info.reserved.as_slice(),
            &[Range { start: 0x1000, size: 0x2000 }, Range { start: 0x8000, size: 0x100 }]
        );
    }

    #[test]
    fn too_many_reserved_ranges_is_an_error() {
        let mut t = skiboot_like_tree();
        let cells: std::vec::Vec<u32> =
            (0..MAX_RESERVED_RANGES as u32).flat_map(|i| [0, 0x1000 * (i + 1), 0, 0x800]).collect();
        t.nodes[0].props.retain(|(n, _)| n != "reserved-ranges");
        t.prop_cells("/", "reserved-ranges", &cells);
        assert_eq!(BootInfo::read(&t).unwrap().reserved.len(), MAX_RESERVED_RANGES);
        t.node("/reserved-memory/one-more@0");
        t.prop_cells("/reserved-memory/one-more@0", "reg", &[0, 0x10_0000, 0, 0x1000]);
        assert_eq!(
            BootInfo::read(&t).unwrap_err(),
            BootError::TooMany { what: "reserved memory ranges", limit: MAX_RESERVED_RANGES }
        );
        // A duplicate is not one more.
        let mut t = skiboot_like_tree();
        t.nodes[0].props.retain(|(n, _)| n != "reserved-ranges");
        t.prop_cells("/", "reserved-ranges", &cells);
        t.node("/reserved-memory/again@1000");
        t.prop_cells("/reserved-memory/again@1000", "reg", &[0, 0x1000, 0, 0x800]);
        assert_eq!(BootInfo::read(&t).unwrap().reserved.len(), MAX_RESERVED_RANGES);
    }

    #[test]
    fn slof_is_recognised_by_openprom_model() {
        let mut t = qemu_like_tree();
        t.node("/openprom");
        t.prop_str("/openprom", "model", "SLOF,HEAD");
        assert_eq!(BootInfo::read(&t).unwrap().firmware, Some(Firmware::Slof));
    }
}
