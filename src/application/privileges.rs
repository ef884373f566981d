//! Dropping root: the uid and gid every thread runs as once the listeners are bound.
//!
//! Linux keeps credentials per thread; glibc's `setuid`/`setgid`/`setgroups`
//! wrappers (which `nix` calls) change them on every thread of the process at once.
//! The [`Application`](super::Application) calls [`Credentials::drop_privileges`]
//! after every bind and before any shard thread is spawned, so no shard ever runs
//! with root's privileges; the threads started later inherit the new credentials.

use std::fmt;

use nix::unistd::{self, Gid, Group, Uid, User};

/// Why the credentials could not be resolved or taken.
#[derive(Debug)]
#[non_exhaustive]
pub enum PrivilegeError {
    /// No such user.
    NoUser(String),
    /// No such group.
    NoGroup(String),
    /// Switching needs root, and this process is not root.
    NotRoot,
    /// A system call failed.
    Sys(&'static str, nix::Error),
}

impl fmt::Display for PrivilegeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrivilegeError::NoUser(u) => write!(f, "no such user: {u:?}"),
            PrivilegeError::NoGroup(g) => write!(f, "no such group: {g:?}"),
            PrivilegeError::NotRoot => {
                f.write_str("--uid and --gid need root (this process is not)")
            }
            PrivilegeError::Sys(call, e) => write!(f, "{call} failed: {e}"),
        }
    }
}

impl std::error::Error for PrivilegeError {}

/// A uid and gid to run as (Twisted's `Application(name, uid, gid)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credentials {
    /// The user id.
    pub uid: u32,
    /// The group id (the only group kept: supplementary groups are dropped).
    pub gid: u32,
}

impl Credentials {
    /// Resolves a user and an optional group, each a name or a number; without a
    /// group, the user's primary group.
    ///
    /// # Errors
    /// [`PrivilegeError::NoUser`] or [`PrivilegeError::NoGroup`].
    pub fn resolve(user: &str, group: Option<&str>) -> Result<Credentials, PrivilegeError> {
        let found = match user.parse::<u32>() {
            Ok(n) => User::from_uid(Uid::from_raw(n)),
            Err(_) => User::from_name(user),
        };
        let (uid, primary) = match found {
            Ok(Some(u)) => (u.uid.as_raw(), Some(u.gid.as_raw())),
            // A numeric uid with no passwd entry is allowed, as in twistd.
            Ok(None) | Err(_) => match user.parse::<u32>() {
                Ok(n) => (n, None),
                Err(_) => return Err(PrivilegeError::NoUser(user.to_string())),
            },
        };
        let gid = match group {
            Some(g) => Self::resolve_group(g)?,
            None => primary
                .ok_or_else(|| PrivilegeError::NoGroup(format!("(primary group of uid {uid})")))?,
        };
        Ok(Credentials { uid, gid })
    }

    /// Resolves a group name or number.
    ///
    /// # Errors
    /// [`PrivilegeError::NoGroup`].
    pub fn resolve_group(group: &str) -> Result<u32, PrivilegeError> {
        if let Ok(n) = group.parse::<u32>() {
            return Ok(n);
        }
        match Group::from_name(group) {
            Ok(Some(g)) => Ok(g.gid.as_raw()),
            _ => Err(PrivilegeError::NoGroup(group.to_string())),
        }
    }

    /// Tells whether switching is possible: root can switch to anything, anyone
    /// else only to what it already is.
    ///
    /// # Errors
    /// [`PrivilegeError::NotRoot`].
    pub fn check_possible(&self) -> Result<(), PrivilegeError> {
        if unistd::geteuid().is_root()
            || (unistd::getuid().as_raw() == self.uid && unistd::getgid().as_raw() == self.gid)
        {
            Ok(())
        } else {
            Err(PrivilegeError::NotRoot)
        }
    }

    /// Switches every thread of the process to these credentials: supplementary
    /// groups dropped, then the gid, then the uid (real, effective and saved), and
    /// checks that root cannot be taken back.
    ///
    /// # Errors
    /// [`PrivilegeError::Sys`] naming the call that failed.
    pub fn drop_privileges(&self) -> Result<(), PrivilegeError> {
        let (uid, gid) = (Uid::from_raw(self.uid), Gid::from_raw(self.gid));
        if unistd::geteuid().is_root() {
            unistd::setgroups(&[gid]).map_err(|e| PrivilegeError::Sys("setgroups", e))?;
        }
        unistd::setgid(gid).map_err(|e| PrivilegeError::Sys("setgid", e))?;
        unistd::setuid(uid).map_err(|e| PrivilegeError::Sys("setuid", e))?;
        if !uid.is_root() && unistd::setuid(Uid::from_raw(0)).is_ok() {
            return Err(PrivilegeError::Sys("setuid", nix::Error::EPERM));
        }
        Ok(())
    }
}
