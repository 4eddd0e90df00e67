//! The check `cdr.path` gets at load time: could the daemon append to the
//! file? It opens nothing for writing that is not there already, so
//! `zentrale check` and a reload create no files.

use std::fs::OpenOptions;
use std::io;
use std::path::Path;

/// Whether the CDR writer's `open_append` (in `daemon`) would succeed on
/// `path`, without creating anything: an existing file is opened for appending and closed at once,
/// a missing one needs a directory zentrale may write and search. The
/// error is the one opening would give (same kind, same text), so
/// `zentrale check` reports what would stop the daemon, which creates the
/// file when it starts.
pub fn check_appendable(path: &Path) -> io::Result<()> {
    match OpenOptions::new().append(true).open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let dir = path
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            may_create_in(dir)
        }
        Err(e) => Err(e),
    }
}

/// Whether this process may create a file in `dir`: the kernel's answer
/// for the effective user (`faccessat` with `AT_EACCESS`), so a missing
/// directory, a file in the way or a read-only mount fail as `open` would.
fn may_create_in(dir: &Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let dir = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `dir` is a NUL-terminated string that lives across the call,
    // and faccessat only reads it.
    let r = unsafe {
        libc::faccessat(
            libc::AT_FDCWD,
            dir.as_ptr(),
            libc::W_OK | libc::X_OK,
            libc::AT_EACCESS,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
