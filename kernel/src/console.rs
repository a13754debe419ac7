//! The kernel console: one byte sink provided by the platform (the hvc
//! terminal on pseries), `print!`/`println!` over `core::fmt`, and log levels.
//!
//! Whole lines are written under one lock so that lines from different CPUs
//! do not interleave; the fatal-error path bypasses the lock, because the CPU
//! that died may hold it.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU8, Ordering};

use spin::{Mutex, Once};

/// Writes bytes to the console device. Must not allocate or take locks that
/// the console's callers may hold.
pub type Sink = fn(&[u8]);

fn discard(_: &[u8]) {}

/// The device, installed once at boot; output before that is discarded.
static SINK: Once<Sink> = Once::new();
static LOCK: Mutex<()> = Mutex::new(());

/// Installs the console device (once: a second call keeps the first).
pub fn set_sink(sink: Sink) {
    SINK.call_once(|| sink);
}

fn sink() -> Sink {
    SINK.get().copied().unwrap_or(discard)
}

struct SinkWriter(Sink);

impl Write for SinkWriter {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        (self.0)(text.as_bytes());
        Ok(())
    }
}

/// Formats and writes under the console lock.
pub fn write_fmt(args: fmt::Arguments<'_>) {
    let _guard = LOCK.lock();
    let _ = SinkWriter(sink()).write_fmt(args);
}

/// Formats and writes without the lock: for reports of fatal errors only.
pub fn write_fmt_unlocked(args: fmt::Arguments<'_>) {
    let _ = SinkWriter(sink()).write_fmt(args);
}

/// Message importance, numbered as Linux's printk levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Level {
    Error = 3,
    Warn = 4,
    Notice = 5,
    Info = 6,
    Debug = 7,
}

impl Level {
    pub fn tag(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Notice => "notice",
            Level::Info => "info",
            Level::Debug => "debug",
        }
    }
}

/// Messages with a level numerically below this are printed (Linux's
/// console_loglevel semantics): 7 prints everything but debug.
pub const DEFAULT_LOGLEVEL: u8 = 7;
static LOGLEVEL: AtomicU8 = AtomicU8::new(DEFAULT_LOGLEVEL);

pub fn set_loglevel(threshold: u8) {
    LOGLEVEL.store(threshold, Ordering::Relaxed);
}

pub fn loglevel() -> u8 {
    LOGLEVEL.load(Ordering::Relaxed)
}

pub fn enabled(level: Level) -> bool {
    (level as u8) < loglevel()
}

pub fn log(level: Level, args: fmt::Arguments<'_>) {
    if enabled(level) {
        write_fmt(format_args!("[{}] {}\n", level.tag(), args));
    }
}

#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::console::write_fmt(format_args!($($arg)*)) };
}

#[macro_export]
macro_rules! println {
    () => { $crate::console::write_fmt(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::console::write_fmt(format_args!("{}\n", format_args!($($arg)*))) };
}

#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => { $crate::console::log($crate::console::Level::Error, format_args!($($arg)*)) };
}

#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::console::log($crate::console::Level::Warn, format_args!($($arg)*)) };
}

#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::console::log($crate::console::Level::Info, format_args!($($arg)*)) };
}

#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => { $crate::console::log($crate::console::Level::Debug, format_args!($($arg)*)) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loglevel_threshold_follows_linux_numbering() {
        set_loglevel(5);
        assert!(enabled(Level::Error) && enabled(Level::Warn));
        assert!(!enabled(Level::Notice) && !enabled(Level::Info) && !enabled(Level::Debug));
        set_loglevel(0);
        assert!(!enabled(Level::Error));
        set_loglevel(8);
        assert!(enabled(Level::Debug));
        set_loglevel(DEFAULT_LOGLEVEL);
        assert!(enabled(Level::Info) && !enabled(Level::Debug));
    }
}
