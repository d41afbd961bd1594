//! User names by uid, from `/etc/passwd` (read once; a probe in a
//! container sees the host's file only when it is mounted).

use std::collections::HashMap;
use std::path::Path;

/// uid → user name.
#[derive(Clone, Debug, Default)]
pub struct Users {
    names: HashMap<u32, String>,
}

impl Users {
    /// Reads a passwd file; a missing or unreadable one gives no names.
    pub fn load(path: &Path) -> Users {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        Users::parse(&text)
    }

    /// Parses passwd lines (`name:x:uid:gid:…`).
    pub fn parse(text: &str) -> Users {
        let names = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let mut f = l.split(':');
                let name = f.next()?;
                let uid = f.nth(1)?.parse().ok()?;
                Some((uid, name.to_string()))
            })
            .collect();
        Users { names }
    }

    /// The name of a uid.
    pub fn name(&self, uid: u32) -> Option<&str> {
        self.names.get(&uid).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_passwd() {
        let u =
            super::Users::parse("root:x:0:0:root:/root:/bin/bash\n# c\nbad\nwww:x:33:33::/var/www:/usr/sbin/nologin\n");
        assert_eq!(u.name(0), Some("root"));
        assert_eq!(u.name(33), Some("www"));
        assert_eq!(u.name(1), None);
    }
}
