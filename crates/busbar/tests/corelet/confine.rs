//! Confinement: an untrusted handler denied files outside its allowed paths, and an environment
//! cleared to an allow-list.

use std::fs;
use std::path::{Path, PathBuf};

use busbar::AllowedPaths;
use serde_json::{json, Value};

use super::{bus, config, corelet, run};

/// Set in the parent by `main` before any thread starts; a confined child must not see it.
pub(crate) const SECRET_VAR: &str = "CONFINE_TEST_SECRET";
/// Set in the parent by `main` too, and on the allow-list.
pub(crate) const KEPT_VAR: &str = "CONFINE_TEST_KEPT";

/// The same untrusted handler, unconfined and then confined: unconfined it reads both files and
/// sees both variables; confined it reads the file inside its allowed directory, is denied the
/// one outside (`PermissionDenied`), and sees only the allowed variable.
///
/// Where the kernel has no landlock, strict confinement must refuse to serve instead: the event
/// fails with the child's start error (exit code 77) rather than run unconfined.
pub(crate) fn confinement() {
    let root = scratch_dir();
    let inside = root.join("inside");
    fs::create_dir_all(&inside).expect("create the allowed directory");
    fs::write(inside.join("allowed.txt"), "inside").expect("write the allowed file");
    let outside = root.join("outside.txt");
    fs::write(&outside, "outside").expect("write the forbidden file");
    let probe = json!({
        "read": [inside.join("allowed.txt"), outside],
        "env": [SECRET_VAR, KEPT_VAR, "BUSBAR_CORELET_FD"],
    });

    let open = bus(config());
    let seen = probe_with(&open, &probe);
    assert_eq!(seen["read"], json!(["ok: inside", "ok: outside"]), "unconfined: {seen}");
    assert_eq!(seen["env"], json!(["secret", "kept", null]), "unconfined: {seen}");
    open.shutdown();

    let mut confined_config = config();
    let mut allowed = AllowedPaths::default();
    allowed.read_only.push(inside.clone());
    confined_config.allowed_paths = Some(allowed);
    confined_config.env_allow = Some(vec![KEPT_VAR.to_owned()]);
    let confined = bus(confined_config);
    if landlock_enabled() {
        let seen = probe_with(&confined, &probe);
        assert_eq!(seen["read"], json!(["ok: inside", "denied: PermissionDenied"]), "confined: {seen}");
        assert_eq!(seen["env"], json!([null, "kept", null]), "confined: {seen}");
    } else {
        println!("landlock is not enabled in this kernel: checking that strict confinement refuses");
        let result = run(&confined, corelet("confined").with_data(probe.clone()));
        let message = result.error_message.unwrap_or_default();
        assert!(!result.success && message.contains("code 77"), "{message:?} should name exit code 77");
    }
    confined.shutdown();

    // Strict (the default) and a rule that cannot be enforced: no child serves unconfined.
    let mut strict_config = config();
    let mut missing = AllowedPaths::default();
    missing.read_only.push(root.join("missing"));
    strict_config.allowed_paths = Some(missing);
    let strict = bus(strict_config);
    let result = run(&strict, corelet("confined").with_data(probe));
    assert!(!result.success, "{result:?}");
    let message = result.error_message.unwrap_or_default();
    assert!(message.contains("code 77"), "{message:?} should name exit code 77");
    strict.shutdown();
    let _ = fs::remove_dir_all(&root);
}

/// Runs the `confined` handler on `probe` in a corelet and returns what it saw.
fn probe_with(bus: &busbar::EventBus, probe: &Value) -> Value {
    let result = run(bus, corelet("confined").with_data(probe.clone()));
    assert!(result.success, "{result:?}");
    assert_ne!(result.data["pid"], json!(std::process::id()), "ran in another process");
    result.data
}

/// The handler: reads each file of `data["read"]` and each variable of `data["env"]`.
pub(crate) fn confined(ctx: &busbar::EventContext) -> busbar::HandlerResult {
    let data = ctx.event().data();
    let list = |key: &str| data[key].as_array().cloned().unwrap_or_default();
    let read: Vec<String> = list("read")
        .iter()
        .map(|path| match fs::read_to_string(Path::new(path.as_str().unwrap_or_default())) {
            Ok(text) => format!("ok: {text}"),
            Err(error) => format!("denied: {:?}", error.kind()),
        })
        .collect();
    let env: Vec<Option<String>> =
        list("env").iter().map(|name| std::env::var(name.as_str().unwrap_or_default()).ok()).collect();
    Ok(busbar::EventResult::success_with(json!({"pid": std::process::id(), "read": read, "env": env})))
}

/// Returns `true` if the running kernel has landlock enabled: asks it for its landlock ABI
/// version (securityfs, which lists the active modules, is often not mounted in containers).
fn landlock_enabled() -> bool {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: with a null attribute pointer, size 0 and the VERSION flag the call reads and
    // writes no memory; it returns the ABI version or fails with ENOSYS/EOPNOTSUPP.
    let abi = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    // The child enforces the rights of ABI 3 (Linux 6.2).
    abi >= 3
}

/// A fresh directory of this process under the system's temporary directory.
fn scratch_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("busbar-confine-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("create a scratch directory");
    dir
}
