//! A small KQL engine for the emulator's Resource Graph and query APIs: tables of JSON cells, and
//! the operators cryptoctl's queries use, evaluated as Kusto does: `union` (outer, of
//! parenthesised queries), `where`, `extend`, `project` (with renames), `summarize arg_max(t, …)
//! by …`; the scalar operators `==` (case-sensitive), `=~`, `!=`, `<`, `>`, `startswith`
//! (case-insensitive), `in~`, `and`, `/`; the functions `tostring`, `tolower`, `todouble`,
//! `ago`; member access into dynamic values (`properties.a.b`, `tags['k']`). Anything else is a
//! syntax or semantic error, answered as the service answers one, so a query the real engine would
//! not run fails here too instead of returning something plausible.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use self::parse::{Expr, Op, Query, Source};

mod parse;

/// A table: named columns and rows of cells.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    /// Column names.
    pub columns: Vec<String>,
    /// Rows, one cell per column.
    pub rows: Vec<Vec<Value>>,
}

impl Table {
    /// A table from objects (the union of their keys, in order of appearance).
    pub fn from_objects(objects: &[Map<String, Value>]) -> Table {
        let mut columns: Vec<String> = Vec::new();
        for o in objects {
            for k in o.keys() {
                if !columns.contains(k) {
                    columns.push(k.clone());
                }
            }
        }
        let rows = objects
            .iter()
            .map(|o| {
                columns
                    .iter()
                    .map(|c| o.get(c).cloned().unwrap_or(Value::Null))
                    .collect()
            })
            .collect();
        Table { columns, rows }
    }

    /// The rows as objects.
    pub fn objects(&self) -> Vec<Map<String, Value>> {
        self.rows
            .iter()
            .map(|r| {
                self.columns
                    .iter()
                    .cloned()
                    .zip(r.iter().cloned())
                    .collect()
            })
            .collect()
    }

    fn index(&self) -> HashMap<&str, usize> {
        self.columns
            .iter()
            .enumerate()
            .map(|(i, c)| (c.as_str(), i))
            .collect()
    }
}

/// Why a query did not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KqlError {
    /// It does not parse (or uses an operator this engine does not have).
    Syntax(String),
    /// It parses but names what is not there.
    Semantic(String),
}

impl std::fmt::Display for KqlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KqlError::Syntax(m) => write!(f, "Syntax error: {m}"),
            KqlError::Semantic(m) => write!(f, "Semantic error: {m}"),
        }
    }
}

fn text_of(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn number_of(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        _ => None,
    }
}

/// `2d`, `10m`, `30s`, `1h` in milliseconds.
fn timespan_ms(text: &str) -> Option<i64> {
    let (n, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit())?);
    let n: i64 = n.parse().ok()?;
    Some(
        n * match unit {
            "d" => 86_400_000,
            "h" => 3_600_000,
            "m" => 60_000,
            "s" => 1000,
            "ms" => 1,
            _ => return None,
        },
    )
}

fn order(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (number_of(a), number_of(b)) {
        (Some(x), Some(y)) if !a.is_string() || !b.is_string() => x.partial_cmp(&y),
        _ if a.is_null() || b.is_null() => None,
        _ => Some(text_of(a).cmp(&text_of(b))),
    }
}

struct Eval<'a> {
    index: &'a HashMap<&'a str, usize>,
    now_ms: i64,
}

