//! Source lines for the kernel's fatal reports, decoded on the host from the image's DWARF.
//!
//! The kernel symbolises its reports itself (`<symbol+0xoffset>`, from its `.ksyms`
//! table) but has no line tables at run time. Here each address of a report is looked up
//! in the image's line tables and inlined-function records, and its line gets
//! ` at <file>:<line>` appended: for inlined code the innermost place, then the function it
//! is inlined into and where, as `addr2line -i` would show both ends of the chain:
//!
//! ```text
//! FATAL: exception 0x700 (program) at 0xc0000000004264ec <ppc64_kernel::inject::raise_program_check+0xc> at arch/ppc64/src/inject.rs:42
//!  [1] 0xc000000000467254 <boot_cpu_entry+0x39b4> at arch/ppc64/src/inject.rs:20 (ppc64_kernel::inject::fail inlined into boot_cpu_entry at arch/ppc64/src/main.rs:145)
//! ```
//!
//! The lines decoded are a report's `FATAL: exception ... at 0x<pc> <sym>` line (the
//! faulting instruction), its `  LR <sym>` line (the address from the register dump's
//! `LR:` just before it), and its `Call trace:` lines ` [N] 0x<address> <sym>`. A call
//! trace holds return addresses, whose call is the instruction before (looked up 4 bytes
//! lower), except that an exception's trace starts with the faulting instruction itself.
//! The console is never changed: the harness decodes what it shows (`kboot`'s output, the
//! matrix's report of a failed boot, `verdict.json`).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use addr2line::gimli;
use object::{Object, ObjectSection, ObjectSegment};

/// The kernel's linear map: run-time kernel addresses are physical addresses with these
/// bits set (`kernel::mm::LINEAR_MAP_BASE`); real-mode code runs at the physical address.
pub const LINEAR_MAP_BASE: u64 = 0xc000_0000_0000_0000;

/// Where the image runs: entry.s moves it to (or the firmware loads it at) this physical
/// address, and it is linked at 0 (a static PIE), so a link address is the physical
/// address minus this.
pub const LOAD_ADDRESS: u64 = 0x40_0000;

/// The width of a POWER instruction: a return address's call is this far below it.
const INSTRUCTION_BYTES: u64 = 4;

/// The link address (an address in the ELF file) of run-time address `runtime`, if it lies
/// in an image of `image_size` bytes: `0xc000000000400000 + x` and real mode's
/// `0x400000 + x` are both `x`.
pub fn link_address(runtime: u64, image_size: u64) -> Option<u64> {
    let physical = runtime & !LINEAR_MAP_BASE;
    physical.checked_sub(LOAD_ADDRESS).filter(|&link| link < image_size)
}

/// How an address in a report relates to the code that was running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// The instruction itself (an exception's faulting instruction).
    Exact,
    /// A return address: the call is the instruction before it.
    Return,
}

/// One address of a report to look up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Site {
    pub address: u64,
    pub probe: Probe,
}

impl Site {
    /// The link address to look up: a return address's call instruction, else the address.
    pub fn lookup_address(&self, image_size: u64) -> Option<u64> {
        let link = link_address(self.address, image_size)?;
        match self.probe {
            Probe::Exact => Some(link),
            Probe::Return => link.checked_sub(INSTRUCTION_BYTES),
        }
    }
}

/// What one console line of a fatal report says, for [`Report`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Line {
    /// `FATAL: exception 0x700 (program) at 0x<pc> <sym>`.
    Exception {
        pc: u64,
    },
    /// Any other `FATAL:` line: a new report.
    Fatal,
    /// The register dump's `  LR:   <16 hex digits>  CTR: ...`.
    DumpLr {
        lr: u64,
    },
    /// `  LR <sym>`.
    LrSymbol,
    /// ` [N] 0x<address> <sym>` of a `Call trace:`.
    Trace {
        depth: u32,
        address: u64,
    },
    Other,
}

/// `0x` and hex digits at the start of `text`, and what follows them.
fn hex_prefixed(text: &str) -> Option<(u64, &str)> {
    let digits = text.strip_prefix("0x")?;
    let end = digits.find(|c: char| !c.is_ascii_hexdigit()).unwrap_or(digits.len());
    let value = u64::from_str_radix(&digits[..end], 16).ok()?;
    Some((value, &digits[end..]))
}

