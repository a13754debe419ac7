//! Builds small ELF64 LE images shaped like the kernel's, and runs the patcher on them.

use kernel::symbols::SymbolTable;
use object::elf;
use object::write::elf::{FileHeader, SectionHeader, Sym, Writer};
use object::write::StringId;
use object::{Endianness, Object, ObjectSection};

use crate::patch::{self, Error, Summary};

pub struct TestSection {
    pub name: &'static str,
    pub address: u64,
    pub flags: elf::SectionFlags,
    pub sh_type: elf::SectionType,
    /// File bytes; for `SHT_NOBITS` only the length counts.
    pub data: Vec<u8>,
}

pub struct TestSymbol {
    pub name: &'static str,
    pub value: u64,
    pub size: u64,
    pub info: elf::SymbolInfo,
    /// Index into the `sections` given to [`build`]; `None` for undefined.
    pub section: Option<usize>,
}

pub fn code(name: &'static str, address: u64, length: usize) -> TestSection {
    TestSection {
        name,
        address,
        flags: elf::SHF_ALLOC | elf::SHF_EXECINSTR,
        sh_type: elf::SHT_PROGBITS,
        data: vec![0x60; length],
    }
}

pub fn reserved(name: &'static str, address: u64, length: usize) -> TestSection {
    TestSection { name, address, flags: elf::SHF_ALLOC, sh_type: elf::SHT_PROGBITS, data: vec![0; length] }
}

pub fn symbol(name: &'static str, value: u64, size: u64, info: elf::SymbolInfo, section: Option<usize>) -> TestSymbol {
    TestSymbol { name, value, size, info, section }
}

/// A static PIE of `machine` with the given sections and `.symtab`.
pub fn build(machine: elf::Machine, sections: &[TestSection], symbols: &[TestSymbol]) -> Vec<u8> {
    let mut buffer = Vec::new();
    let mut writer = Writer::new(Endianness::Little, true, &mut buffer);
    writer.reserve_file_header();

    let names: Vec<StringId> =
        sections.iter().map(|section| writer.add_section_name(section.name.as_bytes())).collect();
    let indices: Vec<u32> = sections.iter().map(|_| writer.reserve_section_index().0).collect();
    // ELF requires the local symbols first.
    let mut ordered: Vec<&TestSymbol> = symbols.iter().collect();
    ordered.sort_by_key(|symbol| symbol.info.st_bind() != elf::STB_LOCAL);
    let string_ids: Vec<StringId> = ordered
        .iter()
        .map(|symbol| {
            writer.reserve_symbol_index(None);
            writer.add_string(symbol.name.as_bytes())
        })
        .collect();
    writer.reserve_symtab_section_index();
    writer.reserve_strtab_section_index();
    writer.reserve_shstrtab_section_index();

    let offsets: Vec<u64> = sections
        .iter()
        .map(|section| match section.sh_type {
            elf::SHT_NOBITS => 0,
            _ => writer.reserve(section.data.len() as u64, 16),
        })
        .collect();
    writer.reserve_symtab();
    writer.reserve_strtab().expect("strtab");
    writer.reserve_shstrtab().expect("shstrtab");
    writer.reserve_section_headers();

    writer
        .write_file_header(&FileHeader {
            os_abi: elf::ELFOSABI_NONE,
            abi_version: 0,
            e_type: elf::ET_DYN,
            e_machine: machine,
            e_entry: 0,
            e_flags: elf::FileFlags(2),
        })
        .expect("file header");
    for section in sections.iter().filter(|section| section.sh_type != elf::SHT_NOBITS) {
        writer.write_align(16);
        writer.write(&section.data);
    }
    writer.write_null_symbol();
    for (symbol, name) in ordered.iter().zip(&string_ids) {
        writer.write_symbol(&Sym {
            section: symbol.section.map(|index| indices[index]),
            st_name: writer.string_offset(Some(*name)),
            st_info: symbol.info,
            st_other: elf::SymbolOther(0),
            st_shndx: elf::SHN_UNDEF,
            st_value: symbol.value,
            st_size: symbol.size,
        });
    }
    writer.write_strtab();
    writer.write_shstrtab();

    writer.write_null_section_header();
    for ((section, name), offset) in sections.iter().zip(&names).zip(&offsets) {
        writer.write_section_header(&SectionHeader {
            sh_name: writer.section_name_offset(Some(*name)),
            sh_type: section.sh_type,
            sh_flags: section.flags,
            sh_addr: section.address,
            sh_offset: *offset,
            sh_size: section.data.len() as u64,
            sh_link: 0,
            sh_info: 0,
            sh_addralign: 16,
            sh_entsize: 0,
        });
    }
    let locals = ordered.iter().filter(|symbol| symbol.info.st_bind() == elf::STB_LOCAL).count();
    writer.write_symtab_section_header(locals as u32 + 1);
    writer.write_strtab_section_header();
    writer.write_shstrtab_section_header();
    buffer
}

