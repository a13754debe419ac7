//! The kernel's banner line: `ppc64-kernel <version> firmware=vof cpus=2 memory=1024MiB
//! mmu=radix cmdline="selftest=mm loglevel=debug"`. Words without `=` are ignored; a value
//! may be double-quoted to hold spaces.

use crate::ktap;

pub const PREFIX: &str = "ppc64-kernel ";

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Banner {
    /// `key=value` pairs in banner order, quotes removed.
    pub fields: Vec<(String, String)>,
}

impl Banner {
    /// The first banner line on the console.
    pub fn find(console: &str) -> Option<Banner> {
        ktap::lines(console).find_map(|line| line.strip_prefix(PREFIX)).map(Banner::parse_fields)
    }

    fn parse_fields(text: &str) -> Banner {
        let mut fields = Vec::new();
        let mut rest = text;
        loop {
            rest = rest.trim_start();
            if rest.is_empty() {
                break;
            }
            let word_end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            let Some(equals) = rest[..word_end].find('=') else {
                rest = &rest[word_end..];
                continue;
            };
            let key = &rest[..equals];
            let after = &rest[equals + 1..];
            let (value, remainder) = match after.strip_prefix('"') {
                Some(quoted) => match quoted.find('"') {
                    Some(close) => (&quoted[..close], &quoted[close + 1..]),
                    None => (quoted, ""),
                },
                None => {
                    let end = after.find(char::is_whitespace).unwrap_or(after.len());
                    after.split_at(end)
                }
            };
            fields.push((key.to_string(), value.to_string()));
            rest = remainder;
        }
        Banner { fields }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields.iter().find(|(name, _)| name == key).map(|(_, value)| value.as_str())
    }

    /// `memory=` in MiB, if it has the `<N>MiB` form.
    pub fn memory_mib(&self) -> Option<u64> {
        self.get("memory")?.strip_suffix("MiB")?.parse().ok()
    }

    pub fn cpus(&self) -> Option<u32> {
        self.get("cpus")?.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_with_quoted_cmdline() {
        let console = "SLOF\r\nppc64-kernel 0.1.0 firmware=slof cpus=4 memory=2048MiB mmu=radix \
                       cmdline=\"selftest=mm,dt loglevel=debug\" extra=1\r\n";
        let banner = Banner::find(console).expect("banner");
        assert_eq!(banner.get("firmware"), Some("slof"));
        assert_eq!(banner.cpus(), Some(4));
        assert_eq!(banner.memory_mib(), Some(2048));
        assert_eq!(banner.get("mmu"), Some("radix"));
        assert_eq!(banner.get("cmdline"), Some("selftest=mm,dt loglevel=debug"));
        assert_eq!(banner.get("extra"), Some("1"));
    }

    #[test]
    fn empty_and_unterminated_quotes() {
        let banner = Banner::find("ppc64-kernel cmdline=\"\" cpus=1\n").unwrap();
        assert_eq!(banner.get("cmdline"), Some(""));
        assert_eq!(banner.cpus(), Some(1));
        let banner = Banner::find("ppc64-kernel cpus=1 cmdline=\"a b\n").unwrap();
        assert_eq!(banner.get("cmdline"), Some("a b"));
    }

    #[test]
    fn no_banner() {
        assert_eq!(Banner::find("ppc64-kernelx cpus=1\n  ppc64-kernel cpus=1\n"), None);
    }

    #[test]
    fn odd_memory_values() {
        let banner = Banner::find("ppc64-kernel memory=1G cpus=two\n").unwrap();
        assert_eq!(banner.memory_mib(), None);
        assert_eq!(banner.cpus(), None);
    }
}
