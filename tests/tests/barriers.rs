//! The built kernel has the barriers its correctness argument rests on
//! (`harness::disasm::EXPECTATIONS`): build/kernel.elf is disassembled and each
//! named function checked.

use harness::{disasm, image};

#[test]
fn the_kernel_has_its_barriers() {
    let image = image::kernel_image().expect("the kernel image builds");
    let objdump = disasm::objdump().expect("llvm-objdump");
    let text = disasm::disassemble(&objdump, &image).expect("disassembly");
    let functions = disasm::functions(&text);
    let failures: Vec<String> =
        disasm::EXPECTATIONS.iter().filter_map(|expectation| disasm::check(&functions, expectation).err()).collect();
    for expectation in disasm::EXPECTATIONS {
        eprintln!(
            "barrier: {}: `{}` at the {}",
            expectation.function,
            expectation.barrier,
            expectation.after.describe()
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