fn classify(line: &str) -> Line {
    let line = line.trim_end_matches('\r');
    if let Some(rest) = line.strip_prefix("FATAL: ") {
        let pc = rest
            .strip_prefix("exception ")
            .and_then(|rest| rest.split_once(" at "))
            .and_then(|(_, at)| hex_prefixed(at))
            .filter(|(_, after)| after.starts_with(" <"));
        return match pc {
            Some((pc, _)) => Line::Exception { pc },
            None => Line::Fatal,
        };
    }
    let trimmed = line.trim_start();
    if let Some(rest) = trimmed.strip_prefix("LR:") {
        let digits = rest.trim_start();
        let end = digits.find(|c: char| !c.is_ascii_hexdigit()).unwrap_or(digits.len());
        return match u64::from_str_radix(&digits[..end], 16) {
            Ok(lr) if end > 0 => Line::DumpLr { lr },
            _ => Line::Other,
        };
    }
    if trimmed.starts_with("LR <") {
        return Line::LrSymbol;
    }
    let trace = trimmed
        .strip_prefix('[')
        .and_then(|rest| rest.split_once("] "))
        .and_then(|(depth, rest)| Some((depth.parse().ok()?, hex_prefixed(rest)?)))
        .filter(|(_, (_, after))| after.starts_with(" <"));
    match trace {
        Some((depth, (address, _))) => Line::Trace { depth, address },
        None => Line::Other,
    }
}

/// What the lines of a report seen so far say about the ones to come: an exception's trace
/// starts at its faulting instruction, and `LR <sym>` shows the dump's LR.
#[derive(Clone, Debug, Default)]
pub struct Report {
    exception_pc: Option<u64>,
    dump_lr: Option<u64>,
}

impl Report {
    /// The address `line` shows that can be decoded, if any, given the lines before it.
    pub fn site(&mut self, line: &str) -> Option<Site> {
        match classify(line) {
            Line::Exception { pc } => {
                *self = Report { exception_pc: Some(pc), dump_lr: None };
                Some(Site { address: pc, probe: Probe::Exact })
            }
            Line::Fatal => {
                *self = Report::default();
                None
            }
            Line::DumpLr { lr } => {
                self.dump_lr = Some(lr);
                None
            }
            Line::LrSymbol => self.dump_lr.take().map(|address| Site { address, probe: Probe::Return }),
            Line::Trace { depth, address } => {
                let exact = depth == 0 && self.exception_pc == Some(address);
                Some(Site { address, probe: if exact { Probe::Exact } else { Probe::Return } })
            }
            Line::Other => None,
        }
    }
}

/// A place in the source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceLine {
    /// Relative to the workspace for the kernel's own crates, from the crate's directory
    /// (`core/src/...`, `bitflags-2.13.2/src/...`) for the Rust library and dependencies.
    pub file: String,
    pub line: u32,
}

impl fmt::Display for SourceLine {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}:{}", self.file, self.line)
    }
}

/// Where an address is in the source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Place {
    /// The innermost place: the line of the instruction, in inlined code the inlined line.
    pub at: SourceLine,
    /// For inlined code: the innermost function, and the function it is inlined into with
    /// the line in it where the (outermost) inlined call is.
    pub inlined: Option<Inlined>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inlined {
    pub function: String,
    pub into: String,
    pub call: SourceLine,
}

impl fmt::Display for Place {
    /// What is appended to the report's line: ` at file:line`, for inlined code with
    /// ` (inner inlined into outer at file:line)`.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, " at {}", self.at)?;
        if let Some(inlined) = &self.inlined {
            write!(formatter, " ({} inlined into {} at {})", inlined.function, inlined.into, inlined.call)?;
        }
        Ok(())
    }
}