/// The bytes of the `.ksyms` section of an ELF image.
pub fn ksyms_bytes(image: &[u8]) -> &[u8] {
    let file = object::File::parse(image).expect("valid ELF");
    let section = file.section_by_name(patch::SECTION_NAME).expect(".ksyms");
    let (offset, size) = section.file_range().expect("has file bytes");
    &image[offset as usize..(offset + size) as usize]
}

const TEXT_HEAD: usize = 0;
const TEXT: usize = 1;
const RODATA: usize = 2;
const KSYMS: usize = 3;

/// Shaped like the kernel: `.text.head` at 0, `.text`, data, and `.ksyms`.
fn kernel_like(ksyms_length: usize) -> Vec<u8> {
    let global_function = elf::STT_FUNC | elf::STB_GLOBAL;
    let local_function = elf::STT_FUNC | elf::STB_LOCAL;
    let global_label = elf::STT_NOTYPE | elf::STB_GLOBAL;
    let local_label = elf::STT_NOTYPE | elf::STB_LOCAL;
    let sections = [
        code(".text.head", 0x0, 0x114),
        code(".text", 0x120, 0x100),
        TestSection { data: vec![1; 0x40], ..reserved(".rodata", 0x10000, 0) },
        reserved(".ksyms", 0x10040, ksyms_length),
    ];
    let symbols = [
        symbol("__kernel_start", 0x0, 0, global_label, Some(TEXT_HEAD)),
        symbol("_start", 0x0, 0x114, global_function, Some(TEXT_HEAD)),
        symbol("__text_start", 0x120, 0, global_label, Some(TEXT)),
        symbol("_ZN6kernel4main17h0123456789abcdefE", 0x120, 0x40, local_function, Some(TEXT)),
        symbol(".Ltmp3", 0x130, 0, local_label, Some(TEXT)),
        symbol("firmware_call_be32", 0x180, 0, global_label, Some(TEXT)),
        symbol("_ZN4boot7console5write17hfedcba9876543210E", 0x1e0, 0x40, global_function, Some(TEXT)),
        symbol("__text_end", 0x220, 0, global_label, Some(TEXT)),
        symbol("GREETING", 0x10000, 0x10, elf::STT_OBJECT | elf::STB_GLOBAL, Some(RODATA)),
        symbol("__ksyms_start", 0x10040, 0, global_label, Some(KSYMS)),
        symbol("undefined_weak", 0, 0, elf::STT_FUNC | elf::STB_WEAK, None),
    ];
    build(elf::EM_PPC64, &sections, &symbols)
}

