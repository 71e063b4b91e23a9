//! Where a deploy's agent comes from and how it reaches the VMs: a file ssh copies, a URL the VM
//! downloads, or a file uploaded once to Azure Blob Storage (`--agent-storage`) that each VM
//! downloads with its own short-lived read-only SAS. The agent is the portable binary or, with
//! `--agent-deb`, the Debian package; its SHA-256 is computed here and checked on the VM.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use super::super::UsageError;
use crate::{
    cli::{DeployArgs, GlobalArgs, TransportKind},
    remote::deploy::{AgentKind, AgentSource, Sha256Hex},
    storage::{self, BlobClient, StagedBlob},
    validate::storage::StorageTarget,
};

/// The portable agent of `cargo xtask dist` (it runs on glibc 2.28 or newer), looked for in the
/// directory cryptoctl runs in: the workspace's root.
const DIST_AGENT: &str = "target/dist/cryptobot-agent";

/// How long a VM's SAS stays valid after the gate timeout (the VM downloads the agent first, so
/// this covers a run-command that waits for another one to finish).
const SAS_MARGIN: Duration = Duration::from_secs(600);

/// The agent binary used when `--agent-binary` is not given: [`DIST_AGENT`], else
/// `cryptobot-agent` next to the cryptoctl executable (the two installed side by side).
fn default_agent_binary() -> Option<PathBuf> {
    let dist = PathBuf::from(DIST_AGENT);
    if dist.is_file() {
        return Some(dist);
    }
    let exe = std::env::current_exe().ok()?;
    Some(exe.parent()?.join("cryptobot-agent")).filter(|p| p.is_file())
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))
}

fn sha256(data: &[u8]) -> anyhow::Result<Sha256Hex> {
    storage::sha256_hex(data)
        .parse()
        .map_err(|e: String| anyhow::anyhow!(e))
}

fn sha256_of(path: &Path) -> anyhow::Result<Sha256Hex> {
    sha256(&read(path)?)
}

/// What carries the agent to the VMs.
#[derive(Debug, Clone)]
pub(super) enum Carry {
    /// Nothing (no agent, or the VM downloads it from `--agent-url`).
    Nothing,
    /// ssh copies this file to each VM.
    Upload(PathBuf),
    /// To upload to Blob Storage before the first VM.
    Storage {
        /// The container.
        target: StorageTarget,
        /// The file's bytes, read once: the checksum the VMs verify is of these.
        data: Arc<Vec<u8>>,
        /// Its blob name.
        blob: String,
        /// Its content type.
        content_type: &'static str,
    },
    /// Uploaded: each VM gets its own SAS.
    Staged(Arc<StagedBlob>),
}

/// The agent's file: `--agent-deb`, `--agent-binary`, else the default binary.
fn agent_file(args: &DeployArgs) -> Result<PathBuf, UsageError> {
    let (flag, given) = match (&args.agent_deb, &args.agent_binary) {
        (Some(d), _) => ("--agent-deb", Some(d)),
        (None, b) => ("--agent-binary", b.as_ref()),
    };
    match given {
        Some(p) if p.is_file() => Ok(p.clone()),
        Some(p) => Err(UsageError(format!("{flag} {}: no such file", p.display()))),
        None => default_agent_binary().ok_or_else(|| {
            UsageError(format!(
                "no agent binary: {DIST_AGENT} is not in the current directory and no \
                 cryptobot-agent is next to cryptoctl; build it with `cargo xtask dist` (in the \
                 workspace's root) or pass --agent-binary or --agent-deb"
            ))
        }),
    }
}

/// A Debian package starts as an `ar` archive whose first member is `debian-binary`.
fn check_deb(path: &Path) -> Result<(), UsageError> {
    let head = std::fs::read(path)
        .map(|d| d.into_iter().take(72).collect::<Vec<u8>>())
        .unwrap_or_default();
    if head.starts_with(b"!<arch>\n") && head[8..].starts_with(b"debian-binary") {
        Ok(())
    } else {
        Err(UsageError(format!(
            "--agent-deb {}: not a Debian package",
            path.display()
        )))
    }
}