/// A path as the report shows it: `roots` (the workspace's directories) stripped, and the
/// Rust library's and registry crates' paths from the crate's directory.
pub fn shorten_path(path: &str, roots: &[String]) -> String {
    if let Some((_, rest)) = path.split_once("/registry/src/") {
        // `<registry>/<crate>-<version>/src/...`: the registry's directory is noise.
        if let Some((_, crate_path)) = rest.split_once('/') {
            return crate_path.to_string();
        }
    }
    if let Some((_, rest)) = path.rsplit_once("/library/") {
        return rest.to_string();
    }
    let root = roots
        .iter()
        .filter_map(|root| path.strip_prefix(root.trim_end_matches('/')).and_then(|rest| rest.strip_prefix('/')))
        .min_by_key(|rest| rest.len());
    root.unwrap_or(path).to_string()
}

type Reader = gimli::EndianSlice<'static, gimli::RunTimeEndian>;

/// An image's debug information, ready for lookups.
pub struct Symbolizer {
    context: addr2line::Context<Reader>,
    /// The end of the loaded image: link addresses below it belong to it.
    image_size: u64,
    /// The compilation directories of the units named relative to one: the workspace.
    roots: Vec<String>,
    /// The file the DWARF came from (the image, or the linked ELF it was made from).
    pub source: PathBuf,
}

impl fmt::Debug for Symbolizer {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Symbolizer")
            .field("source", &self.source)
            .field("image_size", &self.image_size)
            .finish()
    }
}

/// The bytes of `path`, for the rest of the process: the DWARF reader borrows from them, and
/// a harness process reads its one kernel image once ([`KernelImage`] caches the result).
fn read_for_good(path: &Path) -> Result<&'static [u8], String> {
    let bytes = std::fs::read(path).map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    Ok(Box::leak(bytes.into_boxed_slice()))
}

fn section_data<'a>(file: &object::File<'a>, name: &str) -> Option<&'a [u8]> {
    file.section_by_name(name).and_then(|section| section.data().ok())
}

impl Symbolizer {
    /// The DWARF of `image`; if `image` has no line tables, that of the first of
    /// `unstripped` that has them and the same `.text` (the linked ELF `image` was made
    /// from). The error says why there is none.
    pub fn load(image: &Path, unstripped: &[PathBuf]) -> Result<Symbolizer, String> {
        let image_bytes = read_for_good(image)?;
        let file = object::File::parse(image_bytes)
            .map_err(|error| format!("{} is not an ELF file the harness can read: {error}", image.display()))?;
        let image_size = file.segments().map(|segment| segment.address() + segment.size()).max().unwrap_or(0);
        if section_data(&file, ".debug_line").is_some_and(|data| !data.is_empty()) {
            return Symbolizer::from_elf(&file, image_size, image);
        }
        let text = section_data(&file, ".text");
        for candidate in unstripped.iter().filter(|candidate| candidate.as_path() != image && candidate.is_file()) {
            let Ok(bytes) = read_for_good(candidate) else { continue };
            let Ok(other) = object::File::parse(bytes) else { continue };
            let has_lines = section_data(&other, ".debug_line").is_some_and(|data| !data.is_empty());
            if has_lines && text.is_some() && section_data(&other, ".text") == text {
                return Symbolizer::from_elf(&other, image_size, candidate);
            }
        }
        Err(format!("{} has no debug information (no .debug_line section)", image.display()))
    }

    fn from_elf(file: &object::File<'static>, image_size: u64, source: &Path) -> Result<Symbolizer, String> {
        let endian = if file.is_little_endian() { gimli::RunTimeEndian::Little } else { gimli::RunTimeEndian::Big };
        let load = |id: gimli::SectionId| -> Result<Reader, gimli::Error> {
            Ok(gimli::EndianSlice::new(section_data(file, id.name()).unwrap_or(&[]), endian))
        };
        let broken = |error: gimli::Error| format!("{}: unreadable DWARF: {error}", source.display());
        let dwarf = gimli::Dwarf::load(load).map_err(broken)?;
        let roots = workspace_roots(&dwarf);
        let context = addr2line::Context::from_dwarf(dwarf).map_err(broken)?;
        Ok(Symbolizer { context, image_size, roots, source: source.to_path_buf() })
    }