impl Eval<'_> {
    fn check(&self, e: &Expr) -> Result<(), KqlError> {
        match e {
            Expr::Lit(_) => Ok(()),
            Expr::Col(c) => self.index.get(c.as_str()).map(|_| ()).ok_or_else(|| {
                KqlError::Semantic(format!("Failed to resolve scalar expression named '{c}'"))
            }),
            Expr::Member(a, b) | Expr::Bin(_, a, b) => {
                self.check(a)?;
                self.check(b)
            }
            Expr::Call(f, args) => {
                if !["tostring", "tolower", "todouble", "ago"].contains(&f.as_str()) {
                    return Err(KqlError::Semantic(format!("Unknown function: '{f}'")));
                }
                if args.len() != 1 {
                    return Err(KqlError::Semantic(format!("{f}(): expects 1 argument")));
                }
                if f == "ago"
                    && !matches!(&args[0], Expr::Lit(Value::String(s)) if timespan_ms(s).is_some())
                {
                    return Err(KqlError::Semantic("ago(): expects a timespan".into()));
                }
                args.iter().try_for_each(|a| self.check(a))
            }
            Expr::In(a, items) => {
                self.check(a)?;
                items.iter().try_for_each(|a| self.check(a))
            }
        }
    }

    fn eval(&self, e: &Expr, row: &[Value]) -> Value {
        match e {
            Expr::Lit(v) => v.clone(),
            Expr::Col(c) => row[self.index[c.as_str()]].clone(),
            Expr::Member(a, key) => {
                let base = self.eval(a, row);
                let base = match base {
                    Value::String(s) => serde_json::from_str(&s).unwrap_or(Value::Null),
                    v => v,
                };
                let key = self.eval(key, row);
                match (&base, &key) {
                    (Value::Object(m), k) => m.get(&text_of(k)).cloned().unwrap_or(Value::Null),
                    (Value::Array(a), Value::Number(n)) => n
                        .as_u64()
                        .and_then(|i| a.get(i as usize).cloned())
                        .unwrap_or(Value::Null),
                    _ => Value::Null,
                }
            }
            Expr::Call(f, args) => {
                let v = self.eval(&args[0], row);
                match f.as_str() {
                    "tostring" => json!(text_of(&v)),
                    "tolower" => json!(text_of(&v).to_lowercase()),
                    "todouble" => number_of(&v).map_or(Value::Null, |n| json!(n)),
                    _ => {
                        let ms = timespan_ms(&text_of(&v)).unwrap_or(0);
                        json!(super::logs::rfc3339(self.now_ms - ms))
                    }
                }
            }
            Expr::In(a, items) => {
                let v = text_of(&self.eval(a, row)).to_lowercase();
                json!(
                    items
                        .iter()
                        .any(|i| text_of(&self.eval(i, row)).to_lowercase() == v)
                )
            }
            Expr::Bin(op, a, b) => {
                let (x, y) = (self.eval(a, row), self.eval(b, row));
                json!(match *op {
                    "and" => x == json!(true) && y == json!(true),
                    "==" => !x.is_null() && text_of(&x) == text_of(&y),
                    "=~" =>
                        !x.is_null() && text_of(&x).to_lowercase() == text_of(&y).to_lowercase(),
                    "!=" => text_of(&x) != text_of(&y),
                    "startswith" => text_of(&x)
                        .to_lowercase()
                        .starts_with(&text_of(&y).to_lowercase()),
                    ">" => order(&x, &y).is_some_and(|o| o.is_gt()),
                    "<" => order(&x, &y).is_some_and(|o| o.is_lt()),
                    ">=" => order(&x, &y).is_some_and(|o| o.is_ge()),
                    "<=" => order(&x, &y).is_some_and(|o| o.is_le()),
                    _ => {
                        return match (number_of(&x), number_of(&y)) {
                            (Some(p), Some(q)) if q != 0.0 => json!(p / q),
                            _ => Value::Null,
                        };
                    }
                })
            }
        }
    }
}

