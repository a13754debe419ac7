//! The built kernel's addresses decode to their source lines: `boot_cpu_entry`, from the
//! image's ELF symbol table, at its run-time addresses (translation on and real mode) and
//! in a call trace as the kernel prints it.

use harness::backtrace::{self, KernelImage, Probe, Site, LINEAR_MAP_BASE, LOAD_ADDRESS};
use harness::image;
use object::{Object, ObjectSymbol};

/// `boot_cpu_entry`'s link address in `image`.
fn boot_cpu_entry(image: &std::path::Path) -> u64 {
    let bytes = std::fs::read(image).expect("the image reads");
    let file = object::File::parse(&*bytes).expect("the image is ELF");
    let symbol = file.symbols().find(|symbol| symbol.name() == Ok("boot_cpu_entry")).expect("boot_cpu_entry");
    symbol.address()
}

/// The file a place is in, in `boot_cpu_entry` itself: the line, or where what is inlined
/// there is called from.
fn outer_file(place: &backtrace::Place) -> &str {
    place.inlined.as_ref().map_or(&place.at.file, |inlined| &inlined.call.file)
}

#[test]
fn boot_cpu_entry_is_in_main_rs() {
    let path = image::kernel_image().expect("the kernel image builds");
    let link = boot_cpu_entry(&path);
    let image = image::debug_info(&path);
    let translated = LINEAR_MAP_BASE | (LOAD_ADDRESS + link);
    let place = image.locate(Site { address: translated, probe: Probe::Exact }).expect("debug info").expect("a line");
    assert_eq!(outer_file(&place), "arch/ppc64/src/main.rs", "{place}");
    if let Some(inlined) = &place.inlined {
        assert_eq!(inlined.into, "boot_cpu_entry", "{place}");
    }
    // Real mode: the same code at its physical address.
    let real_mode = image.locate(Site { address: LOAD_ADDRESS + link, probe: Probe::Exact }).unwrap();
    assert_eq!(real_mode, Some(place));
    // Outside the image: nothing.
    assert_eq!(image.locate(Site { address: LINEAR_MAP_BASE | 0x1000, probe: Probe::Exact }), Ok(None));
}

#[test]
fn a_call_trace_line_gets_its_source_line() {
    let path = image::kernel_image().expect("the kernel image builds");
    let image: KernelImage = image::debug_info(&path);
    let address = LINEAR_MAP_BASE | (LOAD_ADDRESS + boot_cpu_entry(&path) + 8);
    let console = format!(
        "FATAL: panic at arch/ppc64/src/inject.rs:20:26: inject=panic: deliberate panic\r\n  on CPU 0 (PIR 0)\r\n\
         Call trace:\r\n [0] {address:#018x} <boot_cpu_entry+0x8>\r\nselftests: 0 passed, 1 failed, 0 skipped\r\n"
    );
    let decoded = backtrace::decode(&image, &console);
    assert_eq!(decoded.unavailable, None);
    assert_eq!(decoded.lines.len(), 1, "{decoded:?}");
    let line = &decoded.lines[0];
    let prefix = format!(" [0] {address:#018x} <boot_cpu_entry+0x8> at ");
    assert!(line.starts_with(&prefix), "{line}");
    assert!(
        line.contains(" at arch/ppc64/src/main.rs:") && !line.ends_with(':'),
        "boot_cpu_entry's code is in main.rs, or inlined there: {line}"
    );
    // Only that line changed, before its carriage return.
    let suffix = &line[prefix.len() - 4..];
    assert_eq!(decoded.text.replacen(suffix, "", 1), console);
    assert!(decoded.text.contains(&format!("{suffix}\r\n")));
}

#[test]
fn streaming_decodes_as_a_whole_console_does() {
    let path = image::kernel_image().expect("the kernel image builds");
    let image = image::debug_info(&path);
    let entry = LINEAR_MAP_BASE | (LOAD_ADDRESS + boot_cpu_entry(&path));
    let console = format!(
        "ok 1 a\r\r\nFATAL: exception 0x700 (program) at {entry:#018x} <boot_cpu_entry+0x0>\r\r\n\
         \x20 LR:   {:016x}  CTR: 0000000000000000  CR: 22000a82  XER: 0000000000000000\r\r\n\
         \x20 LR <boot_cpu_entry+0x10>\r\r\nCall trace:\r\r\n [0] {entry:#018x} <boot_cpu_entry+0x0>\r\r\n\
         \x20[1] 0x0000000000400264 <_start+0x264>\r\r\nselftests: 1 passed, 1 failed, 0 skipped\r\r\n",
        entry + 0x10
    );
    let whole = backtrace::decode(&image, &console);
    // The exception line, LR and frame 0; `_start` (assembly) has no line tables.
    assert_eq!(whole.lines.len(), 3, "{:#?}", whole.lines);
    assert!(whole.lines.iter().all(|line| line.contains("arch/ppc64/src/main.rs:")), "{:#?}", whole.lines);
    for chunk in [1, 7, 4096] {
        let mut stream = backtrace::StreamDecoder::new(&image);
        let mut shown = Vec::new();
        for piece in console.as_bytes().chunks(chunk) {
            let (bytes, unavailable) = stream.push(piece);
            assert_eq!(unavailable, None);
            shown.extend(bytes);
        }
        shown.extend(stream.finish());
        assert_eq!(String::from_utf8(shown).unwrap(), whole.text, "in chunks of {chunk}");
    }
}
