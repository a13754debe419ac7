//! Run-Time Abstraction Services (PAPR "RTAS"): firmware calls made through
//! an argument buffer of big-endian 32-bit cells, `token, nargs, nret,
//! args..., rets...`, entered big-endian in real mode with r3 = the buffer and
//! r4 = the RTAS base. One call at a time, under a lock.

use core::sync::atomic::{AtomicU64, Ordering};

use boot::Rtas;
use spin::Mutex;

const MAX_CELLS: usize = 16;

/// RTAS status for success (PAPR: negative values are errors, -2 busy).
pub const RTAS_SUCCESS: i32 = 0;

#[repr(C, align(16))]
struct Args([u32; 3 + MAX_CELLS]);

struct State {
    base: u64,
    entry: u64,
    args: Args,
}

static RTAS: Mutex<State> = Mutex::new(State { base: 0, entry: 0, args: Args([0; 3 + MAX_CELLS]) });
static POWER_OFF_TOKEN: AtomicU64 = AtomicU64::new(u64::MAX);

/// Records where RTAS was instantiated.
pub fn init(rtas: &Rtas) {
    let mut state = RTAS.lock();
    state.base = rtas.base;
    state.entry = rtas.entry;
    POWER_OFF_TOKEN.store(rtas.tokens.power_off as u64, Ordering::Relaxed);
}

pub fn is_ready() -> bool {
    RTAS.lock().entry != 0
}

/// Calls RTAS function `token`; returns its status and fills `rets`.
pub fn call(token: u32, args: &[u32], rets: &mut [u32]) -> Result<i32, &'static str> {
    let mut state = RTAS.lock();
    call_locked(&mut state, token, args, rets)
}

fn call_locked(state: &mut State, token: u32, args: &[u32], rets: &mut [u32]) -> Result<i32, &'static str> {
    if state.entry == 0 {
        return Err("RTAS is not instantiated");
    }
    // The first result is the status; `rets` takes the rest.
    let nret = 1 + rets.len();
    if args.len() + nret > MAX_CELLS {
        return Err("too many RTAS arguments");
    }
    let cells = &mut state.args.0;
    cells.fill(0);
    cells[0] = token.to_be();
    cells[1] = (args.len() as u32).to_be();
    cells[2] = (nret as u32).to_be();
    for (slot, arg) in cells[3..].iter_mut().zip(args) {
        *slot = arg.to_be();
    }
    let buffer = boot::of::to_cell(cells.as_mut_ptr() as usize) as u64;
    // SAFETY: entry/base come from instantiate-rtas; the buffer is in the
    // kernel image (below 4 GiB, identity-mapped in real mode) and exclusively
    // ours under the lock; firmware_call_be32 switches to the big-endian
    // 32-bit real-mode environment RTAS expects.
    unsafe { super::realmode::firmware_call_be32(state.entry, buffer, state.base) };
    let results = &state.args.0[3 + args.len()..3 + args.len() + nret];
    for (ret, cell) in rets.iter_mut().zip(&results[1..]) {
        *ret = u32::from_be(*cell);
    }
    Ok(u32::from_be(results[0]) as i32)
}

/// Powers the machine off (PAPR `power-off`, power-on masks all ones as
/// Linux passes). Returns only if RTAS refused or is not there.
pub fn power_off() -> Result<i32, &'static str> {
    let token = POWER_OFF_TOKEN.load(Ordering::Relaxed);
    if token == u64::MAX {
        return Err("no power-off token");
    }
    // On the fatal path the lock may be held by the CPU that died inside RTAS.
    let mut state = match RTAS.try_lock() {
        Some(state) => state,
        None => {
            // SAFETY: only reached when powering off after a fatal error; the
            // holder will never release it, and RTAS is re-entered from the start.
            unsafe { RTAS.force_unlock() };
            RTAS.lock()
        }
    };
    call_locked(&mut state, token as u32, &[u32::MAX, u32::MAX], &mut [])
}