#[test]
fn patches_kernel_like_image() {
    let input = kernel_like(4096);
    let (output, summary) = patch::patch(&input).expect("patches");
    assert_eq!(output.len(), input.len());
    let table = SymbolTable::parse(ksyms_bytes(&output)).expect("table");
    assert_eq!(table.len(), 4);
    assert_eq!(summary, Summary { symbols: 4, bytes_used: summary.bytes_used, bytes_available: 4096 });
    assert_eq!(table.find("_start"), Some(0));
    assert_eq!(table.find("kernel::main"), Some(0x120));
    assert_eq!(table.find("firmware_call_be32"), Some(0x180));
    assert_eq!(table.find("boot::console::write"), Some(0x1e0));
    for absent in ["__kernel_start", "__text_start", "__text_end", ".Ltmp3", "GREETING"] {
        assert_eq!(table.find(absent), None, "{absent}");
    }
    let symbol = table.lookup(0x13c).expect("inside main");
    assert_eq!((symbol.name, symbol.offset), ("kernel::main", 0x1c));
    // Past main's size, before the label.
    assert_eq!(table.lookup(0x15c).map(|s| s.offset), Some(0x3c));
    assert_eq!(table.lookup(0x160), None);
    assert_eq!(table.lookup(0x17c), None);
    assert_eq!(table.lookup(0x1a0).map(|s| s.name), Some("firmware_call_be32"));
    assert_eq!(table.lookup(0x220), None);

    // Only the .ksyms bytes changed.
    let ksyms = ksyms_bytes(&input).as_ptr() as usize - input.as_ptr() as usize;
    let changed: Vec<usize> = (0..input.len()).filter(|&i| input[i] != output[i]).collect();
    assert!(changed.iter().all(|i| (ksyms..ksyms + 4096).contains(i)));
    assert!(!changed.is_empty());

    // Patching again gives the same image.
    assert_eq!(patch::patch(&output).expect("re-patches").0, output);
}

#[test]
fn table_too_large() {
    let needed = patch::patch(&kernel_like(4096)).expect("patches").1.bytes_used;
    match patch::patch(&kernel_like(needed - 1)) {
        Err(error @ Error::TooSmall { .. }) => {
            let message = error.to_string();
            assert!(message.contains(&format!("needs {needed} bytes")), "{message}");
            assert!(message.contains(&format!("only {} bytes", needed - 1)), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(patch::patch(&kernel_like(needed)).is_ok());
}

#[test]
fn missing_section() {
    let image = build(elf::EM_PPC64, &[code(".text", 0x0, 0x10)], &[]);
    assert!(matches!(patch::patch(&image), Err(Error::MissingSection)));
}

#[test]
fn nobits_section() {
    let ksyms = TestSection { sh_type: elf::SHT_NOBITS, ..reserved(".ksyms", 0x1000, 64) };
    let image = build(elf::EM_PPC64, &[code(".text", 0x0, 0x10), ksyms], &[]);
    assert!(matches!(patch::patch(&image), Err(Error::SectionHasNoFileBytes)));
}

#[test]
fn wrong_machine_or_format() {
    let x86 = build(elf::EM_X86_64, &[reserved(".ksyms", 0, 64)], &[]);
    assert!(matches!(patch::patch(&x86), Err(Error::NotPpc64 { machine: 62 })));

    let mut big_endian = kernel_like(4096);
    big_endian[patch::EI_DATA] = elf::ELFDATA2MSB.0;
    assert!(matches!(patch::patch(&big_endian), Err(Error::NotLittleEndian)));

    let mut elf32 = kernel_like(4096);
    elf32[patch::EI_CLASS] = elf::ELFCLASS32.0;
    assert!(matches!(patch::patch(&elf32), Err(Error::Not64Bit)));

    assert!(matches!(patch::patch(b"#!/bin/sh\n"), Err(Error::NotElf)));
    assert!(matches!(patch::patch(&[]), Err(Error::NotElf)));
}

#[test]
fn malformed_elf_is_an_error() {
    let mut image = kernel_like(4096);
    // e_shoff (ELF64 header offset 0x28) far past the end of the file.
    image[0x28..0x30].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(patch::patch(&image), Err(Error::Malformed(_))));
}
