//! Synthetic fleets: any number of VMs over any number of subscriptions, every 50 of them holding
//! one of each kind a fleet has besides the healthy ones (critical, warning, silent, deallocated,
//! telemetry without a resource id, two VMs of one name in two resource groups), with the
//! telemetry their agents would have sent, and what `health --source telemetry` should say of each.

use super::{
    super::{AzureEmulator, EmulatedVm, SUBSCRIPTION, logs},
    MANAGEMENT_GROUP, ROLE, Record, ScaleVm, Signal, vm_resource_id,
};

/// A synthetic fleet.
#[derive(Debug, Clone)]
pub struct FleetSpec {
    /// How many VMs (every kind included).
    pub vms: usize,
    /// Spread over this many subscriptions (the first is the emulator's own, where the VMs also
    /// answer Resource Manager: instance view, run-command).
    pub subscriptions: usize,
    /// VM names start with this.
    pub prefix: String,
}

impl FleetSpec {
    /// `vms` VMs in `subscriptions` subscriptions, named `fleet00000`, ….
    pub fn new(vms: usize, subscriptions: usize) -> FleetSpec {
        FleetSpec {
            vms,
            subscriptions: subscriptions.max(1),
            prefix: "fleet".into(),
        }
    }
}

/// The kinds of VM in a synthetic fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FleetKind {
    /// Running, fresh HEALTHY telemetry.
    Healthy,
    /// Running, the worker down: CRITICAL `Service is not active`.
    Critical,
    /// Running, WARNING `Disk usage high: 85%`.
    Warning,
    /// Running, its last telemetry 14 minutes old: UNKNOWN `no telemetry for 14 min`.
    Silent,
    /// Deallocated (its telemetry a day old): CRITICAL `VM is not running: VM deallocated`.
    Deallocated,
    /// Running, HEALTHY telemetry without a resource id (matched by its unique name).
    NameOnly,
    /// One of two VMs of one name in two resource groups: HEALTHY.
    TwinHealthy,
    /// The other of the two: CRITICAL.
    TwinCritical,
}

/// A VM of a synthetic fleet and what `health` should say of it.
#[derive(Debug, Clone)]
pub struct FleetVm {
    /// Resource id.
    pub id: String,
    /// Subscription.
    pub subscription: String,
    /// Resource group.
    pub resource_group: String,
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: FleetKind,
    /// The status it should get.
    pub status: &'static str,
    /// The start of the reason it should get (none when HEALTHY).
    pub reason: Option<&'static str>,
}

/// The subscription id of a synthetic fleet's subscription `i` (0 is the emulator's own).
pub fn fleet_subscription(i: usize) -> String {
    if i == 0 {
        SUBSCRIPTION.to_owned()
    } else {
        format!("00000000-0000-4000-8000-{:012x}", 0xf1ee_7000 + i)
    }
}

fn kind_of(i: usize) -> FleetKind {
    match i % 50 {
        7 => FleetKind::Critical,
        13 => FleetKind::Warning,
        21 => FleetKind::Silent,
        29 => FleetKind::Deallocated,
        37 => FleetKind::NameOnly,
        43 => FleetKind::TwinHealthy,
        44 => FleetKind::TwinCritical,
        _ => FleetKind::Healthy,
    }
}

fn report(
    r: &mut Vec<Record>,
    base: &Record,
    disk: f64,
    active: bool,
    status: &str,
    message: &str,
) {
    for (name, value) in [
        ("health.disk_usage", disk),
        ("health.memory_usage", 31.0),
        ("health.heartbeat_age", 4.0),
        ("health.crash_count", if active { 0.0 } else { 3.0 }),
        ("health.service_active", if active { 1.0 } else { 0.0 }),
    ] {
        r.push(Record {
            signal: Signal::Metric {
                name: name.into(),
                value,
            },
            ..base.clone()
        });
    }
    r.push(Record {
        signal: Signal::Availability {
            status: status.into(),
            service: if active { "active" } else { "failed" }.into(),
            message: message.into(),
        },
        ..base.clone()
    });
}