    /// Where `site` is in the source, if the line tables know.
    pub fn locate(&self, site: Site) -> Option<Place> {
        let probe = site.lookup_address(self.image_size)?;
        let mut frames = self.context.find_frames(probe).skip_all_loads().ok()?;
        let mut found: Vec<(Option<String>, Option<SourceLine>)> = Vec::new();
        while let Ok(Some(frame)) = frames.next() {
            let function = frame.function.as_ref().and_then(|name| name.demangle().ok()).map(|name| name.into_owned());
            let line = frame.location.and_then(|location| {
                Some(SourceLine { file: shorten_path(location.file?, &self.roots), line: location.line? })
            });
            found.push((function, line));
        }
        let (inner_function, at) = found.first().cloned()?;
        let at = at?;
        let inlined = match found.last() {
            Some((Some(into), Some(call))) if found.len() > 1 => Some(Inlined {
                function: inner_function.unwrap_or_else(|| "?".into()),
                into: into.clone(),
                call: call.clone(),
            }),
            _ => None,
        };
        Some(Place { at, inlined })
    }
}

/// The compilation directories of units whose name is relative to theirs: cargo compiles
/// the workspace's crates that way (the Rust library and registry crates have absolute
/// names), so these are the workspace the image was built in.
fn workspace_roots(dwarf: &gimli::Dwarf<Reader>) -> Vec<String> {
    let mut roots = Vec::new();
    let mut headers = dwarf.units();
    while let Ok(Some(header)) = headers.next() {
        let Ok(unit) = dwarf.unit(header) else { continue };
        let (Some(name), Some(directory)) = (unit.name, unit.comp_dir) else { continue };
        let directory = directory.to_string_lossy().into_owned();
        if !name.to_string_lossy().starts_with('/') && !roots.contains(&directory) {
            roots.push(directory);
        }
    }
    roots
}

/// A kernel image whose debug information is read the first time a report needs it, once
/// for all the boots of a process (matrix rows in parallel share one).
pub struct KernelImage {
    path: PathBuf,
    unstripped: Vec<PathBuf>,
    loaded: OnceLock<Result<Mutex<Symbolizer>, String>>,
}

impl fmt::Debug for KernelImage {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.debug_struct("KernelImage").field("path", &self.path).finish()
    }
}

impl KernelImage {
    /// The image at `path`; `unstripped` are linked ELFs to take DWARF from if it has none.
    pub fn new(path: impl Into<PathBuf>, unstripped: Vec<PathBuf>) -> Self {
        KernelImage { path: path.into(), unstripped, loaded: OnceLock::new() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where `site` is in the source; `Err` says why the image cannot tell.
    pub fn locate(&self, site: Site) -> Result<Option<Place>, String> {
        let loaded = self
            .loaded
            .get_or_init(|| Symbolizer::load(&self.path, &self.unstripped).map(Mutex::new))
            .as_ref()
            .map_err(Clone::clone)?;
        let symbolizer = loaded.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        Ok(symbolizer.locate(site))
    }
}

/// What [`Decoder::line`] makes of one line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decoded {
    /// Nothing to add.
    Unchanged,
    /// What to append to the line.
    Suffix(String),
    /// The line has an address but the image cannot decode it: why, said for the first
    /// such line only (later ones are [`Decoded::Unchanged`]).
    Unavailable(String),
}

/// Decodes a console line by line, following each report's state.
#[derive(Debug)]
pub struct Decoder<'a> {
    image: &'a KernelImage,
    report: Report,
    told_unavailable: bool,
}

impl<'a> Decoder<'a> {
    pub fn new(image: &'a KernelImage) -> Self {
        Decoder { image, report: Report::default(), told_unavailable: false }
    }

    /// What to append to `line` (without its line end), given the lines before it.
    pub fn line(&mut self, line: &str) -> Decoded {
        let Some(site) = self.report.site(line) else { return Decoded::Unchanged };
        match self.image.locate(site) {
            Ok(Some(place)) => Decoded::Suffix(place.to_string()),
            Ok(None) => Decoded::Unchanged,
            Err(_) if self.told_unavailable => Decoded::Unchanged,
            Err(why) => {
                self.told_unavailable = true;
                Decoded::Unavailable(format!(
                    "{why}: the fatal report's addresses are shown as the kernel printed them"
                ))
            }
        }
    }
}

