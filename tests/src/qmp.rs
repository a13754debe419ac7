//! A QEMU Machine Protocol client for the one thing the harness asks of a running QEMU:
//! an NMI when a boot runs past its deadline (`inject-nmi`: on pseries and powernv a
//! system reset interrupt on every CPU, which the kernel answers with a report of each).
//!
//! QMP is JSON objects, one per line, over the socket QEMU listens on
//! (`-qmp unix:PATH,server=on,wait=off`): QEMU greets with `{"QMP": {...}}`, accepts only
//! `qmp_capabilities` until it has been sent, and answers each command with
//! `{"return": ...}` or `{"error": {"class": ..., "desc": ...}}`; events (`{"event": ...}`)
//! may come in between.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

/// An open QMP session past the handshake.
pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    deadline: Instant,
}

impl Qmp {
    /// Connects to the socket at `path` and does the handshake; the whole session, this
    /// included, must be over within `timeout` (a QEMU that stopped answering must not
    /// hold the harness up).
    pub fn connect(path: &Path, timeout: Duration) -> Result<Qmp, String> {
        let deadline = Instant::now() + timeout;
        let stream = UnixStream::connect(path)
            .map_err(|error| format!("cannot connect to the QMP socket {}: {error}", path.display()))?;
        let writer = stream.try_clone().map_err(|error| format!("QMP socket: {error}"))?;
        let mut qmp = Qmp { reader: BufReader::new(stream), writer, deadline };
        let greeting = qmp.read_message().map_err(|error| format!("no QMP greeting: {error}"))?;
        if greeting.get("QMP").is_none() {
            return Err(format!("not a QMP greeting: {greeting}"));
        }
        qmp.execute("qmp_capabilities")?;
        Ok(qmp)
    }

    /// Runs a command without arguments; `Ok` with what it returned.
    pub fn execute(&mut self, command: &str) -> Result<Value, String> {
        let request = serde_json::json!({ "execute": command });
        self.writer
            .write_all(format!("{request}\n").as_bytes())
            .map_err(|error| format!("cannot send QMP `{command}`: {error}"))?;
        loop {
            let message = self.read_message().map_err(|error| format!("no answer to QMP `{command}`: {error}"))?;
            if let Some(value) = message.get("return") {
                return Ok(value.clone());
            }
            if let Some(error) = message.get("error") {
                let field = |name| error.get(name).and_then(Value::as_str).unwrap_or("?").to_string();
                return Err(format!("QMP `{command}` failed: {} ({})", field("desc"), field("class")));
            }
            // An event, or anything else that is not the answer: read on.
        }
    }

    /// The next message, as JSON, waiting no longer than the session's deadline.
    fn read_message(&mut self) -> io::Result<Value> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "QEMU did not answer in time"));
        }
        self.reader.get_ref().set_read_timeout(Some(left))?;
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "QEMU closed the socket")),
            Ok(_) => serde_json::from_str(line.trim())
                .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, format!("`{}`: {error}", line.trim()))),
            Err(error) if matches!(error.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                Err(io::Error::new(io::ErrorKind::TimedOut, "QEMU did not answer in time"))
            }
            Err(error) => Err(error),
        }
    }
}

/// Asks the QEMU listening at `path` for an NMI (`inject-nmi`), within `timeout`.
pub fn inject_nmi(path: &Path, timeout: Duration) -> Result<(), String> {
    Qmp::connect(path, timeout)?.execute("inject-nmi").map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::thread;

    /// What QEMU 10.0.2 sent, byte for byte (a pseries boot, `-qmp unix:...`).
    const GREETING: &str = "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 2, \"minor\": 0, \"major\": 10}, \
                            \"package\": \"Debian 1:10.0.2+ds-2+deb13u1~bpo12+1\"}, \"capabilities\": [\"oob\"]}}\r\n";
    const OK: &str = "{\"return\": {}}\r\n";

    fn socket_path() -> PathBuf {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "harness-qmp-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("qmp.sock")
    }

    /// A server at a fresh socket that sends `greeting`, then answers each line it reads
    /// with the next of `answers` (or says nothing once they run out); returns the path and
    /// a handle giving back the lines it read.
    fn serve(greeting: &'static str, answers: &'static [&'static str]) -> (PathBuf, thread::JoinHandle<Vec<String>>) {
        let path = socket_path();
        let listener = UnixListener::bind(&path).unwrap();
        let handle = thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut writer = stream.try_clone().unwrap();
            writer.write_all(greeting.as_bytes()).unwrap();
            let mut received = Vec::new();
            let mut reader = BufReader::new(stream);
            for answer in answers {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                received.push(line.trim().to_string());
                writer.write_all(answer.as_bytes()).unwrap();
            }
            // Keep the connection open a moment, as QEMU does, so that a client waiting for
            // more times out instead of seeing the end of the stream.
            thread::sleep(Duration::from_millis(300));
            received
        });
        (path, handle)
    }

    fn cleanup(path: &Path) {
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn handshake_then_inject_nmi() {
        let (path, server) = serve(GREETING, &[OK, OK]);
        assert_eq!(inject_nmi(&path, Duration::from_secs(5)), Ok(()));
        let received = server.join().unwrap();
        assert_eq!(received, ["{\"execute\":\"qmp_capabilities\"}", "{\"execute\":\"inject-nmi\"}"]);
        cleanup(&path);
    }

    #[test]
    fn events_before_the_answer_are_skipped() {
        const EVENT: &str =
            "{\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}, \"event\": \"RESUME\"}\r\n{\"return\": {}}\r\n";
        let (path, server) = serve(GREETING, &[OK, EVENT]);
        assert_eq!(inject_nmi(&path, Duration::from_secs(5)), Ok(()));
        server.join().unwrap();
        cleanup(&path);
    }

    #[test]
    fn an_error_answer_is_reported() {
        const REFUSED: &str =
            "{\"error\": {\"class\": \"GenericError\", \"desc\": \"This guest does not support NMI\"}}\r\n";
        let (path, server) = serve(GREETING, &[OK, REFUSED]);
        assert_eq!(
            inject_nmi(&path, Duration::from_secs(5)),
            Err("QMP `inject-nmi` failed: This guest does not support NMI (GenericError)".into())
        );
        server.join().unwrap();
        cleanup(&path);
    }

    #[test]
    fn silence_times_out() {
        let (path, server) = serve(GREETING, &[OK]);
        let started = Instant::now();
        let error = inject_nmi(&path, Duration::from_millis(200)).unwrap_err();
        assert_eq!(error, "no answer to QMP `inject-nmi`: QEMU did not answer in time");
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
        server.join().unwrap();
        cleanup(&path);
    }

    #[test]
    fn something_else_on_the_socket_is_not_qmp() {
        let (path, server) = serve("{\"hello\": 1}\n", &[]);
        assert_eq!(inject_nmi(&path, Duration::from_secs(5)).unwrap_err(), "not a QMP greeting: {\"hello\":1}");
        server.join().unwrap();
        let (path2, server) = serve("garbage\n", &[]);
        assert!(inject_nmi(&path2, Duration::from_secs(5)).unwrap_err().starts_with("no QMP greeting: `garbage`"));
        server.join().unwrap();
        cleanup(&path);
        cleanup(&path2);
    }

    #[test]
    fn no_socket() {
        let path = socket_path();
        let error = inject_nmi(&path, Duration::from_secs(1)).unwrap_err();
        assert!(error.starts_with(&format!("cannot connect to the QMP socket {}: ", path.display())), "{error}");
        cleanup(&path);
    }
}
