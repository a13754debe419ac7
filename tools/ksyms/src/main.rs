//! `ksyms <input.elf> <output.elf>`: copies the linked kernel and writes its
//! symbol table (format in `kernel::symbols`) into the `.ksyms` section, which
//! the kernel reads at run time to symbolise backtraces.
#![deny(unsafe_code)]

mod patch;
mod selection;
#[cfg(test)]
mod test_elf;

use std::path::Path;
use std::process::ExitCode;
use std::{env, fs};

const USAGE: &str = "usage: ksyms <input.elf> <output.elf>";

fn main() -> ExitCode {
    let arguments: Vec<String> = env::args().skip(1).collect();
    let [input, output] = arguments.as_slice() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    match run(Path::new(input), Path::new(output)) {
        Ok(summary) => {
            eprintln!(
                "ksyms: {} symbols, {} of {} bytes of {} used",
                summary.symbols,
                summary.bytes_used,
                summary.bytes_available,
                patch::SECTION_NAME
            );
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("ksyms: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(input: &Path, output: &Path) -> Result<patch::Summary, String> {
    let data = fs::read(input).map_err(|error| format!("cannot read {}: {error}", input.display()))?;
    let (patched, summary) = patch::patch(&data).map_err(|error| format!("{}: {error}", input.display()))?;
    fs::write(output, patched).map_err(|error| format!("cannot write {}: {error}", output.display()))?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use object::elf;

    #[test]
    fn run_writes_the_output_file() {
        let directory = std::env::temp_dir().join(format!("ksyms-run-{}", std::process::id()));
        fs::create_dir_all(&directory).expect("temporary directory");
        let input = directory.join("kernel.elf");
        let output = directory.join("kernel.patched.elf");
        let sections = [test_elf::code(".text", 0x0, 0x20), test_elf::reserved(".ksyms", 0x100, 256)];
        let symbols = [test_elf::symbol("_start", 0x0, 0x20, elf::STT_FUNC | elf::STB_GLOBAL, Some(0))];
        fs::write(&input, test_elf::build(elf::EM_PPC64, &sections, &symbols)).expect("input");

        let summary = run(&input, &output).expect("runs");
        assert_eq!(summary.symbols, 1);
        let patched = fs::read(&output).expect("output");
        let table = kernel::symbols::SymbolTable::parse(test_elf::ksyms_bytes(&patched));
        assert_eq!(table.and_then(|table| table.find("_start")), Some(0));

        let error = run(&directory.join("absent.elf"), &output).expect_err("no input");
        assert!(error.starts_with("cannot read"), "{error}");
        fs::remove_dir_all(&directory).expect("clean up");
    }
}
