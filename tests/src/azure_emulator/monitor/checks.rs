//! The shapes the emulated Monitor types require, as their REST specifications define them:
//! resource names, action groups (`location`, `groupShortName` of at most 12 characters,
//! `enabled`, receivers with their fields and unique names), scheduled query rules (`location`,
//! `kind`, `scopes`, `enabled`, `severity`, ISO 8601 durations, `criteria.allOf[]` with `query`,
//! `timeAggregation`, `metricMeasureColumn` unless counting, `operator`, `threshold`, dimensions)
//! and metric alerts. Each check answers the message of ARM's 400.

use serde_json::Value;

pub(super) fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.chars().count() <= 260
        && !name
            .chars()
            .any(|c| c.is_control() || "<>*%{}&:\\?/#|".contains(c))
        && !name.ends_with(['.', ' ']);
    if ok {
        Ok(())
    } else {
        Err(format!("The resource name '{name}' is invalid."))
    }
}

fn string<'a>(v: &'a Value, path: &str) -> Result<&'a str, String> {
    match v.as_str() {
        Some(s) if !s.is_empty() => Ok(s),
        _ => Err(format!(
            "The property '{path}' is required and must be a non-empty string."
        )),
    }
}

fn boolean(v: &Value, path: &str) -> Result<(), String> {
    v.as_bool().map(|_| ()).ok_or(format!(
        "The property '{path}' is required and must be a boolean."
    ))
}

fn duration(v: &Value, path: &str) -> Result<(), String> {
    let s = string(v, path)?;
    let ok = match s.strip_prefix("PT") {
        Some(t) => {
            !t.is_empty()
                && t.ends_with(['H', 'M', 'S'])
                && t.chars().all(|c| c.is_ascii_digit() || "HMS".contains(c))
        }
        None => s
            .strip_prefix('P')
            .and_then(|d| d.strip_suffix('D'))
            .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit())),
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "The property '{path}' value '{s}' is not a valid ISO 8601 duration."
        ))
    }
}

fn severity(v: &Value) -> Result<(), String> {
    match v.as_u64() {
        Some(0..=4) => Ok(()),
        _ => Err("The property 'properties.severity' is required and must be an integer between 0 and 4.".into()),
    }
}

fn scopes(v: &Value) -> Result<(), String> {
    let ok = v.as_array().is_some_and(|a| {
        !a.is_empty()
            && a.iter()
                .all(|s| s.as_str().is_some_and(|s| s.starts_with("/subscriptions/")))
    });
    if ok {
        Ok(())
    } else {
        Err("The property 'properties.scopes' is required and must list resource ids.".into())
    }
}

pub(super) fn check_action_group(b: &Value) -> Result<(), String> {
    string(&b["location"], "location")?;
    let p = &b["properties"];
    let short = string(&p["groupShortName"], "properties.groupShortName")?;
    if short.chars().count() > 12 {
        return Err(format!(
            "The group short name '{short}' is longer than 12 characters."
        ));
    }
    boolean(&p["enabled"], "properties.enabled")?;
    let mut names: Vec<String> = Vec::new();
    for (list, fields) in [
        ("emailReceivers", &["emailAddress"][..]),
        ("webhookReceivers", &["serviceUri"][..]),
        ("logicAppReceivers", &["resourceId", "callbackUrl"][..]),
    ] {
        let Some(items) = p.get(list) else { continue };
        let items = items.as_array().ok_or(format!(
            "The property 'properties.{list}' must be an array."
        ))?;
        for (i, r) in items.iter().enumerate() {
            let name = string(&r["name"], &format!("properties.{list}[{i}].name"))?;
            for f in fields {
                string(&r[*f], &format!("properties.{list}[{i}].{f}"))?;
            }
            if names.iter().any(|n| n.eq_ignore_ascii_case(name)) {
                return Err(format!(
                    "The receiver name '{name}' is used more than once."
                ));
            }
            names.push(name.to_owned());
        }
    }
    Ok(())
}

pub(super) fn check_scheduled_query_rule(b: &Value) -> Result<(), String> {
    string(&b["location"], "location")?;
    match b["kind"].as_str() {
        Some("LogAlert" | "LogToMetric") => {}
        _ => {
            return Err(
                "The property 'kind' is required and must be 'LogAlert' or 'LogToMetric'.".into(),
            );
        }
    }
    let p = &b["properties"];
    boolean(&p["enabled"], "properties.enabled")?;
    scopes(&p["scopes"])?;
    severity(&p["severity"])?;
    duration(&p["evaluationFrequency"], "properties.evaluationFrequency")?;
    duration(&p["windowSize"], "properties.windowSize")?;
    for optional in ["muteActionsDuration", "overrideQueryTimeRange"] {
        if let Some(v) = p.get(optional) {
            duration(v, &format!("properties.{optional}"))?;
        }
    }
    let all = p["criteria"]["allOf"]
        .as_array()
        .filter(|a| !a.is_empty())
        .ok_or("The property 'properties.criteria.allOf' is required and must not be empty.")?;
    for (i, c) in all.iter().enumerate() {
        let at = |f: &str| format!("properties.criteria.allOf[{i}].{f}");
        string(&c["query"], &at("query"))?;
        let agg = string(&c["timeAggregation"], &at("timeAggregation"))?;
        if !["Count", "Average", "Minimum", "Maximum", "Total"].contains(&agg) {
            return Err(format!(
                "The value '{agg}' of '{}' is not valid.",
                at("timeAggregation")
            ));
        }
        if agg != "Count" {
            string(&c["metricMeasureColumn"], &at("metricMeasureColumn"))?;
        }
        let op = string(&c["operator"], &at("operator"))?;
        if ![
            "Equals",
            "GreaterThan",
            "GreaterThanOrEqual",
            "LessThan",
            "LessThanOrEqual",
        ]
        .contains(&op)
        {
            return Err(format!(
                "The value '{op}' of '{}' is not valid.",
                at("operator")
            ));
        }
        if !c["threshold"].is_number() {
            return Err(format!(
                "The property '{}' is required and must be a number.",
                at("threshold")
            ));
        }
        for (j, d) in c["dimensions"].as_array().into_iter().flatten().enumerate() {
            string(&d["name"], &at(&format!("dimensions[{j}].name")))?;
            if !matches!(d["operator"].as_str(), Some("Include" | "Exclude"))
                || !d["values"].is_array()
            {
                return Err(format!(
                    "The dimension '{}' is not valid.",
                    at(&format!("dimensions[{j}]"))
                ));
            }
        }
    }
    if let Some(groups) = p["actions"].get("actionGroups") {
        let ok = groups.as_array().is_some_and(|a| {
            a.iter()
                .all(|g| g.as_str().is_some_and(|g| g.starts_with("/subscriptions/")))
        });
        if !ok {
            return Err(
                "The property 'properties.actions.actionGroups' must list action group ids.".into(),
            );
        }
    }
    Ok(())
}

pub(super) fn check_metric_alert(b: &Value) -> Result<(), String> {
    string(&b["location"], "location")?;
    let p = &b["properties"];
    severity(&p["severity"])?;
    boolean(&p["enabled"], "properties.enabled")?;
    scopes(&p["scopes"])?;
    duration(&p["evaluationFrequency"], "properties.evaluationFrequency")?;
    duration(&p["windowSize"], "properties.windowSize")?;
    string(
        &p["criteria"]["odata.type"],
        "properties.criteria.odata.type",
    )?;
    Ok(())
}
