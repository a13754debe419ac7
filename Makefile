# ppc64-kernel: a Rust bare-metal POWER kernel: pseries guests (POWER8, POWER9, POWER10)
# and bare-metal POWER9 under skiboot (powernv).
#
# On a fresh Debian 12 machine (git, make, ca-certificates; root for apt-get) every
# target installs what it lacks through scripts/deps.sh: Debian's Rust from
# bookworm-security (rustc-web cargo-web rust-web-src rust-web-llvm lld-22), QEMU >= 9.1
# (qemu-system-ppc from bookworm-backports, a source derived from the machine's own
# Debian source), and says so as it goes ("deps: ...", "kernel: ...").
#
#   make run     build, install what is missing, boot at 4 CPUs in QEMU (every self-test),
#                then print what the boot showed of the race
#   make test    make lint, host unit and property tests (all `cargo test` runs: it
#                never boots QEMU), the QEMU boot matrix (tests/matrix.cfg; results in
#                build/results/), the loom models (make loom), quick bench boots
#   make loom    model-check GUP-fast/hash fault/RCU vs collapse (kernel/tests/loom_*.rs)
#   make race    the race lab: both MMUs, pseries and powernv, every knob combination,
#                loom; one verdict table (build/race/verdicts.md)
#   make bench   benchmarks on both MMUs at 1-8 CPUs beside Linux's, and powernv beside
#                pseries (bench/results.md); QUICK=1: two short boots (pseries,
#                powernv), checked, output in build/bench-quick/; LINUX_GUP_TEST=1:
#                first builds Linux with its gup_test (once, minutes), whose GUP-fast
#                timings are then part of every `make bench`
#   make kernel  build build/kernel.elf only
#   make lint    rustfmt --check, clippy -D warnings for the host crates and the kernel
#   make deps    install the toolchain and QEMU only
#   make gdb     boot halted with QEMU's gdb stub and attach gdb-multiarch
#   make clean
#
# Knobs (make VAR=value):
#   MACHINE=pseries  pseries (-M pseries, a PAPR guest), or powernv (bare metal:
#                  -M powernv9, powernv10 with CPU=POWER10; firmware skiboot, TCG, MEM>=1G)
#   SMP=4          CPUs (-smp; the race and stress tests need 3 or more), or SMT cores:
#                  SMP=8,threads=4
#   CPU=POWER9     processor model under TCG: POWER8 (hash only), POWER9, POWER10
#   ACCEL=tcg      tcg, or kvm (-accel kvm -cpu host: a POWER host with /dev/kvm; pseries)
#   MEM=1G         memory (-m)
#   FW=vof         pseries firmware: vof (QEMU's fast VOF) or slof (SLOF). powernv always
#                  boots QEMU's skiboot (FW defaults to skiboot there; vof/slof are refused)
#   APPEND=        kernel command line, e.g. APPEND="loglevel=debug selftest=frames"
#   QEMU=          QEMU binary (default: qemu-system-ppc64 on PATH, installed if missing)
#   TIMEOUT=120    seconds before `make run` gives up on a boot
#   RUSTC=, CARGO= the Rust used for the kernel (needs library source for build-std
#                  and Cargo.toml's rust-version; default: found by scripts/deps.sh)
#   PROFILE=release  cargo profile for the kernel (release or dev)

MACHINE ?= pseries
SMP     ?= 4
CPU     ?= POWER9
ACCEL   ?= tcg
MEM     ?= 1G
FW      ?= $(if $(filter powernv,$(MACHINE)),skiboot,vof)
APPEND  ?=
TIMEOUT ?= 120
PROFILE ?= release

TARGET_SPEC := arch/ppc64/powerpc64le-kernel.json
CROSS_DIR   := target/cross
PROFILE_DIR := $(if $(filter dev,$(PROFILE)),debug,$(PROFILE))
LINKED      := $(CROSS_DIR)/powerpc64le-kernel/$(PROFILE_DIR)/ppc64-kernel
IMAGE       := build/kernel.elf
# The host's cargo builds the host tools and runs the tests.
HOST_CARGO  ?= $(shell command -v cargo || echo /usr/bin/cargo)
export QEMU

.PHONY: all kernel run test lint loom bench race gdb deps clean
all: kernel

deps:
	@scripts/deps.sh rust qemu