/// A console decoded as a whole: [`decode`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DecodedText {
    /// The text with each decodable line's suffix appended (before its line end).
    pub text: String,
    /// Each line that got a suffix, as shown (without line end).
    pub lines: Vec<String>,
    /// Why addresses could not be decoded, if some could not.
    pub unavailable: Option<String>,
}

/// `text` (a console or transcript) with the fatal reports' lines decoded.
pub fn decode(image: &KernelImage, text: &str) -> DecodedText {
    let mut decoder = Decoder::new(image);
    let mut decoded = DecodedText::default();
    for (index, piece) in text.split('\n').enumerate() {
        if index > 0 {
            decoded.text.push('\n');
        }
        let body = piece.trim_end_matches('\r');
        decoded.text.push_str(body);
        match decoder.line(body) {
            Decoded::Suffix(suffix) => {
                decoded.text.push_str(&suffix);
                decoded.lines.push(format!("{}{suffix}", body.trim_start_matches('\r')));
            }
            Decoded::Unavailable(why) => decoded.unavailable = Some(why),
            Decoded::Unchanged => {}
        }
        decoded.text.push_str(&piece[body.len()..]);
    }
    decoded
}

/// The most of a line kept for deciding what it is: report lines are short, and a line
/// that never ends must not grow without bound.
const LINE_PREFIX_LIMIT: usize = 1024;

/// Decodes a console as it streams: bytes pass through at once, and a decodable line's
/// suffix is written before its line end (carriage returns held back until it is known
/// whether a newline follows, so that a terminal does not write the suffix over the line).
#[derive(Debug)]
pub struct StreamDecoder<'a> {
    decoder: Decoder<'a>,
    line: Vec<u8>,
    held_returns: usize,
}

impl<'a> StreamDecoder<'a> {
    pub fn new(image: &'a KernelImage) -> Self {
        StreamDecoder { decoder: Decoder::new(image), line: Vec::new(), held_returns: 0 }
    }

    /// The bytes to write for `bytes`, and why decoding is unavailable (once) if it is.
    pub fn push(&mut self, bytes: &[u8]) -> (Vec<u8>, Option<String>) {
        let mut out = Vec::with_capacity(bytes.len());
        let mut unavailable = None;
        for &byte in bytes {
            match byte {
                b'\r' => self.held_returns += 1,
                b'\n' => {
                    match self.decoder.line(&String::from_utf8_lossy(&self.line)) {
                        Decoded::Suffix(suffix) => out.extend_from_slice(suffix.as_bytes()),
                        Decoded::Unavailable(why) => unavailable = Some(why),
                        Decoded::Unchanged => {}
                    }
                    self.release_returns(&mut out);
                    out.push(b'\n');
                    self.line.clear();
                }
                _ => {
                    self.release_returns(&mut out);
                    out.push(byte);
                    if self.line.len() < LINE_PREFIX_LIMIT {
                        self.line.push(byte);
                    }
                }
            }
        }
        (out, unavailable)
    }

    /// What is still held back, at the end of the stream.
    pub fn finish(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        self.release_returns(&mut out);
        out
    }

