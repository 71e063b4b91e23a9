//! How many VMs are handled at once: `--concurrency`, lowered when Azure's remaining request budget
//! (the `x-ms-ratelimit-remaining-*` headers) runs low, so a large fleet slows down instead of
//! running into a wall of 429s.

use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// Below this many remaining requests in any bucket, concurrency is lowered.
pub const LOW_BUDGET: u32 = 40;

#[derive(Debug)]
struct State {
    limit: usize,
    in_use: usize,
    lowest_seen: Option<(String, u32)>,
}

/// An adjustable concurrency limit.
#[derive(Debug, Clone)]
pub struct Limiter {
    state: Arc<Mutex<State>>,
    notify: Arc<Notify>,
}

/// A slot; freed on drop.
#[derive(Debug)]
pub struct Permit {
    limiter: Limiter,
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Ok(mut s) = self.limiter.state.lock() {
            s.in_use = s.in_use.saturating_sub(1);
        }
        self.limiter.notify.notify_waiters();
    }
}

impl Limiter {
    /// At most `limit` at once.
    pub fn new(limit: usize) -> Limiter {
        Limiter {
            state: Arc::new(Mutex::new(State {
                limit: limit.max(1),
                in_use: 0,
                lowest_seen: None,
            })),
            notify: Arc::new(Notify::new()),
        }
    }

    /// The current limit.
    pub fn limit(&self) -> usize {
        self.state.lock().map(|s| s.limit).unwrap_or(1)
    }

    /// Waits for a slot.
    pub async fn acquire(&self) -> Permit {
        loop {
            let notified = self.notify.notified();
            {
                let mut s = self.state.lock().expect("limiter lock");
                if s.in_use < s.limit {
                    s.in_use += 1;
                    return Permit {
                        limiter: self.clone(),
                    };
                }
            }
            notified.await;
        }
    }

    /// Takes note of a bucket's remaining budget; returns the new limit when it was lowered.
    pub fn observe(&self, bucket: &str, remaining: u32) -> Option<usize> {
        let mut s = self.state.lock().ok()?;
        if s.lowest_seen.as_ref().is_none_or(|(_, r)| remaining < *r) {
            s.lowest_seen = Some((bucket.to_owned(), remaining));
        }
        if remaining >= LOW_BUDGET {
            return None;
        }
        let wanted = ((remaining / 4) as usize).max(1);
        if wanted < s.limit {
            s.limit = wanted;
            Some(wanted)
        } else {
            None
        }
    }
}

/// The remaining budgets of a response's `x-ms-ratelimit-remaining-*` headers, as
/// (bucket, remaining): `x-ms-ratelimit-remaining-resource:
/// Microsoft.Compute/UpdateVM3Min;238,Microsoft.Compute/UpdateVM30Min;1194` gives two buckets,
/// `x-ms-ratelimit-remaining-subscription-reads: 11999` one (named after the header).
pub fn remaining_budgets(headers: &reqwest::header::HeaderMap) -> Vec<(String, u32)> {
    let mut out = Vec::new();
    for (name, value) in headers {
        let name = name.as_str();
        let Some(kind) = name.strip_prefix("x-ms-ratelimit-remaining-") else {
            continue;
        };
        let Ok(value) = value.to_str() else { continue };
        if kind == "resource" {
            for part in value.split(',') {
                if let Some((bucket, n)) = part.trim().split_once(';')
                    && let Ok(n) = n.trim().parse()
                {
                    out.push((bucket.to_owned(), n));
                }
            }
        } else if let Ok(n) = value.trim().parse() {
            out.push((kind.to_owned(), n));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    #[test]
    fn headers_become_buckets() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-ms-ratelimit-remaining-resource",
            HeaderValue::from_static(
                "Microsoft.Compute/UpdateVM3Min;238,Microsoft.Compute/UpdateVM30Min;1194",
            ),
        );
        h.insert(
            "x-ms-ratelimit-remaining-subscription-reads",
            HeaderValue::from_static("11999"),
        );
        let mut b = remaining_budgets(&h);
        b.sort();
        assert_eq!(
            b,
            [
                ("Microsoft.Compute/UpdateVM30Min".to_owned(), 1194),
                ("Microsoft.Compute/UpdateVM3Min".to_owned(), 238),
                ("subscription-reads".to_owned(), 11999)
            ]
        );
    }

    #[test]
    fn low_budget_lowers_the_limit_never_below_one() {
        let l = Limiter::new(16);
        assert_eq!(l.observe("b", 1000), None);
        assert_eq!(l.observe("b", 20), Some(5));
        assert_eq!(l.observe("b", 30), None);
        assert_eq!(l.observe("b", 0), Some(1));
        assert_eq!(l.limit(), 1);
    }

    #[tokio::test]
    async fn permits_are_bounded() {
        let l = Limiter::new(2);
        let a = l.acquire().await;
        let _b = l.acquire().await;
        let l2 = l.clone();
        let waiter = tokio::spawn(async move { l2.acquire().await });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(a);
        waiter.await.unwrap();
    }
}
