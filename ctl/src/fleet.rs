//! The fleet: which VMs a selection means (resource groups, names, tags, or all, with paging), from
//! Resource Manager's lists or from one Resource Graph query across subscriptions ([`inventory`]),
//! and running one task per VM at bounded concurrency with a per-VM timeout, a progress bar on a
//! terminal, and Ctrl-C returning what finished.

use std::{
    collections::BTreeSet,
    future::Future,
    io::IsTerminal as _,
    time::{Duration, Instant},
};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::task::JoinSet;

use crate::{
    arm::{
        ArmClient, VirtualMachine,
        resource_graph::{GraphScope, GraphVm, vm_query},
    },
    cli::Selection,
    limiter::Limiter,
    validate::{InvalidValue, SubscriptionId, telemetry::ManagementGroupName},
};

/// Time allowed for listing VMs.
const LIST_TIMEOUT: Duration = Duration::from_secs(300);

/// A selection that named something that is not there, or a listing that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    /// The VM name, or `-` for a whole resource group.
    pub vm: String,
    /// The resource group, or `-`.
    pub resource_group: String,
    /// `not-found` or `arm`.
    pub kind: &'static str,
    /// For people.
    pub message: String,
}

/// What a selection resolved to.
#[derive(Debug, Default)]
pub struct Resolved {
    /// The VMs, sorted by resource group then name.
    pub vms: Vec<VirtualMachine>,
    /// What could not be found or listed.
    pub missing: Vec<Missing>,
}

/// Lists the VMs of a selection.
pub async fn resolve(arm: &ArmClient, subscription: &SubscriptionId, sel: &Selection) -> Resolved {
    let deadline = Instant::now() + LIST_TIMEOUT;
    let mut out = Resolved::default();
    let mut found: Vec<VirtualMachine> = Vec::new();
    if sel.all || sel.resource_groups.is_empty() {
        match arm.list_all_vms(subscription.as_str(), deadline).await {
            Ok(v) => found.extend(v),
            Err(e) => out.missing.push(Missing {
                vm: "-".into(),
                resource_group: "-".into(),
                kind: "arm",
                message: format!("cannot list the subscription's VMs: {e}"),
            }),
        }
    } else {
        for rg in &sel.resource_groups {
            match arm
                .list_vms(subscription.as_str(), rg.as_str(), deadline)
                .await
            {
                Ok(v) => found.extend(v),
                Err(e) => out.missing.push(Missing {
                    vm: "-".into(),
                    resource_group: rg.to_string(),
                    kind: "arm",
                    message: format!("cannot list resource group {rg}: {e}"),
                }),
            }
        }
    }
    let mut seen = BTreeSet::new();
    found.retain(|vm| seen.insert(vm.id.to_ascii_lowercase()));
    if !sel.all && !sel.resource_groups.is_empty() {
        // the listing is per group already; keep only what the groups named (case-insensitively)
        found.retain(|vm| {
            sel.resource_groups
                .iter()
                .any(|rg| rg.as_str().eq_ignore_ascii_case(&vm.resource_group()))
        });
    }
    if !sel.vm_names.is_empty() {
        found.retain(|vm| {
            sel.vm_names
                .iter()
                .any(|n| n.as_str().eq_ignore_ascii_case(&vm.name))
        });
        for n in &sel.vm_names {
            if !found
                .iter()
                .any(|vm| vm.name.eq_ignore_ascii_case(n.as_str()))
            {
                let rgs: Vec<String> = sel.resource_groups.iter().map(|r| r.to_string()).collect();
                let failed_listing = !out.missing.is_empty();
                if failed_listing {
                    continue;
                }
                out.missing.push(Missing {
                    vm: n.to_string(),
                    resource_group: if rgs.len() == 1 {
                        rgs[0].clone()
                    } else {
                        "-".into()
                    },
                    kind: "not-found",
                    message: if rgs.is_empty() {
                        format!("VM {n} not found in the subscription")
                    } else {
                        format!("VM {n} not found in resource group {}", rgs.join(", "))
                    },
                });
            }
        }
    }
    found.retain(|vm| {
        let tags = vm.tag_map();
        sel.tags.iter().all(|t| t.matches(&tags))
    });
    found.sort_by_key(|vm| {
        (
            vm.resource_group().to_ascii_lowercase(),
            vm.name.to_ascii_lowercase(),
        )
    });
    out.vms = found;
    out
}

/// What a selection resolved to through Resource Graph.
#[derive(Debug, Default)]
pub struct Inventory {
    /// The VMs with their power state, sorted by resource group, name, then subscription.
    pub vms: Vec<GraphVm>,
    /// What could not be found or listed (an incomplete answer included).
    pub missing: Vec<Missing>,
    /// Resource Graph requests sent.
    pub pages: usize,
    /// Rows that were not a usable VM (no id or name).
    pub malformed: usize,
}

/// The Resource Graph scope: the management groups when given (`--subscription` then plays no
/// part), else every `--subscription` (validated, without repeats), else `default`.
pub fn graph_scope(
    subscriptions: &[String],
    default: Option<&SubscriptionId>,
    management_groups: &[ManagementGroupName],
) -> Result<GraphScope, InvalidValue> {
    let mut subs: Vec<String> = Vec::new();
    for s in subscriptions {
        let id: SubscriptionId = s.parse()?;
        if !subs.contains(&id.to_string()) {
            subs.push(id.to_string());
        }
    }
    if !management_groups.is_empty() {
        subs.clear();
    } else if subs.is_empty()
        && let Some(d) = default
    {
        subs.push(d.to_string());
    }
    Ok(GraphScope {
        subscriptions: subs,
        management_groups: management_groups.iter().map(|m| m.to_string()).collect(),
    })
}