    fn release_returns(&mut self, out: &mut Vec<u8>) {
        out.extend(std::iter::repeat_n(b'\r', self.held_returns));
        self.held_returns = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIZE: u64 = 0x27_4638;

    #[test]
    fn run_time_addresses_to_link_addresses() {
        assert_eq!(link_address(0xc000_0000_0047_1340, SIZE), Some(0x7_1340));
        assert_eq!(link_address(0x0000_0000_0040_014c, SIZE), Some(0x14c));
        assert_eq!(link_address(0xc000_0000_0040_0000, SIZE), Some(0));
        // Below the image, past its end, and a user address.
        assert_eq!(link_address(0xc000_0000_003f_fffc, SIZE), None);
        assert_eq!(link_address(0xc000_0000_0040_0000 + SIZE, SIZE), None);
        assert_eq!(link_address(0x0000_0000_1000_0000, SIZE), None);
    }

    #[test]
    fn return_addresses_look_up_their_call() {
        let ret = Site { address: 0xc000_0000_0047_1340, probe: Probe::Return };
        assert_eq!(ret.lookup_address(SIZE), Some(0x7_133c));
        let exact = Site { address: 0xc000_0000_0042_620c, probe: Probe::Exact };
        assert_eq!(exact.lookup_address(SIZE), Some(0x2_620c));
        assert_eq!(Site { address: 0x40_0000, probe: Probe::Return }.lookup_address(SIZE), None);
    }

    #[test]
    fn report_lines() {
        assert_eq!(
            classify("FATAL: exception 0x700 (program) at 0xc00000000042620c <ppc64_kernel::inject::raise+0xc>\r"),
            Line::Exception { pc: 0xc000_0000_0042_620c }
        );
        assert_eq!(classify("FATAL: panic at arch/ppc64/src/inject.rs:20:26: inject=panic"), Line::Fatal);
        // An exception line whose address the kernel could not symbolise still has `<?>`.
        assert_eq!(
            classify("FATAL: exception 0x300 (data storage) at 0x0000000000000000 <?>"),
            Line::Exception { pc: 0 }
        );
        assert_eq!(
            classify("  LR:   c000000000426230  CTR: 0000000000000000  CR: 28000044  XER: 0000000000000000"),
            Line::DumpLr { lr: 0xc000_0000_0042_6230 }
        );
        assert_eq!(classify("  LR <ppc64_kernel::inject::run+0x30>"), Line::LrSymbol);
        assert_eq!(
            classify(" [1] 0xc000000000471340 <boot_cpu_entry+0x2720>"),
            Line::Trace { depth: 1, address: 0xc000_0000_0047_1340 }
        );
        assert_eq!(
            classify(" [12] 0x000000000040014c <_start+0x14c>\r\r"),
            Line::Trace { depth: 12, address: 0x40_014c }
        );
        for other in [
            "Call trace:",
            " [1] 0xc000000000471340 boot_cpu_entry+0x2720",
            " [x] 0xc000000000471340 <a+0x1>",
            "[info] memory: reserved 0x0000400000-0x00005917b0 kernel image",
            "  LR:   nothex",
            "ok 1 boot.cpus_match_expected",
        ] {
            assert_eq!(classify(other), Line::Other, "{other}");
        }
    }

    #[test]
    fn an_exception_trace_starts_at_the_faulting_instruction() {
        let mut report = Report::default();
        let exact = |address| Some(Site { address, probe: Probe::Exact });
        let ret = |address| Some(Site { address, probe: Probe::Return });
        assert_eq!(
            report.site("FATAL: exception 0x700 (program) at 0xc00000000042620c <f+0xc>"),
            exact(0xc000_0000_0042_620c)
        );
        assert_eq!(report.site("  on CPU 0 (PIR 0)"), None);
        assert_eq!(report.site("  LR:   c000000000426230  CTR: 0000000000000000  CR: 0  XER: 0"), None);
        assert_eq!(report.site("  LR <g+0x30>"), ret(0xc000_0000_0042_6230));
        // The dump's LR is used once.
        assert_eq!(report.site("  LR <g+0x30>"), None);
        assert_eq!(report.site("Call trace:"), None);
        assert_eq!(report.site(" [0] 0xc00000000042620c <f+0xc>"), exact(0xc000_0000_0042_620c));
        assert_eq!(report.site(" [1] 0xc000000000426230 <g+0x30>"), ret(0xc000_0000_0042_6230));
        // A panic's trace is all return addresses, even at depth 0.
        assert_eq!(report.site("FATAL: panic at a.rs:1:1: boom"), None);
        assert_eq!(report.site(" [0] 0xc00000000042620c <f+0xc>"), ret(0xc000_0000_0042_620c));
    }

    #[test]
    fn paths_are_shortened() {
        let roots = vec!["/work/main".to_string(), "/work/main/tools".to_string()];
        assert_eq!(shorten_path("/work/main/arch/ppc64/src/main.rs", &roots), "arch/ppc64/src/main.rs");
        assert_eq!(shorten_path("/work/main/tools/x/src/lib.rs", &roots), "x/src/lib.rs");
        assert_eq!(
            shorten_path("/usr/lib/rustlib/src/rust/library/core/src/panicking.rs", &roots),
            "core/src/panicking.rs"
        );
        assert_eq!(shorten_path("/usr/src/rustc-1.96.0/library/alloc/src/raw_vec.rs", &roots), "alloc/src/raw_vec.rs");
        assert_eq!(
            shorten_path("/root/.cargo/registry/src/some-index-0123/bitflags-2.13.2/src/lib.rs", &roots),
            "bitflags-2.13.2/src/lib.rs"
        );
        assert_eq!(shorten_path("/work/mainline/x.rs", &roots), "/work/mainline/x.rs");
        assert_eq!(shorten_path("/elsewhere/y.rs", &[]), "/elsewhere/y.rs");
    }

    #[test]
    fn places_as_appended() {
        let line = |file: &str, line| SourceLine { file: file.into(), line };
        let plain = Place { at: line("arch/ppc64/src/main.rs", 160), inlined: None };
        assert_eq!(plain.to_string(), " at arch/ppc64/src/main.rs:160");
        let inlined = Place {
            at: line("arch/ppc64/src/inject.rs", 20),
            inlined: Some(Inlined {
                function: "ppc64_kernel::inject::run".into(),
                into: "boot_cpu_entry".into(),
                call: line("arch/ppc64/src/main.rs", 160),
            }),
        };
        assert_eq!(
            inlined.to_string(),
            " at arch/ppc64/src/inject.rs:20 (ppc64_kernel::inject::run inlined into boot_cpu_entry at \
             arch/ppc64/src/main.rs:160)"
        );
    }

    /// An image that is not ELF: decoding is unavailable, said once, and nothing changes.
    fn not_an_image() -> (PathBuf, KernelImage) {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("harness-backtrace-{}-{n}.elf", std::process::id()));
        std::fs::write(&path, "not really a kernel").unwrap();
        let image = KernelImage::new(&path, Vec::new());
        (path, image)
    }

