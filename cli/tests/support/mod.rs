//! Running the `sunrise` command built for these tests, in a clean
//! environment (no device, plugin path or ISA cap from the caller's).

#![allow(dead_code, reason = "each test binary uses a subset of these helpers")]

use std::process::{Command, Output};

/// Runs `sunrise args` with `env` added to a cleaned environment.
pub fn sunrise(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sunrise"));
    cmd.args(args)
        .env_remove("SUNRISE_DEVICE")
        .env_remove("SUNRISE_BACKEND_PATH")
        .env_remove("SUNRISE_CPU_ISA")
        .env("SUNRISE_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run sunrise")
}

/// Standard output.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Standard output, then standard error.
pub fn text(o: &Output) -> String {
    format!("{}{}", stdout(o), String::from_utf8_lossy(&o.stderr))
}