impl AzureEmulator {
    /// Adds a synthetic fleet (VMs, their power states and their telemetry as of now) and
    /// returns what `health --source telemetry` should say of each VM. Every 50 VMs hold one of
    /// each unhealthy kind; a few telemetry sources belong to no VM at all, some items come from
    /// another role, and some VMs have an older, different result that must not win.
    pub fn add_fleet(&self, spec: &FleetSpec) -> Vec<FleetVm> {
        let now = logs::now_ms();
        let mut out = Vec::with_capacity(spec.vms);
        let mut records = Vec::with_capacity(spec.vms * 6);
        let mut own = Vec::new();
        let mut extra = Vec::new();
        for i in 0..spec.vms {
            let s = i % spec.subscriptions;
            let subscription = fleet_subscription(s);
            let kind = kind_of(i);
            let (rg, name) = match kind {
                FleetKind::TwinHealthy => (
                    format!("{}-twins-a", spec.prefix),
                    format!("{}-twin{i:05}", spec.prefix),
                ),
                FleetKind::TwinCritical => (
                    format!("{}-twins-b", spec.prefix),
                    format!("{}-twin{:05}", spec.prefix, i - 1),
                ),
                _ => (
                    format!("{}-rg-{:02}", spec.prefix, (i / spec.subscriptions) % 7),
                    format!("{}{i:05}", spec.prefix),
                ),
            };
            // twins share a subscription, so that only the resource group tells them apart
            let subscription = if kind == FleetKind::TwinCritical {
                fleet_subscription((i - 1) % spec.subscriptions)
            } else {
                subscription
            };
            let id = vm_resource_id(&subscription, &rg, &name);
            let power = if kind == FleetKind::Deallocated {
                "deallocated"
            } else {
                "running"
            };
            let vm = EmulatedVm::synthetic(&name, &rg)
                .power(power)
                .tag("fleet", &spec.prefix);
            if subscription == SUBSCRIPTION {
                own.push(vm);
            } else {
                extra.push(ScaleVm {
                    subscription: subscription.clone(),
                    vm,
                });
            }
            let age_ms = match kind {
                FleetKind::Silent => 14 * 60_000 + 10_000,
                FleetKind::Deallocated => 86_400_000,
                _ => 30_000 + (i as i64 % 60) * 1000,
            };
            let base = Record {
                time_ms: now - age_ms,
                role: ROLE.into(),
                instance: name.clone(),
                // IMDS ids in another case than ARM's, as they may be
                resource_id: (kind != FleetKind::NameOnly).then(|| {
                    if i % 2 == 0 {
                        id.to_ascii_lowercase()
                    } else {
                        id.clone()
                    }
                }),
                signal: Signal::Metric {
                    name: String::new(),
                    value: 0.0,
                },
            };
            let (status, reason) = match kind {
                FleetKind::Critical | FleetKind::TwinCritical => {
                    report(
                        &mut records,
                        &base,
                        40.0,
                        false,
                        "CRITICAL",
                        "Service is not active",
                    );
                    ("CRITICAL", Some("Service is not active"))
                }
                FleetKind::Warning => {
                    report(
                        &mut records,
                        &base,
                        85.0,
                        true,
                        "WARNING",
                        "Disk usage high: 85%",
                    );
                    ("WARNING", Some("Disk usage high: 85%"))
                }
                FleetKind::Silent => {
                    report(&mut records, &base, 40.0, true, "HEALTHY", "HEALTHY");
                    ("UNKNOWN", Some("no telemetry for 14 min"))
                }
                FleetKind::Deallocated => {
                    report(&mut records, &base, 40.0, true, "HEALTHY", "HEALTHY");
                    ("CRITICAL", Some("VM is not running: VM deallocated"))
                }
                _ => {
                    report(
                        &mut records,
                        &base,
                        20.0 + (i % 60) as f64,
                        true,
                        "HEALTHY",
                        "HEALTHY",
                    );
                    if i % 10 == 1 {
                        // an older CRITICAL result that the newer one replaces
                        let old = Record {
                            time_ms: now - 40 * 60_000,
                            ..base.clone()
                        };
                        report(
                            &mut records,
                            &old,
                            40.0,
                            false,
                            "CRITICAL",
                            "Service is not active",
                        );
                    }
                    if i % 100 == 2 {
                        // another service on the VM sending to the same resource
                        let other = Record {
                            role: "some-other-service".into(),
                            ..base.clone()
                        };
                        report(
                            &mut records,
                            &other,
                            99.0,
                            false,
                            "CRITICAL",
                            "not the agent",
                        );
                    }
                    ("HEALTHY", None)
                }
            };
            out.push(FleetVm {
                id,
                subscription,
                resource_group: rg,
                name,
                kind,
                status,
                reason,
            });
        }
        // telemetry of VMs that Resource Graph does not list
        for g in 0..(spec.vms / 1000).max(1) {
            let name = format!("{}-ghost{g}", spec.prefix);
            let base = Record {
                time_ms: now - 20_000,
                role: ROLE.into(),
                instance: name.clone(),
                resource_id: Some(vm_resource_id(SUBSCRIPTION, "gone-rg", &name)),
                signal: Signal::Metric {
                    name: String::new(),
                    value: 0.0,
                },
            };
            report(
                &mut records,
                &base,
                50.0,
                false,
                "CRITICAL",
                "Service is not active",
            );
        }
        let subs: Vec<String> = (0..spec.subscriptions).map(fleet_subscription).collect();
        let mut s = self.state.lock().expect("state");
        s.vms.extend(own);
        let st = &mut s.fleet;
        st.extra_vms.extend(extra);
        let mg = st
            .management_groups
            .entry(MANAGEMENT_GROUP.into())
            .or_default();
        for sub in subs {
            if !mg.contains(&sub) {
                mg.push(sub);
            }
        }
        for r in records {
            st.push(r);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_in_each_fifty() {
        let kinds: std::collections::HashSet<FleetKind> = (0..50).map(kind_of).collect();
        assert_eq!(kinds.len(), 8);
    }
}
