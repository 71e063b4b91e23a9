//! Run-command as Resource Manager runs it: one at a time per VM (409 otherwise), `202 Accepted`
//! with `Azure-AsyncOperation` and `Location`, the script run in a lab VM (or a synthetic answer),
//! `InProgress` until done, then the result from `Location` in the Linux or Windows shape.

use axum::{
    http::{HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

use super::{
    Backend, Operation, Shared,
    routes::{API_VERSION, arm_error, json_response},
    run,
};

pub(super) fn run_command(
    state: &Shared,
    sub: &str,
    rg: &str,
    name: &str,
    body: &[u8],
) -> Response {
    let input: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return arm_error(
                StatusCode::BAD_REQUEST,
                "InvalidRequestContent",
                &e.to_string(),
            );
        }
    };
    if input["commandId"] != "RunShellScript" {
        return arm_error(
            StatusCode::BAD_REQUEST,
            "InvalidParameter",
            "The value of parameter commandId is invalid.",
        );
    }
    let script: Vec<String> = input["script"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|l| l.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let params: Vec<String> = input["parameters"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| p["value"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let mut s = state.lock().expect("state");
    let Some(vm) = s.find_vm(sub, rg, name).cloned() else {
        return arm_error(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            &format!(
                "The Resource 'Microsoft.Compute/virtualMachines/{name}' under resource group '{rg}' was not found."
            ),
        );
    };
    if vm.power != "running" {
        return arm_error(
            StatusCode::CONFLICT,
            "OperationNotAllowed",
            &format!(
                "Operation 'RunCommand' is not allowed on VM '{}' since the VM is {}.",
                vm.name, vm.power
            ),
        );
    }
    let conflict = match s.faults.conflict_next.get_mut(&vm.name) {
        Some(n) if *n > 0 => {
            *n -= 1;
            true
        }
        _ => false,
    };
    // one run-command at a time per VM (a resource id, not a name: twins are two VMs)
    let key = super::fleet::vm_resource_id(sub, rg, name).to_ascii_lowercase();
    if conflict || s.busy.contains_key(&key) {
        let mut r = arm_error(
            StatusCode::CONFLICT,
            "Conflict",
            "Run command extension execution is in progress. Please wait for completion before invoking a run command.",
        );
        if s.faults.conflict_retry_after > 0 {
            r.headers_mut().insert(
                "retry-after",
                HeaderValue::from(s.faults.conflict_retry_after),
            );
        }
        return r;
    }
    s.next_id += 1;
    let op = format!("{:08x}-5c1d-4e0f-9a2b-{:012x}", s.next_id, s.next_id);
    s.busy.insert(key.clone(), op.clone());
    s.operations.insert(
        op.clone(),
        Operation {
            vm: key,
            started: "2026-01-01T00:00:00.0000000+00:00".into(),
            result: None,
        },
    );
    s.scripts.push((vm.name.clone(), params.clone()));
    let base = s.link_base();
    let run_time = s.faults.synthetic_run_time;
    let retry_after = s.faults.poll_retry_after;
    drop(s);
    let finish = {
        let state = state.clone();
        let op = op.clone();
        move |result: Value| {
            let mut s = state.lock().expect("state");
            if let Some(o) = s.operations.get_mut(&op) {
                o.result = Some(result);
                let vm = o.vm.clone();
                s.busy.remove(&vm);
            }
        }
    };
    let shape = run::Shape::of(&vm.os_type);
    match vm.backend.clone() {
        Backend::Lab(lab_vm) => {
            tokio::task::spawn_blocking(move || {
                finish(run::in_lab_vm(&lab_vm, shape, &script, &params));
            });
        }
        Backend::Synthetic => {
            let name = vm.name.clone();
            tokio::spawn(async move {
                tokio::time::sleep(run_time).await;
                finish(run::synthetic(&name, shape, &params));
            });
        }
        Backend::Hang => {}
    }
    let op_url = format!(
        "{base}/subscriptions/{sub}/providers/Microsoft.Compute/locations/{}/operations/{op}",
        vm.location
    );
    let mut r = StatusCode::ACCEPTED.into_response();
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!("{op_url}?api-version={API_VERSION}")) {
        h.insert("azure-asyncoperation", v);
    }
    if let Ok(v) =
        HeaderValue::from_str(&format!("{op_url}?monitor=true&api-version={API_VERSION}"))
    {
        h.insert("location", v);
    }
    if retry_after > 0 {
        h.insert("retry-after", HeaderValue::from(retry_after));
    }
    r
}

pub(super) fn operation(state: &Shared, path: &str, op: &str, monitor: bool) -> Response {
    let s = state.lock().expect("state");
    let Some(o) = s.operations.get(op) else {
        return arm_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            "The operation was not found.",
        );
    };
    let retry_after = s.faults.poll_retry_after;
    let mut r = match (monitor, &o.result) {
        (true, None) => {
            let mut r = StatusCode::ACCEPTED.into_response();
            if let Ok(v) = HeaderValue::from_str(&format!(
                "{}{path}?monitor=true&api-version={API_VERSION}",
                s.link_base()
            )) {
                r.headers_mut().insert("location", v);
            }
            r
        }
        (true, Some(result)) => json_response(StatusCode::OK, result),
        (false, None) => json_response(
            StatusCode::OK,
            &json!({"startTime": o.started, "status": "InProgress", "name": op}),
        ),
        (false, Some(result)) => json_response(
            StatusCode::OK,
            &json!({"startTime": o.started, "endTime": "2026-01-01T00:00:01.0000000+00:00",
                    "status": "Succeeded", "properties": {"output": result}, "name": op}),
        ),
    };
    if retry_after > 0 && o.result.is_none() {
        r.headers_mut()
            .insert("retry-after", HeaderValue::from(retry_after));
    }
    r
}
