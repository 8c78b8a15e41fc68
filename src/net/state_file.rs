//! The state file: written atomically (a temporary file beside it, fsync, rename, fsync of
//! the directory) with mode 0600; read at start; a file that cannot be used is kept aside
//! under another name, never overwritten.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Writes `bytes` to `path` atomically: readers see the old file or the new one, whole.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = open_temporary(path)?;
    file.write_all(bytes)?;
    commit(path, file)
}

/// The temporary file a new state is written to (beside `path`, mode 0600): whatever is at
/// its name is removed first (a symbolic link included, never followed), and it is created
/// new (`O_EXCL`), so it can neither write through a link nor inherit a looser mode.
pub fn open_temporary(path: &Path) -> io::Result<fs::File> {
    let temporary = sibling(path, "tmp");
    match fs::remove_file(&temporary) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(error),
    }
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options.open(&temporary)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
    }
    Ok(file)
}

/// Makes the temporary file written through `file` the state at `path`: fsync, rename,
/// fsync of the directory.
pub fn commit(path: &Path, file: fs::File) -> io::Result<()> {
    file.sync_all()?;
    drop(file);
    let temporary = sibling(path, "tmp");
    fs::rename(&temporary, path)?;
    // The rename itself is durable once the directory is synced.
    if let Some(directory) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(directory) = fs::File::open(directory) {
            let _ = directory.sync_all();
        }
    } else if let Ok(directory) = fs::File::open(".") {
        let _ = directory.sync_all();
    }
    Ok(())
}

/// The file's bytes, `None` if there is none.
pub fn read(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error),
    }
}

/// Moves a file that could not be used out of the way (`<path>.bad-<unix seconds>`), so the
/// next snapshot does not overwrite the evidence. Returns where it went.
pub fn set_aside(path: &Path, unix_seconds: u64) -> io::Result<PathBuf> {
    let mut aside = sibling(path, &format!("bad-{unix_seconds}"));
    // Never over an earlier one set aside in the same second.
    for n in 1..1_000u32 {
        if fs::symlink_metadata(&aside).is_err() {
            break;
        }
        aside = sibling(path, &format!("bad-{unix_seconds}-{n}"));
    }
    fs::rename(path, &aside)?;
    Ok(aside)
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".");
    name.push(suffix);
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Written whole with mode 0600, read back, set aside under another name.
    #[test]
    fn write_read_set_aside() {
        let dir = std::env::temp_dir().join(format!("tandem-state-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("state.json");
        assert_eq!(read(&path).expect("read"), None);
        write_atomic(&path, b"{\"a\":1}").expect("write");
        write_atomic(&path, b"{\"a\":2}").expect("write");
        assert_eq!(
            read(&path).expect("read").as_deref(),
            Some(&b"{\"a\":2}"[..])
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).expect("metadata").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let aside = set_aside(&path, 7).expect("aside");
        assert!(aside.ends_with("state.json.bad-7"));
        assert_eq!(read(&path).expect("read"), None);
        write_atomic(&path, b"{}").expect("write");
        let again = set_aside(&path, 7).expect("aside");
        assert!(again.ends_with("state.json.bad-7-1"), "{again:?}");
        // A link planted at the temporary name is replaced, never written through.
        #[cfg(unix)]
        {
            let precious = dir.join("precious");
            fs::write(&precious, b"keep").expect("write");
            std::os::unix::fs::symlink(&precious, dir.join("state.json.tmp")).expect("link");
            write_atomic(&path, b"{\"b\":1}").expect("write");
            assert_eq!(fs::read(&precious).expect("read"), b"keep");
            assert_eq!(
                read(&path).expect("read").as_deref(),
                Some(&b"{\"b\":1}"[..])
            );
        }
        fs::remove_dir_all(&dir).expect("cleanup");
    }
}