# The kernel is always rebuilt through cargo, which knows when nothing changed.
# Its first build also compiles core and alloc for the target (-Zbuild-std) and
# the host's ksyms: about a minute on two cores.
kernel:
	@scripts/deps.sh rust
	@[ -e $(LINKED) ] || echo "kernel: building $(IMAGE) (the first build compiles core and alloc too: about a minute)"
	@eval "$$(scripts/deps.sh env)" && \
	  RUSTC="$$CROSS_RUSTC" RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR=$(CROSS_DIR) \
	  "$$CROSS_CARGO" build --quiet -p ppc64 --profile $(PROFILE) --target $(TARGET_SPEC) \
	    -Zbuild-std=core,alloc -Zbuild-std-features=compiler-builtins-mem -Zjson-target-spec
	@mkdir -p build
	@$(HOST_CARGO) run --quiet -p ksyms -- $(LINKED) $(IMAGE)

run: kernel
	@scripts/deps.sh qemu
	@$(HOST_CARGO) run --quiet -p harness --bin kboot -- --machine $(MACHINE) --fw $(FW) --cpu $(CPU) --accel $(ACCEL) \
	  --smp $(SMP) --mem $(MEM) --timeout $(TIMEOUT) --append "$(APPEND)"

test: kernel lint
	@scripts/deps.sh qemu objdump
	scripts/test-apt-sources.sh
	$(HOST_CARGO) test --workspace
	HARNESS_MATRIX=1 $(HOST_CARGO) test -p harness --test matrix
	@$(MAKE) --no-print-directory loom
	$(HOST_CARGO) run --quiet -p harness --bin bench -- --quick

# Style and lints as CI enforces them: rustfmt (rustfmt.toml) over every crate,
# clippy with -D warnings for the host crates and for the kernel on its target
# (the kernel's own cargo, with its clippy-driver first on PATH).
lint:
	@scripts/deps.sh rust lint
	$(HOST_CARGO) fmt --all -- --check
	$(HOST_CARGO) clippy --quiet --all-targets -- -D warnings
	@eval "$$(scripts/deps.sh env)" && \
	  PATH="$$(dirname "$$CROSS_CARGO"):$$PATH" RUSTC="$$CROSS_RUSTC" RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR=target/clippy-cross \
	  "$$CROSS_CARGO" clippy --quiet -p ppc64 --target $(TARGET_SPEC) \
	    -Zbuild-std=core,alloc -Zbuild-std-features=compiler-builtins-mem -Zjson-target-spec -- -D warnings
	@echo "lint: rustfmt and clippy (host and target) clean"

# The loom models build the kernel crate with --cfg loom (loom's atomics in
# kernel::sync), in a target directory of their own so the normal build
# stays as it is. LOOM_MAX_PREEMPTIONS=N widens the bound (default 3).
LOOM_TESTS := --test loom_race --test loom_hash --test loom_rcu
loom:
	RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom $(HOST_CARGO) test -p kernel --release $(LOOM_TESTS) \
	  -- --nocapture --test-threads 1

# The kernel's barrier pairings under POWER's memory model: herd7 runs
# litmus/*.litmus with ppc.cat (README "Litmus tests"); skipped with a
# note if herd7 is not installed.
.PHONY: litmus
litmus:
	@scripts/litmus.sh

# The race lab: both MMUs at 4 CPUs on pseries and powernv, every knob
# combination, the loom models, one verdict table (build/race/verdicts.md).
# RACE_ARGS= passes kernel options, e.g. RACE_ARGS="race_seed=0x2a".
race: kernel
	@scripts/deps.sh qemu
	@$(HOST_CARGO) run --quiet -p harness --bin race -- $(RACE_ARGS)

# Timings never decide a test: `make bench` writes them down (README, "Benchmarks").
bench: kernel
	@scripts/deps.sh qemu
	$(HOST_CARGO) run --quiet -p harness --bin bench -- $(if $(QUICK),--quick) $(if $(LINUX_GUP_TEST),--linux-gup-test)

# The image is linked at 0, loaded at 0x400000 and runs at KERNEL_BASE (0xc...) + that.
gdb: kernel
	@scripts/deps.sh qemu gdb
	@$(HOST_CARGO) run --quiet -p harness --bin kboot -- --machine $(MACHINE) --fw $(FW) --cpu $(CPU) --accel $(ACCEL) \
	  --smp $(SMP) --mem $(MEM) --append "$(APPEND)" --gdb & \
	sleep 1; gdb-multiarch -q -ex 'set architecture powerpc:common64' -ex 'set endian little' \
	  -ex 'add-symbol-file $(IMAGE) -o 0xc000000000400000' -ex 'target remote localhost:1234'; \
	kill %1 2>/dev/null || true

clean:
	rm -rf build target