fn run_query(q: &Query, tables: &HashMap<String, Table>, now_ms: i64) -> Result<Table, KqlError> {
    let mut t = match &q.source {
        Source::Table(name) => tables.get(name).cloned().ok_or_else(|| {
            KqlError::Semantic(format!("Failed to resolve table expression named '{name}'"))
        })?,
        Source::Union(parts) => {
            let results = parts
                .iter()
                .map(|p| run_query(p, tables, now_ms))
                .collect::<Result<Vec<_>, _>>()?;
            // outer union: every column of every part, in order of appearance
            let mut u = Table::default();
            for r in &results {
                for c in &r.columns {
                    if !u.columns.contains(c) {
                        u.columns.push(c.clone());
                    }
                }
            }
            for r in results {
                let at: Vec<usize> = r
                    .columns
                    .iter()
                    .map(|c| u.columns.iter().position(|x| x == c).expect("listed"))
                    .collect();
                for row in r.rows {
                    let mut out = vec![Value::Null; u.columns.len()];
                    for (i, v) in at.iter().zip(row) {
                        out[*i] = v;
                    }
                    u.rows.push(out);
                }
            }
            u
        }
    };
    for op in &q.ops {
        let index = t.index();
        let ev = Eval {
            index: &index,
            now_ms,
        };
        match op {
            Op::Where(e) => {
                ev.check(e)?;
                let keep: Vec<bool> = t
                    .rows
                    .iter()
                    .map(|r| ev.eval(e, r) == json!(true))
                    .collect();
                drop(index);
                let mut i = 0;
                t.rows.retain(|_| {
                    i += 1;
                    keep[i - 1]
                });
            }
            Op::Extend(assign) | Op::Project(assign) => {
                for (_, e) in assign {
                    ev.check(e)?;
                }
                let values: Vec<Vec<Value>> = t
                    .rows
                    .iter()
                    .map(|r| assign.iter().map(|(_, e)| ev.eval(e, r)).collect())
                    .collect();
                drop(index);
                if matches!(op, Op::Project(_)) {
                    t.columns = assign.iter().map(|(n, _)| n.clone()).collect();
                    t.rows = values;
                } else {
                    for (k, (name, _)) in assign.iter().enumerate() {
                        let at = t.columns.iter().position(|c| c == name);
                        if at.is_none() {
                            t.columns.push(name.clone());
                        }
                        for (row, v) in t.rows.iter_mut().zip(&values) {
                            match at {
                                Some(i) => row[i] = v[k].clone(),
                                None => row.push(v[k].clone()),
                            }
                        }
                    }
                }
            }
            Op::ArgMax {
                by_time,
                take,
                keys,
            } => {
                let col = |c: &String| {
                    index.get(c.as_str()).copied().ok_or_else(|| {
                        KqlError::Semantic(format!(
                            "Failed to resolve scalar expression named '{c}'"
                        ))
                    })
                };
                let ti = col(by_time)?;
                let takes = take.iter().map(col).collect::<Result<Vec<_>, _>>()?;
                let ks = keys.iter().map(col).collect::<Result<Vec<_>, _>>()?;
                let mut best: HashMap<Vec<String>, usize> = HashMap::new();
                let mut order_seen: Vec<Vec<String>> = Vec::new();
                for (i, r) in t.rows.iter().enumerate() {
                    let key: Vec<String> = ks.iter().map(|&k| text_of(&r[k])).collect();
                    match best.get(&key) {
                        Some(&j) if order(&t.rows[j][ti], &r[ti]).is_none_or(|o| !o.is_lt()) => {}
                        Some(_) => {
                            best.insert(key, i);
                        }
                        None => {
                            order_seen.push(key.clone());
                            best.insert(key, i);
                        }
                    }
                }
                let rows = order_seen
                    .iter()
                    .map(|k| {
                        let r = &t.rows[best[k]];
                        ks.iter()
                            .chain(std::iter::once(&ti))
                            .chain(&takes)
                            .map(|&c| r[c].clone())
                            .collect()
                    })
                    .collect();
                let columns = keys
                    .iter()
                    .chain(std::iter::once(by_time))
                    .chain(take)
                    .cloned()
                    .collect();
                drop(index);
                t = Table { columns, rows };
            }
        }
    }
    Ok(t)
}

/// Runs `query` over `tables` as of `now_ms` (for `ago()`).
pub fn run(query: &str, tables: &HashMap<String, Table>, now_ms: i64) -> Result<Table, KqlError> {
    run_query(&parse::parse(query)?, tables, now_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tables() -> HashMap<String, Table> {
        let objects: Vec<Map<String, Value>> = [
            json!({"t": "2026-01-01T00:00:01.000Z", "k": "a", "v": 1, "d": {"x": "A"}}),
            json!({"t": "2026-01-01T00:00:03.000Z", "k": "a", "v": 3, "d": {"x": "A"}}),
            json!({"t": "2026-01-01T00:00:02.000Z", "k": "b", "v": 2, "d": "{\"x\":\"B\"}"}),
        ]
        .into_iter()
        .map(|v| v.as_object().unwrap().clone())
        .collect();
        HashMap::from([("T".to_owned(), Table::from_objects(&objects))])
    }

    #[test]
    fn the_operators_cryptoctl_uses() {
        let t = run(
            "T | where k in~ ('A', 'b') and t > '2026-01-01T00:00:00.500Z'\n| extend x = tolower(tostring(d.x)), h = v / 2\n| summarize arg_max(t, x, h) by k\n| project k, when = t, x, h",
            &tables(),
            0,
        )
        .unwrap();
        assert_eq!(t.columns, ["k", "when", "x", "h"]);
        assert_eq!(
            t.rows[0],
            [
                json!("a"),
                json!("2026-01-01T00:00:03.000Z"),
                json!("a"),
                json!(1.5)
            ]
        );
        assert_eq!(t.rows[1][2], "b", "dynamic held as JSON text");
        let u = run(
            "union (T | where k == 'a' | extend s = 'x'), (T | where k startswith 'B')",
            &tables(),
            0,
        )
        .unwrap();
        assert_eq!(u.rows.len(), 3);
        assert_eq!(
            u.rows[2][u.columns.iter().position(|c| c == "s").unwrap()],
            Value::Null
        );
    }

    #[test]
    fn what_it_cannot_run_is_an_error() {
        for (q, syntax) in [
            ("T | take 3", true),
            ("T | where", true),
            ("T | summarize count() by k", true),
            ("Nope", false),
            ("T | where nope == 1", false),
            ("T | extend y = strlen(k)", false),
        ] {
            match run(q, &tables(), 0) {
                Err(KqlError::Syntax(_)) if syntax => {}
                Err(KqlError::Semantic(_)) if !syntax => {}
                other => panic!("{q}: {other:?}"),
            }
        }
    }
}
