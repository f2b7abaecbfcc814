//! Confinement of a child: the environment it starts with and the files it may touch.
//!
//! The parent clears the child's environment to an allow-list at spawn (`spawn.rs`) and passes
//! the file-system rules in [`CONFINE_ENV`]. The child applies them with landlock in
//! [`apply_from_env`], right after it claimed its channel and before it greets: no request is
//! read before the rules hold.
//!
//! Why not in `pre_exec`, between fork and exec: the rules would then confine the exec itself,
//! so the binary, the dynamic loader and every library would have to be allowed too, and the
//! landlock calls allocate, which is not allowed between fork and exec. Why an environment
//! variable rather than the first frame: the child speaks first in the handshake, the rules
//! must hold before any request arrives, and the variable is removed as soon as it is read,
//! exactly like the channel's own variables.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Environment variable carrying the child's [`AllowedPaths`] as JSON; absent when unconfined.
pub(crate) const CONFINE_ENV: &str = "BUSBAR_CORELET_CONFINE";

/// Exit code of a child that cannot apply strict confinement (`EX_NOPERM` in sysexits.h).
pub(crate) const EXIT_UNCONFINED: i32 = 77;

/// The files a confined corelet may use; everything else on the file system is denied.
///
/// Enforced with Linux [landlock](https://docs.kernel.org/userspace-api/landlock.html) (file
/// access rights of ABI 3, Linux 6.2) in each child before it serves its first event, so the
/// rules bind every handler and every program a handler starts. A path names a file or a
/// directory; a directory's rule covers everything beneath it. Descriptors the child already
/// holds (its channel, stdout, stderr) keep working. Network access is not restricted.
///
/// Paths must be absolute and exist when a child starts. With `best_effort` off (the default),
/// a child that cannot enforce every rule (landlock missing or disabled, a kernel older than
/// 6.2, a path that does not exist) refuses to serve: it exits with code 77 before greeting, so
/// its events fail with a start error naming that code. With `best_effort` on, it enforces
/// what the kernel supports, skips missing paths, warns on stderr, and serves.
///
/// Warning: a confined child cannot read what it is not given, including shared libraries
/// loaded late, `/proc`, `/dev/null` or `/etc/resolv.conf`; allow what the handlers need.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct AllowedPaths {
    /// Files and directories the child may read and execute (not change).
    pub read_only: Vec<PathBuf>,
    /// Files and directories the child may read, write, create, remove and execute.
    pub read_write: Vec<PathBuf>,
    /// Serve even where the rules cannot be fully enforced (see above). Default: `false`.
    pub best_effort: bool,
}

impl AllowedPaths {
    /// Returns the first path that is not absolute, if any.
    pub(crate) fn relative_path(&self) -> Option<&PathBuf> {
        self.read_only.iter().chain(&self.read_write).find(|path| !path.is_absolute())
    }

    /// Encodes the rules for [`CONFINE_ENV`].
    pub(crate) fn to_env(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }
}

/// In a child: reads and removes [`CONFINE_ENV`] and applies its rules to this process.
///
/// Returns `Err` with the reason when the rules are strict and cannot all be enforced; the
/// caller must then not serve. Warnings of a best-effort confinement go to stderr.
///
/// Must run before the process starts threads: landlock restricts the calling thread and the
/// threads and processes it starts afterwards, and removing a variable is only sound while no
/// other thread reads the environment. `corelet_main` runs first in `main`.
pub(crate) fn apply_from_env() -> Result<(), String> {
    let Some(text) = std::env::var_os(CONFINE_ENV) else {
        return Ok(());
    };
    std::env::remove_var(CONFINE_ENV);
    let paths: AllowedPaths = text
        .to_str()
        .and_then(|text| serde_json::from_str(text).ok())
        .ok_or_else(|| format!("{CONFINE_ENV} does not hold valid rules"))?;
    match restrict(&paths) {
        Ok(()) => Ok(()),
        Err(reason) if paths.best_effort => {
            eprintln!("busbar corelet: file-system confinement is not fully enforced: {reason}");
            Ok(())
        }
        Err(reason) => Err(format!("file-system confinement cannot be enforced: {reason}")),
    }
}

/// Restricts this process to `paths`; `Err` names the first rule or feature not enforced
/// (after enforcing everything else that could be).
#[cfg(target_os = "linux")]
fn restrict(paths: &AllowedPaths) -> Result<(), String> {
    use landlock::{
        Access, AccessFs, PathBeneath, PathFd, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus, ABI,
    };

    let abi = ABI::V3;
    let mut shortfall = None;
    let mut ruleset = Ruleset::default()
        .handle_access(AccessFs::from_all(abi))
        .and_then(|ruleset| ruleset.create())
        .map_err(|error| format!("landlock: {error}"))?;
    let rules = paths
        .read_only
        .iter()
        .map(|path| (path, AccessFs::from_read(abi)))
        .chain(paths.read_write.iter().map(|path| (path, AccessFs::from_all(abi))));
    for (path, access) in rules {
        match PathFd::new(path) {
            // The crate narrows a directory-only right given for a file in best-effort mode.
            Ok(fd) => {
                ruleset = ruleset
                    .add_rule(PathBeneath::new(fd, access))
                    .map_err(|error| format!("landlock rule for {}: {error}", path.display()))?;
            }
            Err(error) => {
                shortfall.get_or_insert(format!("cannot open {}: {error}", path.display()));
            }
        }
    }
    let status = ruleset.restrict_self().map_err(|error| format!("landlock: {error}"))?;
    match status.ruleset {
        RulesetStatus::FullyEnforced => {}
        RulesetStatus::PartiallyEnforced => {
            shortfall.get_or_insert("the kernel enforces only part of landlock ABI 3 (Linux 6.2)".to_owned());
        }
        RulesetStatus::NotEnforced => {
            shortfall.get_or_insert("landlock is not supported or not enabled by this kernel".to_owned());
        }
    }
    shortfall.map_or(Ok(()), Err)
}

/// Landlock is Linux only: elsewhere, nothing can be enforced.
#[cfg(not(target_os = "linux"))]
fn restrict(_paths: &AllowedPaths) -> Result<(), String> {
    Err("landlock exists only on Linux".to_owned())
}
