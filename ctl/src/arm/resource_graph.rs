//! Azure Resource Graph (`POST /providers/Microsoft.ResourceGraph/resources`): the fleet's VMs with
//! their power state in one paged query across subscriptions, instead of a list per subscription
//! and an instance view per VM.
//!
//! * the scope is up to [`MAX_SUBSCRIPTIONS_PER_REQUEST`] subscriptions a request (more are split
//!   into several queries, as Resource Graph's guidance asks), or management groups;
//! * pages of up to 1000 rows (`options.$top`), the next one asked with the `$skipToken` of the
//!   last (same query, same scope); `resultTruncated: "true"` without a `$skipToken`, or fewer
//!   rows than `totalRecords` with no way to the rest, is reported, never silently short;
//! * the quota headers (`x-ms-user-quota-remaining`, `x-ms-user-quota-resets-after` as
//!   `hh:mm:ss`): when none is left, the next request waits for the reset instead of being
//!   throttled; a 429 is retried after its `Retry-After` by [`ArmClient::send`].

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use reqwest::Method;
use serde_json::{Map, Value, json};

use super::{
    client::{ArmClient, without_query},
    errors::ArmError,
    vms::{PowerState, VirtualMachine},
};

/// The Resource Graph api-version (stable; `objectArray` results by default, string
/// `resultTruncated`).
pub const RESOURCE_GRAPH_API_VERSION: &str = "2021-03-01";
/// Most subscriptions in one request (Resource Graph's guidance: fewer than 300).
pub const MAX_SUBSCRIPTIONS_PER_REQUEST: usize = 300;
/// Rows per page (the API's maximum).
pub const PAGE_SIZE: u32 = 1000;

/// What a query covers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GraphScope {
    /// Subscription ids.
    pub subscriptions: Vec<String>,
    /// Management group names (used instead of the subscriptions when given).
    pub management_groups: Vec<String>,
}

/// Every row of a query, with what it took.
#[derive(Debug, Clone, Default)]
pub struct GraphAnswer {
    /// The rows (column name to value).
    pub rows: Vec<Map<String, Value>>,
    /// Requests sent (pages, over every batch of subscriptions).
    pub pages: usize,
    /// Why the answer is incomplete, when it is (one message per batch that was cut short).
    pub incomplete: Vec<String>,
}

/// The quota headers of an answer: (remaining queries, time until the quota resets).
pub fn quota(headers: &reqwest::header::HeaderMap) -> Option<(u64, Duration)> {
    let get = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let remaining = get("x-ms-user-quota-remaining")?.trim().parse().ok()?;
    let resets = parse_hms(get("x-ms-user-quota-resets-after")?)?;
    Some((remaining, resets))
}

/// `hh:mm:ss` (seconds may have a fraction) as a duration.
pub fn parse_hms(text: &str) -> Option<Duration> {
    let mut parts = text.trim().split(':');
    let h: u64 = parts.next()?.parse().ok()?;
    let m: u64 = parts.next()?.parse().ok()?;
    let s: f64 = parts.next()?.parse().ok()?;
    if parts.next().is_some() || m >= 60 || !(0.0..60.0).contains(&s) {
        return None;
    }
    Some(Duration::from_secs(h * 3600 + m * 60) + Duration::from_secs_f64(s))
}

/// A KQL string literal.
pub fn kql_string(text: &str) -> String {
    let mut s = String::with_capacity(text.len() + 2);
    s.push('\'');
    for c in text.chars() {
        match c {
            '\'' | '\\' => {
                s.push('\\');
                s.push(c);
            }
            '\n' => s.push_str("\\n"),
            _ => s.push(c),
        }
    }
    s.push('\'');
    s
}

