//! Process hygiene for a binary that holds other teams' credentials: no core dumps (a core file would
//! hold passwords, TLS keys and the ServiceAccount token, and a node's `core_pattern` may ship it off
//! the node), children that die with their parent, and no private directories left behind by an
//! earlier run that was killed.
//!
//! The second module with unsafe code (after `kafka::ffi`): three libc calls that take and return
//! plain integers.
#![allow(unsafe_code)]

use std::path::Path;

/// Turns core dumps off for this process and every process it starts (`RLIMIT_CORE` 0 is inherited),
/// and makes it non-dumpable, which also keeps other processes of the same user (kinit, a child)
/// from reading its memory through `/proc/PID/mem` or ptrace. Returns what failed, if anything.
pub fn no_core_dumps() -> Result<(), std::io::Error> {
    let zero = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: setrlimit reads the struct passed by reference and changes only this process's limit.
    if unsafe { libc::setrlimit(libc::RLIMIT_CORE, &zero) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: PR_SET_DUMPABLE takes an integer flag and touches no memory of ours.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// For a child process: be killed when the parent dies, so that a crashed operator leaves no probe
/// holding a connection's credentials. Returns false when the parent died while this was set up.
pub fn die_with_parent() -> bool {
    // SAFETY: PR_SET_PDEATHSIG takes a signal number; getppid has no arguments.
    unsafe {
        let parent = libc::getppid();
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) == 0
            && libc::getppid() == parent
    }
}

/// Removes `kconn-*` directories of this user under `dir` (the temporary directory): what an earlier
/// `kconn run` that was killed (OOM, SIGKILL) left there with keytabs in them. Call it before this
/// process writes any. Returns how many were removed.
pub fn sweep_private_dirs(dir: &Path) -> usize {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no arguments and cannot fail.
    let me = unsafe { libc::geteuid() };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("kconn-"))
        .filter(|e| {
            // symlink_metadata: a link named kconn-* is never followed.
            e.path()
                .symlink_metadata()
                .is_ok_and(|m| m.is_dir() && m.uid() == me)
        })
        .filter(|e| std::fs::remove_dir_all(e.path()).is_ok())
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_private_directories_are_swept_and_nothing_else() {
        let tmp = tempfile::tempdir().unwrap();
        let stale = tmp.path().join("kconn-abc123");
        std::fs::create_dir(&stale).unwrap();
        std::fs::write(stale.join("krb5.keytab"), b"key").unwrap();
        let other = tmp.path().join("other-dir");
        std::fs::create_dir(&other).unwrap();
        let file = tmp.path().join("kconn-file");
        std::fs::write(&file, b"x").unwrap();
        let target = tempfile::tempdir().unwrap();
        std::fs::write(target.path().join("keep"), b"x").unwrap();
        std::os::unix::fs::symlink(target.path(), tmp.path().join("kconn-link")).unwrap();

        assert_eq!(sweep_private_dirs(tmp.path()), 1);
        assert!(!stale.exists());
        assert!(other.exists() && file.exists());
        assert!(
            target.path().join("keep").exists(),
            "a link is not followed"
        );
    }
}
