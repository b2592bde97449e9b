//! /etc/passwd entries (pure parsing): `name:password:uid:gid:gecos:home:shell`. Comment
//! lines and lines without a numeric uid and gid are skipped. Used for a process's HOME
//! (privileges.rs) and for names and default groups of pods (podrun-pod's UserDb).

/// One passwd line's fields that podrun uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    pub name: &'a str,
    pub uid: u32,
    pub gid: u32,
    /// Empty when the line has none.
    pub home: &'a str,
}

/// The entries of a passwd text, in file order.
pub fn entries(text: &str) -> impl Iterator<Item = Entry<'_>> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            let _password = f.next()?;
            let uid = f.next()?.parse().ok()?;
            let gid = f.next()?.parse().ok()?;
            let home = f.nth(1).unwrap_or("");
            Some(Entry {
                name,
                uid,
                gid,
                home,
            })
        })
}

/// The home directory of `uid`: that of the first entry with that uid whose home is not
/// empty.
pub fn home_of(text: &str, uid: u32) -> Option<&str> {
    entries(text)
        .filter(|e| e.uid == uid && !e.home.is_empty())
        .map(|e| e.home)
        .next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn home_from_passwd() {
        let p = "root:x:0:0:root:/root:/bin/sh\n\
                 # comment\n\
                 bad line\n\
                 nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n\
                 nohome:x:7:7:::/bin/sh\n\
                 app:x:1000:1000::/home/app:/bin/sh\n";
        assert_eq!(home_of(p, 0), Some("/root"));
        assert_eq!(home_of(p, 1000), Some("/home/app"));
        assert_eq!(home_of(p, 65534), Some("/nonexistent"));
        assert_eq!(home_of(p, 7), None);
        assert_eq!(home_of(p, 42), None);
        assert_eq!(home_of("", 0), None);
    }

    #[test]
    fn entries_skip_comments_and_malformed_lines() {
        let p = "# root\napp:x:7:8::/srv:/bin/sh\nshort:x:9\nbad:x:a:1::/:/bin/sh\nmin:x:3:4\n";
        let e: Vec<_> = entries(p).map(|e| (e.name, e.uid, e.gid, e.home)).collect();
        assert_eq!(e, [("app", 7, 8, "/srv"), ("min", 3, 4, "")]);
    }
}
