//! The lab VM of benchmarks 4, 3 and 6a (agent side): one VM with the agent running every check
//! and every sink, booted once; start-up, footprint and cost growth then run on it in that order.

use super::*;

/// Runs the agent-side benchmarks that `o` asks for on one lab VM.
pub(super) fn bench_agent_vm(o: &Opts, md: &mut String) -> Result<()> {
    let lab = LabBuilder::default().vms(1).start();
    let vm = lab.vm(1).clone();
    let (_receiver, _smtp) = start_agent_with_every_sink(&vm)?;
    if o.wants("startup") {
        bench_startup(o, &vm, md)?;
    }
    if o.wants("footprint") {
        bench_footprint(o, &vm, md)?;
    }
    if o.wants("growth") {
        bench_growth(o, &vm, md)?;
    }
    drop(lab);
    Ok(())
}

/// Starts the agent in `vm` with every check and every sink on, every 10 s, and lifts its unit's
/// start limit; returns the sinks' receivers (the webhook and Application Insights one, then the
/// SMTP one), which stop when dropped.
fn start_agent_with_every_sink(vm: &Vm) -> Result<(Reaped, Reaped)> {
    vm.wait_active_state(WORKER, "active", Duration::from_secs(20));
    vm.write_file(
        "/tmp/cryptobot_heartbeat",
        format!("{}\n", epoch_us() / 1_000_000),
    );
    // Every check and every sink on, every 10 s. The sinks deliver inside the VM: a webhook
    // receiver that also answers as the Application Insights ingestion endpoint, and aiosmtpd.
    let receiver = Reaped(
        vm.command("python3")
            .args(["/usr/local/lib/cryptobot-lab/webhook-receiver.py", "9999"])
            .stdout(Stdio::null())
            .spawn()?,
    );
    let smtp = Reaped(
        vm.command("python3")
            .args(["-m", "aiosmtpd", "-n", "-l", "127.0.0.1:2525"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    let config = "[daemon]\ninterval = \"10s\"\n\
        [[alerts.webhook]]\nkind = \"generic\"\nurl = \"http://127.0.0.1:9999/hook\"\n\
        [alerts.email]\nto = [\"ops@example.com\"]\nfrom = \"agent@example.com\"\n\
        host = \"127.0.0.1\"\nport = 2525\ntls = \"none\"\n\
        [alerts.appinsights]\nconnection_string = \"InstrumentationKey=11111111-2222-3333-4444-555555555555;\
        IngestionEndpoint=http://127.0.0.1:9999/\"\ninterval = \"10s\"\n";
    start_agent(vm, config, 30);
    // the benchmark restarts the agent more often than its unit's start limit allows
    vm.write_file(
        "/etc/systemd/system/cryptobot-agent.service.d/bench.conf",
        "[Unit]\nStartLimitIntervalSec=0\n",
    );
    vm.systemctl("daemon-reload");
    Ok((receiver, smtp))
}