/// The query for the VMs of some resource groups and names (every VM when both are empty), with
/// what cryptoctl needs of each: size, OS, computer name, power state, NICs.
pub fn vm_query(resource_groups: &[&str], names: &[&str]) -> String {
    let list = |v: &[&str]| {
        v.iter()
            .map(|s| kql_string(s))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut q = String::from("Resources\n| where type =~ 'microsoft.compute/virtualmachines'");
    if !resource_groups.is_empty() {
        q.push_str(&format!(
            "\n| where resourceGroup in~ ({})",
            list(resource_groups)
        ));
    }
    if !names.is_empty() {
        q.push_str(&format!("\n| where name in~ ({})", list(names)));
    }
    q.push_str(
        "\n| project id, name, resourceGroup, subscriptionId, location, tags, \
         vmSize = tostring(properties.hardwareProfile.vmSize), \
         osType = tostring(properties.storageProfile.osDisk.osType), \
         computerName = tostring(properties.osProfile.computerName), \
         powerState = tostring(properties.extended.instanceView.powerState.code), \
         powerDisplay = tostring(properties.extended.instanceView.powerState.displayStatus), \
         nics = properties.networkProfile.networkInterfaces",
    );
    q
}

/// A VM as the inventory query returns it.
#[derive(Debug, Clone)]
pub struct GraphVm {
    /// The VM in the shape the rest of cryptoctl uses.
    pub vm: VirtualMachine,
    /// Its subscription.
    pub subscription: String,
    /// Its power state (`None` when Resource Graph has none yet).
    pub power: Option<PowerState>,
    /// The host name the OS was given (`osProfile.computerName`).
    pub computer_name: Option<String>,
}

impl GraphVm {
    /// A row of [`vm_query`]; `None` when it has no usable `id` and `name`.
    pub fn from_row(row: &Map<String, Value>) -> Option<GraphVm> {
        let text = |k: &str| {
            row.get(k)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let id = text("id")?;
        let name = text("name")?;
        if !id.to_ascii_lowercase().starts_with("/subscriptions/") {
            return None;
        }
        let tags: BTreeMap<String, String> = row
            .get("tags")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        let nics = row
            .get("nics")
            .filter(|v| v.is_array())
            .cloned()
            .unwrap_or_else(|| json!([]));
        let mut properties = json!({"networkProfile": {"networkInterfaces": nics}});
        if let Some(size) = text("vmSize") {
            properties["hardwareProfile"] = json!({"vmSize": size});
        }
        if let Some(os) = text("osType") {
            properties["storageProfile"] = json!({"osDisk": {"osType": os}});
        }
        let vm: VirtualMachine = serde_json::from_value(json!({
            "id": id, "name": name, "location": text("location").unwrap_or_default(),
            "tags": tags, "properties": properties,
        }))
        .or_else(|_| {
            // NICs of an unexpected shape: the VM without them
            serde_json::from_value(json!({
                "id": id, "name": name, "location": text("location").unwrap_or_default(),
                "tags": tags,
            }))
        })
        .ok()?;
        let power = text("powerState").and_then(|code| {
            let code = code
                .strip_prefix("PowerState/")
                .or_else(|| code.strip_prefix("powerstate/"))
                .unwrap_or(&code)
                .to_owned();
            (!code.is_empty()).then(|| PowerState {
                display: text("powerDisplay").unwrap_or_else(|| format!("VM {code}")),
                code,
            })
        });
        let subscription = text("subscriptionId")
            .or_else(|| id.split('/').nth(2).map(str::to_owned))
            .unwrap_or_default();
        Some(GraphVm {
            vm,
            subscription,
            power,
            computer_name: text("computerName"),
        })
    }
}

/// The rows of one page: `objectArray` data, or `table` data turned into objects.
fn page_rows(data: &Value) -> Option<Vec<Map<String, Value>>> {
    if let Some(a) = data.as_array() {
        return Some(a.iter().filter_map(|r| r.as_object().cloned()).collect());
    }
    let columns: Vec<&str> = data["columns"]
        .as_array()?
        .iter()
        .map(|c| c["name"].as_str().unwrap_or(""))
        .collect();
    Some(
        data["rows"]
            .as_array()?
            .iter()
            .filter_map(Value::as_array)
            .map(|r| {
                columns
                    .iter()
                    .zip(r)
                    .map(|(c, v)| ((*c).to_owned(), v.clone()))
                    .collect()
            })
            .collect(),
    )
}

fn truncated_flag(v: &Value) -> bool {
    match v {
        Value::String(s) => s.eq_ignore_ascii_case("true"),
        Value::Bool(b) => *b,
        _ => false,
    }
}

impl ArmClient {
    /// Runs `query` over `scope`, every page of it; the scope's subscriptions go in batches of at
    /// most [`MAX_SUBSCRIPTIONS_PER_REQUEST`].
    pub async fn resource_graph(
        &self,
        scope: &GraphScope,
        query: &str,
        deadline: Instant,
    ) -> Result<GraphAnswer, ArmError> {
        let url = self.url(
            &["providers", "Microsoft.ResourceGraph", "resources"],
            RESOURCE_GRAPH_API_VERSION,
        );
        let batches: Vec<(&str, Value)> = if !scope.management_groups.is_empty() {
            vec![("managementGroups", json!(scope.management_groups))]
        } else {
            scope
                .subscriptions
                .chunks(MAX_SUBSCRIPTIONS_PER_REQUEST)
                .map(|c| ("subscriptions", json!(c)))
                .collect()
        };
        let mut answer = GraphAnswer::default();
        let mut wait_before: Option<Duration> = None;
        for (key, ids) in batches {
            let mut skip: Option<String> = None;
            let mut got = 0usize;
            loop {
                if let Some(w) = wait_before.take() {
                    if Instant::now() + w > deadline {
                        return Err(ArmError::Timeout(w));
                    }
                    tracing::info!(?w, "Resource Graph quota used up; waiting for its reset");
                    tokio::time::sleep(w).await;
                }
                let mut options = json!({"$top": PAGE_SIZE, "resultFormat": "objectArray"});
                if let Some(t) = &skip {
                    options["$skipToken"] = json!(t);
                }
                let body = json!({key: ids, "query": query, "options": options});
                let resp = self.send(Method::POST, &url, Some(&body), deadline).await?;
                answer.pages += 1;
                if !resp.status.is_success() {
                    return Err(ArmError::from_response(resp.status.as_u16(), &resp.body));
                }
                if let Some((0, resets)) = quota(&resp.headers) {
                    // none left in this window: the next query waits (with a little margin)
                    wait_before = Some(resets + Duration::from_millis(250));
                }
                let page: Value = resp.json()?;
                let rows = page_rows(&page["data"]).ok_or_else(|| ArmError::Protocol {
                    url: without_query(&url),
                    message: "a Resource Graph answer without data rows".into(),
                })?;
                got += rows.len();
                answer.rows.extend(rows);
                let total = page["totalRecords"].as_u64();
                let next = page["$skipToken"]
                    .as_str()
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned);
                match next {
                    Some(t) if Some(&t) == skip.as_ref() => {
                        return Err(ArmError::Protocol {
                            url: without_query(&url),
                            message: "Resource Graph handed out the same $skipToken twice".into(),
                        });
                    }
                    Some(t) => skip = Some(t),
                    None => {
                        let short = total.is_some_and(|t| (got as u64) < t);
                        if truncated_flag(&page["resultTruncated"]) || short {
                            answer.incomplete.push(format!(
                                "Resource Graph returned {got} of {} VMs and no $skipToken for \
                                 the rest (resultTruncated: {}): the inventory is incomplete",
                                total.map_or_else(|| "?".to_owned(), |t| t.to_string()),
                                page["resultTruncated"]
                            ));
                        }
                        break;
                    }
                }
                if answer.pages > 10_000 {
                    return Err(ArmError::Protocol {
                        url: without_query(&url),
                        message: "more than 10000 pages".into(),
                    });
                }
            }
        }
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_headers() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("x-ms-user-quota-remaining", "0".parse().unwrap());
        h.insert("x-ms-user-quota-resets-after", "00:00:03".parse().unwrap());
        assert_eq!(quota(&h), Some((0, Duration::from_secs(3))));
        assert_eq!(
            parse_hms("01:02:03.5"),
            Some(Duration::from_secs_f64(3723.5))
        );
        assert_eq!(parse_hms("00:61:00"), None);
        assert_eq!(parse_hms("3"), None);
    }

    #[test]
    fn the_query_filters_and_quotes() {
        let q = vm_query(&["BOTS-RG", "o'brien"], &["vm1"]);
        assert!(q.starts_with("Resources\n| where type =~ 'microsoft.compute/virtualmachines'"));
        assert!(
            q.contains("| where resourceGroup in~ ('BOTS-RG', 'o\\'brien')"),
            "{q}"
        );
        assert!(q.contains("| where name in~ ('vm1')"), "{q}");
        assert!(
            q.contains("powerState = tostring(properties.extended.instanceView.powerState.code)")
        );
        assert!(!vm_query(&[], &[]).contains("resourceGroup in~"));
    }

    #[test]
    fn rows_become_vms() {
        let row: Map<String, Value> = serde_json::from_str(
            r#"{"id":"/subscriptions/S1/resourceGroups/RG/providers/Microsoft.Compute/virtualMachines/vm1",
                "name":"vm1","resourceGroup":"rg","subscriptionId":"S1","location":"westeurope",
                "tags":{"role":"bot","n":1},"vmSize":"Standard_B2s","osType":"Linux","computerName":"vm1-host",
                "powerState":"PowerState/deallocated","powerDisplay":"VM deallocated",
                "nics":[{"id":"/nic1","properties":{"primary":true}}]}"#,
        )
        .unwrap();
        let g = GraphVm::from_row(&row).unwrap();
        assert_eq!(g.vm.resource_group(), "RG");
        assert_eq!(g.vm.size(), "Standard_B2s");
        assert_eq!(g.vm.primary_nic(), Some("/nic1"));
        assert_eq!(
            g.vm.tag_map().len(),
            1,
            "non-string tag values are left out"
        );
        assert_eq!(g.subscription, "S1");
        let p = g.power.unwrap();
        assert_eq!(
            (p.code.as_str(), p.display.as_str()),
            ("deallocated", "VM deallocated")
        );
        assert_eq!(g.computer_name.as_deref(), Some("vm1-host"));
        // no power state yet; NICs of another shape; no id
        let mut r = row.clone();
        r.insert("powerState".into(), json!(""));
        r.insert("nics".into(), json!([{"id": 5}]));
        let g = GraphVm::from_row(&r).unwrap();
        assert!(g.power.is_none() && g.vm.primary_nic().is_none());
        r.remove("id");
        assert!(GraphVm::from_row(&r).is_none());
    }

    #[test]
    fn table_pages_are_read_too() {
        let data = json!({"columns": [{"name": "id", "type": "string"}, {"name": "name", "type": "string"}],
                          "rows": [["/subscriptions/s/x", "a"]]});
        let rows = page_rows(&data).unwrap();
        assert_eq!(rows[0]["name"], "a");
        assert!(truncated_flag(&json!("true")) && !truncated_flag(&json!("false")));
    }
}
