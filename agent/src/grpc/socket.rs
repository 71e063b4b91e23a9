//! The agent's unix socket: created with mode 0660 and the configured group, so that the file's
//! permissions decide who may use the full API.

use std::{
    io,
    os::unix::fs::{FileTypeExt, PermissionsExt},
    path::Path,
};

use tokio::net::UnixListener;

/// The group database consulted for `grpc.socket_group`.
pub const GROUP_FILE: &str = "/etc/group";

/// File mode of the socket: owner and group may connect, nobody else.
pub const SOCKET_MODE: u32 = 0o660;

/// Binds the unix socket at `path`: creates the parent directory, removes a stale socket left by
/// a previous run (but not a live one, nor any other kind of file), binds, sets mode 0660 and, with
/// `group`, gives the socket to that group (a name from `/etc/group`, or a numeric gid).
/// Must be called within a Tokio runtime.
pub fn bind_unix(path: &Path, group: Option<&str>) -> io::Result<UnixListener> {
    let gid = group.map(lookup_group).transpose()?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| with_path(&e, "cannot create", parent))?;
    }
    remove_stale(path)?;
    let listener = UnixListener::bind(path).map_err(|e| with_path(&e, "cannot bind", path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(SOCKET_MODE))
        .map_err(|e| with_path(&e, "cannot set the mode of", path))?;
    if let Some(gid) = gid {
        std::os::unix::fs::chown(path, None, Some(gid))
            .map_err(|e| with_path(&e, &format!("cannot give group {gid}"), path))?;
    }
    Ok(listener)
}

fn with_path(e: &io::Error, what: &str, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

/// Removes a socket nobody listens on any more; refuses to touch a live socket or another file.
fn remove_stale(path: &Path) -> io::Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(with_path(&e, "cannot inspect", path)),
    };
    if !meta.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a socket", path.display()),
        ));
    }
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("{} is in use by a running process", path.display()),
        ));
    }
    std::fs::remove_file(path).map_err(|e| with_path(&e, "cannot remove the stale socket", path))
}

/// The gid of a group named in [`GROUP_FILE`], or of a numeric gid; an unknown name is an error
/// that names it.
pub fn lookup_group(name: &str) -> io::Result<u32> {
    let text = std::fs::read_to_string(GROUP_FILE)
        .map_err(|e| with_path(&e, "cannot read", Path::new(GROUP_FILE)))?;
    parse_group_gid(&text, name)
        .or_else(|| name.parse().ok())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("unknown group {name:?} (not in {GROUP_FILE})"),
            )
        })
}

/// The gid of `name` in the text of a group file (`name:password:gid:members` per line; blank
/// lines, comments and malformed lines are skipped).
pub fn parse_group_gid(text: &str, name: &str) -> Option<u32> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .find_map(|line| {
            let mut fields = line.split(':');
            let group = fields.next()?;
            let _password = fields.next()?;
            let gid = fields.next()?.trim().parse().ok()?;
            (group == name).then_some(gid)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    const GROUPS: &str = "root:x:0:\n\
        # a comment\n\
        \n\
        daemon:x:1:\n\
        broken line\n\
        bad:x:notanumber:\n\
        cryptobot:x:998:alice,bob\n\
        cryptobot-ops:x:1001:\n";

    #[test]
    fn group_file_parser() {
        assert_eq!(parse_group_gid(GROUPS, "root"), Some(0));
        assert_eq!(parse_group_gid(GROUPS, "cryptobot"), Some(998));
        assert_eq!(parse_group_gid(GROUPS, "cryptobot-ops"), Some(1001));
        assert_eq!(parse_group_gid(GROUPS, "crypto"), None);
        assert_eq!(parse_group_gid(GROUPS, "bad"), None);
        assert_eq!(parse_group_gid(GROUPS, "broken line"), None);
        assert_eq!(parse_group_gid(GROUPS, "# a comment"), None);
        assert_eq!(parse_group_gid("", "root"), None);
    }

    #[test]
    fn unknown_group_is_named() {
        let e = lookup_group("no-such-group-cryptobot").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(e.to_string().contains("no-such-group-cryptobot"), "{e}");
    }

    #[tokio::test]
    async fn socket_has_mode_0660_and_parent_is_created() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run").join("agent.sock");
        let _listener = bind_unix(&path, None).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.permissions().mode() & 0o7777, 0o660);
    }

    #[tokio::test]
    async fn socket_gets_the_group() {
        let dir = tempfile::tempdir().unwrap();
        let probe = dir.path().join("probe");
        std::fs::write(&probe, "").unwrap();
        let own = std::fs::metadata(&probe).unwrap();
        let groups = std::fs::read_to_string(GROUP_FILE).unwrap();
        let gid_of = |line: &str| line.split(':').nth(2).and_then(|g| g.parse::<u32>().ok());
        // As root, pick another group than our own, so that the change is visible.
        let pick = |want_other: bool| {
            groups.lines().find(|l| {
                gid_of(l).is_some_and(|g| {
                    if want_other {
                        g != own.gid()
                    } else {
                        g == own.gid()
                    }
                })
            })
        };
        let line = if own.uid() == 0 {
            pick(true)
        } else {
            pick(false)
        }
        .expect("a usable group in /etc/group");
        let name = line.split(':').next().unwrap();
        let path = dir.path().join("agent.sock");
        let _listener = bind_unix(&path, Some(name)).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().gid(),
            gid_of(line).unwrap()
        );

        let e = bind_unix(
            &dir.path().join("other.sock"),
            Some("no-such-group-cryptobot"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("no-such-group-cryptobot"), "{e}");
    }

    #[tokio::test]
    async fn stale_socket_is_replaced_but_live_socket_and_files_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.sock");
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(
            path.exists(),
            "a dropped listener leaves its socket file behind"
        );
        let listener = bind_unix(&path, None).unwrap();

        let e = bind_unix(&path, None).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse, "{e}");
        drop(listener);

        let file = dir.path().join("not-a-socket");
        std::fs::write(&file, "keep me").unwrap();
        let e = bind_unix(&file, None).unwrap_err();
        assert!(e.to_string().contains("not a socket"), "{e}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
    }
}