/// The agent's source, SHA-256, kind and carrier for these options.
pub(super) fn agent_source(
    global: &GlobalArgs,
    args: &DeployArgs,
) -> anyhow::Result<(AgentSource, Option<Sha256Hex>, AgentKind, Carry)> {
    let kind = if args.agent_deb.is_some() {
        AgentKind::Deb
    } else {
        AgentKind::Binary
    };
    if args.skip_agent {
        return Ok((AgentSource::None, None, kind, Carry::Nothing));
    }
    if let Some(deb) = &args.agent_deb {
        agent_file(args)?;
        check_deb(deb)?;
    }
    if let Some(target) = &args.agent_storage {
        let data = read(&agent_file(args)?)?;
        let sha = sha256(&data)?;
        let (blob, content_type) = match kind {
            AgentKind::Deb => (
                format!("cryptobot-agent-{}.deb", sha.as_str()),
                "application/vnd.debian.binary-package",
            ),
            AgentKind::Binary => (
                format!("cryptobot-agent-{}", sha.as_str()),
                "application/octet-stream",
            ),
        };
        let url = format!(
            "{}/{}/{blob}",
            storage::account_base(&target.account),
            target.container
        );
        let carry = Carry::Storage {
            target: target.clone(),
            data: Arc::new(data),
            blob,
            content_type,
        };
        return Ok((AgentSource::Blob { url, sas: None }, Some(sha), kind, carry));
    }
    if let Some(url) = &args.agent_url {
        let sha = match (&args.agent_sha256, &args.agent_deb, &args.agent_binary) {
            (Some(s), _, _) => s.clone(),
            (None, Some(f), _) | (None, None, Some(f)) => sha256_of(f)?,
            (None, None, None) => {
                return Err(UsageError(
                    "--agent-url needs --agent-sha256 (or --agent-binary or --agent-deb to compute it)"
                        .into(),
                )
                .into());
            }
        };
        return Ok((
            AgentSource::Url(url.clone()),
            Some(sha),
            kind,
            Carry::Nothing,
        ));
    }
    if global.transport == TransportKind::Ssh {
        let path = agent_file(args)?;
        let sha = sha256_of(&path)?;
        return Ok((
            AgentSource::Uploaded("(uploaded)".into()),
            Some(sha),
            kind,
            Carry::Upload(path),
        ));
    }
    Err(UsageError(
        "run-command cannot carry the agent: give --agent-storage ACCOUNT/CONTAINER (uploaded to \
         Blob Storage, each VM downloads it with a short SAS), or --agent-url and --agent-sha256, \
         or --skip-agent"
            .into(),
    )
    .into())
}

/// How long one VM's SAS is valid.
pub(super) fn sas_lifetime(gate_timeout: Duration) -> Duration {
    gate_timeout + SAS_MARGIN
}

/// Uploads the agent of a [`Carry::Storage`] and gets the key that signs the VMs' SAS, valid for
/// `deploy_budget` (every VM's turn); any other carrier is returned as it is. Nothing on a VM
/// changes before this succeeds.
pub(super) async fn stage(
    ctx: &super::super::Ctx,
    carry: Carry,
    deploy_budget: Duration,
) -> anyhow::Result<Carry> {
    let Carry::Storage {
        target,
        data,
        blob,
        content_type,
    } = carry
    else {
        return Ok(carry);
    };
    println!(
        "uploading the agent ({} bytes) to Blob Storage: {target}/{blob}",
        data.len()
    );
    let client = BlobClient::new(ctx.http.clone(), ctx.tokens.clone(), &target.account)?;
    let staged = storage::stage(
        &client,
        &target,
        &blob,
        &data,
        content_type,
        deploy_budget + SAS_MARGIN,
    )
    .await
    .map_err(|e| {
        anyhow::anyhow!("nothing deployed: the agent could not be staged in {target}: {e}")
    })?;
    println!("uploaded; each VM downloads it with a read-only SAS for this blob (shown as ***)");
    Ok(Carry::Staged(Arc::new(staged)))
}