/// Lists the VMs of a selection with one Resource Graph query over `scope`: resource groups and
/// names are filtered by the query (case-insensitively, as ARM compares them), tags here (only
/// ever compared, never sent).
pub async fn inventory(arm: &ArmClient, scope: &GraphScope, sel: &Selection) -> Inventory {
    let deadline = Instant::now() + LIST_TIMEOUT;
    let rgs: Vec<&str> = if sel.all {
        Vec::new()
    } else {
        sel.resource_groups.iter().map(|r| r.as_str()).collect()
    };
    let names: Vec<&str> = sel.vm_names.iter().map(|n| n.as_str()).collect();
    let mut out = Inventory::default();
    let answer = match arm
        .resource_graph(scope, &vm_query(&rgs, &names), deadline)
        .await
    {
        Ok(a) => a,
        Err(e) => {
            out.missing.push(Missing {
                vm: "-".into(),
                resource_group: "-".into(),
                kind: "arm",
                message: format!("cannot list the VMs through Resource Graph: {e}"),
            });
            return out;
        }
    };
    out.pages = answer.pages;
    let mut seen = BTreeSet::new();
    for row in &answer.rows {
        match GraphVm::from_row(row) {
            Some(g) if seen.insert(g.vm.id.to_ascii_lowercase()) => out.vms.push(g),
            Some(_) => {}
            None => out.malformed += 1,
        }
    }
    for message in answer.incomplete {
        out.missing.push(Missing {
            vm: "-".into(),
            resource_group: "-".into(),
            kind: "arm",
            message,
        });
    }
    let complete = out.missing.is_empty();
    if complete && names.is_empty() {
        for rg in &rgs {
            if !out
                .vms
                .iter()
                .any(|g| g.vm.resource_group().eq_ignore_ascii_case(rg))
            {
                out.missing.push(Missing {
                    vm: "-".into(),
                    resource_group: (*rg).to_owned(),
                    kind: "not-found",
                    message: format!("no VM in resource group {rg}"),
                });
            }
        }
    }
    if complete {
        for n in &names {
            if !out.vms.iter().any(|g| g.vm.name.eq_ignore_ascii_case(n)) {
                out.missing.push(Missing {
                    vm: (*n).to_owned(),
                    resource_group: if rgs.len() == 1 {
                        rgs[0].to_owned()
                    } else {
                        "-".into()
                    },
                    kind: "not-found",
                    message: if rgs.is_empty() {
                        format!("VM {n} not found in the subscriptions queried")
                    } else {
                        format!("VM {n} not found in resource group {}", rgs.join(", "))
                    },
                });
            }
        }
    }
    out.vms.retain(|g| {
        let tags = g.vm.tag_map();
        sel.tags.iter().all(|t| t.matches(&tags))
    });
    out.vms.sort_by_key(|g| {
        (
            g.vm.resource_group().to_ascii_lowercase(),
            g.vm.name.to_ascii_lowercase(),
            g.subscription.to_ascii_lowercase(),
        )
    });
    out
}

/// Per-VM results of a fan-out.
#[derive(Debug)]
pub struct FanOut<R> {
    /// Finished results, in the order of the VMs.
    pub results: Vec<R>,
    /// Ctrl-C stopped the run; `results` holds only what finished.
    pub interrupted: bool,
    /// How many VMs there were.
    pub total: usize,
}

/// Runs `task` for every VM, at most `limiter`'s limit at once, each within `timeout`
/// (`on_timeout` makes its result then).
pub async fn for_each<R, F, Fut, T>(
    vms: &[VirtualMachine],
    limiter: &Limiter,
    timeout: Duration,
    task: F,
    on_timeout: T,
) -> FanOut<R>
where
    R: Send + 'static,
    F: Fn(VirtualMachine, Instant) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = R> + Send + 'static,
    T: Fn(&VirtualMachine, Duration) -> R + Clone + Send + 'static,
{
    let progress = progress_bar(vms.len());
    let mut set = JoinSet::new();
    for (i, vm) in vms.iter().cloned().enumerate() {
        let limiter = limiter.clone();
        let progress = progress.clone();
        let task = task.clone();
        let on_timeout = on_timeout.clone();
        set.spawn(async move {
            let _permit = limiter.acquire().await;
            progress.set_message(vm.name.clone());
            let deadline = Instant::now() + timeout;
            let r = match tokio::time::timeout(timeout, task(vm.clone(), deadline)).await {
                Ok(r) => r,
                Err(_) => on_timeout(&vm, timeout),
            };
            progress.inc(1);
            (i, r)
        });
    }
    let mut slots: Vec<Option<R>> = (0..vms.len()).map(|_| None).collect();
    let mut interrupted = false;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            next = set.join_next() => match next {
                Some(Ok((i, r))) => slots[i] = Some(r),
                Some(Err(e)) => tracing::error!("a VM task failed: {e}"),
                None => break,
            },
            _ = &mut ctrl_c => {
                interrupted = true;
                set.abort_all();
                break;
            }
        }
    }
    progress.finish_and_clear();
    FanOut {
        results: slots.into_iter().flatten().collect(),
        interrupted,
        total: vms.len(),
    }
}

fn progress_bar(n: usize) -> ProgressBar {
    if std::io::stderr().is_terminal() {
        let pb = ProgressBar::with_draw_target(Some(n as u64), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template("{bar:30} {pos}/{len} VMs {elapsed} {msg}")
        {
            pb.set_style(style);
        }
        pb
    } else {
        ProgressBar::hidden()
    }
}

/// Milliseconds since `start`.
pub fn elapsed_ms(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}