    const PANIC: &str = "ok 1 a\r\nFATAL: panic at a.rs:1:1: boom\r\n  on CPU 0 (PIR 0)\r\nCall trace:\r\n \
                         [0] 0xc000000000096e20 <core::panicking::panic_fmt+0x40>\r\n \
                         [1] 0xc000000000471340 <boot_cpu_entry+0x2720>\r\nselftests: 1 passed, 1 failed, 0 skipped\r\n";

    #[test]
    fn without_debug_information_lines_stay_as_they_are() {
        let (path, image) = not_an_image();
        let decoded = decode(&image, PANIC);
        assert_eq!(decoded.text, PANIC);
        assert!(decoded.lines.is_empty());
        let why = decoded.unavailable.expect("says why");
        assert!(why.contains("is not an ELF file") && why.ends_with("shown as the kernel printed them"), "{why}");

        let mut stream = StreamDecoder::new(&image);
        let mut out = Vec::new();
        let mut told = Vec::new();
        // Byte by byte: a line end split from its carriage return changes nothing either.
        for byte in PANIC.as_bytes() {
            let (bytes, unavailable) = stream.push(std::slice::from_ref(byte));
            out.extend(bytes);
            told.extend(unavailable);
        }
        out.extend(stream.finish());
        assert_eq!(String::from_utf8(out).unwrap(), PANIC);
        assert_eq!(told.len(), 1, "{told:?}");
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn consoles_without_reports_never_read_the_image() {
        let image = KernelImage::new("/nonexistent/kernel.elf", Vec::new());
        let console = "ok 1 a\nselftests: 1 passed, 0 failed, 0 skipped\n";
        assert_eq!(decode(&image, console), DecodedText { text: console.into(), ..DecodedText::default() });
        assert!(image.loaded.get().is_none());
        let (bytes, unavailable) = StreamDecoder::new(&image).push(console.as_bytes());
        assert_eq!((bytes.as_slice(), unavailable), (console.as_bytes(), None));
    }

    #[test]
    fn held_carriage_returns_come_out_before_other_bytes_and_at_the_end() {
        let image = KernelImage::new("/nonexistent/kernel.elf", Vec::new());
        let mut stream = StreamDecoder::new(&image);
        assert_eq!(stream.push(b"a\r").0, b"a");
        assert_eq!(stream.push(b"b\r\r").0, b"\rb");
        assert_eq!(stream.finish(), b"\r\r");
    }
}
