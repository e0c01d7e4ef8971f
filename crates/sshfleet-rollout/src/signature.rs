//! Approval by signature: a plan signed by an approver with OpenSSH
//! (`ssh-keygen -Y sign -f KEY -n sshfleet-plan plan.json`, which writes `plan.json.sig`) is
//! checked against an `allowed_signers` file (`--plan-signers FILE`, the format of
//! ssh-keygen(1) ALLOWED SIGNERS) by the real `ssh-keygen -Y find-principals` and
//! `ssh-keygen -Y verify`, over the very bytes that are then parsed and applied.
//!
//! The plan's checksum catches an accidental edit; only a signature stops a deliberate one,
//! since whoever edits a plan can recompute its checksum but cannot sign for an approver.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The namespace a plan is signed in (`-n`): a signature made for anything else (a git
/// commit, a file of another tool) is not an approval of a plan.
pub(crate) const NAMESPACE: &str = "sshfleet-plan";

/// Longest wait for one `ssh-keygen`.
const LIMIT: Duration = Duration::from_secs(20);
/// Most of an `ssh-keygen` answer kept (a few lines).
const MAX_OUTPUT: u64 = 64 << 10;

/// The signature beside a plan: `PLAN.sig`, where `ssh-keygen -Y sign` writes it.
pub fn signature_of(plan: &Path) -> PathBuf {
    let mut name = plan.to_owned().into_os_string();
    name.push(".sig");
    PathBuf::from(name)
}

/// The principal of `signers` whose key made `signature` over `data` in `NAMESPACE`, or
/// why there is none (said in a sentence).
pub fn verify(data: &[u8], signature: &Path, signers: &Path) -> Result<String, String> {
    if !signature.is_file() {
        return Err(format!(
            "no signature {} (sign it with `ssh-keygen -Y sign -f KEY -n {NAMESPACE} PLAN`)",
            signature.display()
        ));
    }
    let sig = signature.as_os_str();
    let found = ssh_keygen(
        &[
            "-Y".as_ref(),
            "find-principals".as_ref(),
            "-s".as_ref(),
            sig,
            "-f".as_ref(),
        ],
        signers,
        None,
    )?;
    if !found.ok {
        return Err(format!(
            "its key is not in {}{}",
            signers.display(),
            said(&found.text)
        ));
    }
    let mut refusal = String::new();
    for principal in found.text.lines().map(str::trim).filter(|p| !p.is_empty()) {
        let args = [
            "-Y".as_ref(),
            "verify".as_ref(),
            "-n".as_ref(),
            NAMESPACE.as_ref(),
            "-I".as_ref(),
            principal.as_ref(),
            "-s".as_ref(),
            sig,
            "-f".as_ref(),
        ];
        let checked = ssh_keygen(&args, signers, Some(data))?;
        if checked.ok {
            return Ok(principal.to_owned());
        }
        refusal = said(&checked.text);
    }
    Err(format!(
        "the signature does not verify (another file, namespace or key){refusal}"
    ))
}

/// `: what ssh-keygen said`, on one line, when it said something.
fn said(text: &str) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.is_empty() {
        String::new()
    } else {
        format!(": ssh-keygen says {line:?}")
    }
}

struct Answer {
    ok: bool,
    /// Stdout, then stderr.
    text: String,
}

/// Runs `ssh-keygen ARGS SIGNERS` with `stdin` (or nothing) as input, for at most
/// [`LIMIT`]; `Err` when it cannot be run at all.
fn ssh_keygen(
    args: &[&std::ffi::OsStr],
    signers: &Path,
    stdin: Option<&[u8]>,
) -> Result<Answer, String> {
    let mut child = Command::new("ssh-keygen")
        .args(args)
        .arg(signers)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            format!("cannot run ssh-keygen (OpenSSH, Debian package openssh-client) to check the signature: {e}")
        })?;
    if let (Some(data), Some(mut input)) = (stdin, child.stdin.take()) {
        let data = data.to_vec();
        // Written beside the wait, so that a full pipe never blocks it.
        std::thread::spawn(move || {
            let _ = input.write_all(&data);
        });
    }
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let status = wait_bounded(&mut child)?;
    let mut text = out.join().unwrap_or_default();
    text.push_str(&err.join().unwrap_or_default());
    Ok(Answer {
        ok: status.success(),
        text,
    })
}

/// Reads a pipe to its end (at most [`MAX_OUTPUT`]) on a thread of its own.
fn drain(pipe: Option<impl std::io::Read + Send + 'static>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(pipe) = pipe {
            let _ = pipe.take(MAX_OUTPUT).read_to_string(&mut text);
        }
        text
    })
}

/// The child's exit, killed past [`LIMIT`].
fn wait_bounded(child: &mut Child) -> Result<std::process::ExitStatus, String> {
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) if started.elapsed() < LIMIT => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "ssh-keygen did not answer within {} s",
                    LIMIT.as_secs()
                ));
            }
            Err(e) => return Err(format!("waiting for ssh-keygen: {e}")),
        }
    }
}
